"""pyproject lists every package (discovery is off because fixtures/ holds sysfs symlink loops)."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI (the test extra installs it there)
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]


def test_every_package_directory_is_listed() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(REPO).parts)
        for p in (REPO / "pinctl").rglob("*")
        if p.suffix in (".py", ".json") and "__pycache__" not in p.parts
    }
    assert on_disk == listed


def test_plan_schema_ships_with_the_package() -> None:
    from importlib.resources import files

    assert files("pinctl").joinpath("schemas/plan-v2.json").is_file()
    assert files("pinctl").joinpath("schemas/plan-v1.json").is_file()  # the schema of older plan files
