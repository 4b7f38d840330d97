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
