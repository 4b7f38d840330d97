"""House rules that a reviewer would otherwise check by hand: lint, types, help text, docs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from pinctl.cli import COMMANDS, cli

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    path = Path(sys.executable).with_name(name)
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


def test_ruff_clean() -> None:
    proc = subprocess.run([_tool("ruff"), "check", "pinctl", "tests", "fixtures", "bench"], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_clean() -> None:
    proc = subprocess.run([_tool("mypy"), "pinctl"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help_and_is_in_the_readme(name: str) -> None:
    ctx = click.Context(cli)
    command = cli.get_command(ctx, name)
    assert command is not None, f"{name} is listed but cannot be imported"
    assert command.help and len(command.help.strip()) > 20
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden and param.name != "help":
            assert param.help, f"pinctl {name} {param.opts[0]} has no help text"
    assert f"`pinctl {name}" in (ROOT / "README.md").read_text()


def test_only_one_module_imports_heavy_libraries_lazily() -> None:
    """rich, pyhwloc and pynvml never at module top level: `launch` and `pin` must stay light."""
    offenders = []
    for path in (ROOT / "pinctl").rglob("*.py"):
        for line in path.read_text().splitlines():
            if line.startswith(("import rich", "from rich", "import pyhwloc", "from pyhwloc", "import pynvml",
                                "from pynvml")):
                offenders.append(f"{path.relative_to(ROOT)}: {line}")
    assert offenders == []
