"""House rules that a reviewer would otherwise check by hand: lint, types, help text, docs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from pinctl.cli.app import COMMANDS, cli

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
    proc = subprocess.run(
        [_tool("ruff"), "check", "pinctl", "tests", "fixtures", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
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


@pytest.mark.parametrize("name", ["check", "doctor", "fleet", "watch", "noise"])
def test_a_command_that_judges_says_its_exit_status_in_help(name: str) -> None:
    """Scripts and health checks read these commands' exit status: --help must say what each means."""
    command = cli.get_command(click.Context(cli), name)
    assert command is not None and command.help and "Exit status: 0" in command.help


HEAVY = ("rich", "pyhwloc", "pynvml", "click", "psutil", "jsonschema")


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("pinctl.cli.fast", ()),  # `launch --plan`: on every job's start path
        ("pinctl.api", ()),
        ("pinctl.act.bind", ()),
        ("pinctl.planfile.load", ()),
        ("pinctl.plan.make", ()),  # the planner is pure: no library it does not need
        ("pinctl.discovery", ()),  # pyhwloc and pynvml only once discovery runs
        ("pinctl.cli.app", ("click",)),  # `pinctl --help` and every command pay for click only
    ],
)
def test_heavy_imports_stay_off_light_paths(module: str, allowed: tuple[str, ...]) -> None:
    code = f"import sys, {module}; print(' '.join(sorted(set(m.split('.')[0] for m in sys.modules))))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(proc.stdout.split())
    assert loaded & set(HEAVY) <= set(allowed), f"{module} imports {sorted(loaded & set(HEAVY))}"
