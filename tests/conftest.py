"""Test-wide settings.

Under CI (CI=true) hypothesis runs derandomized, so a submission's result does not
depend on the draw; locally it explores new examples on every run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def fleet_reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A generated fleet (fixtures/gen_fleet.py) judged by ``pinctl doctor --root --json``: node -> report file."""
    from fleet_helpers import doctor_reports, generate  # tests/ is on sys.path only once collection starts

    top = tmp_path_factory.mktemp("fleet")
    return doctor_reports(generate(top / "trees"), top / "reports")


@pytest.fixture(scope="session")
def nvmlshim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/nvmlshim built with this machine's C compiler: a folder holding libnvidia-ml.so.1.

    NVIDIA's real binding (nvidia-ml-py) and hwloc's NVML plugin load it when LD_LIBRARY_PATH
    names the folder; FAKE_NVML_CONFIG describes the node (tests/nvmlshim/README.md).
    """
    import shutil
    import subprocess

    if shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("no C compiler to build tests/nvmlshim")
    out = tmp_path_factory.mktemp("nvmlshim")
    script = Path(__file__).parent / "nvmlshim" / "build.sh"
    subprocess.run(["sh", str(script), str(out)], check=True, capture_output=True)
    return out


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "pyhwloc: needs libhwloc through pyhwloc; skipped where it is absent (the built-in discovery run)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``pyhwloc`` skip, with the reason, where pyhwloc is not installed (.venv-builtin)."""
    import importlib.util

    if importlib.util.find_spec("pyhwloc") is not None:
        return
    skip = pytest.mark.skip(reason="needs pyhwloc, absent here: this run checks pinctl's built-in discovery")
    for item in items:
        if "pyhwloc" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def grace_trees(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fixtures/gen_grace.py's hwloc XMLs and gathered trees (gh200/, gb200-tray/), written once per session."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("grace")
    script = Path(__file__).resolve().parents[1] / "fixtures" / "gen_grace.py"
    subprocess.run([sys.executable, str(script), str(out), "--trees"], check=True)
    return out
