"""One grammar for launch and pin: the click-free parser (pinctl.cli.argtable) reads each form it
takes as click reads it, and every form of launch runs the same code and the same plan checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pinctl.cli.argtable import LAUNCH, PIN, Opt, parse
from pinctl.cli.launch import launch as launch_command
from pinctl.cli.options import given_options
from pinctl.cli.pin import pin as pin_command

PYTHON = sys.executable


def _tokens(table: tuple[Opt, ...]) -> list[str]:
    flags = [f for o in table for f in o.flags]
    values = ["0", "1", "7", "+1", "-1", " 2", "1.5", "1e3", "all", "bind", "local", "one-per-core", "ib", "x", ""]
    return [*flags, *values, "--", "-", "cmd", "-lv", "-C0", "--plan=p", "--local-rank=2", "--smt=all", "--force=1"]


def _click_reading(command: click.Command, args: list[str]) -> tuple[dict[str, object], frozenset[str]] | None:
    try:
        ctx = command.make_context(command.name or "", list(args))
    except (click.ClickException, click.exceptions.Exit):
        return None
    return dict(ctx.params), given_options(ctx)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_tokens(LAUNCH)), max_size=9))
def test_the_launch_parser_reads_what_click_reads(args: list[str]) -> None:
    ours = parse(LAUNCH, args, interspersed=False)
    if ours is None or not ours.rest:
        return  # left to click (which reads it, or says what is wrong)
    theirs = _click_reading(launch_command, args)
    assert theirs is not None, args
    params, typed = theirs
    assert params.pop("command") == ours.rest
    assert params == ours.values
    assert typed == ours.given


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*_tokens(PIN), "12", "4242"]), max_size=9))
def test_the_pin_parser_reads_what_click_reads(args: list[str]) -> None:
    ours = parse(PIN, args, interspersed=True)
    if ours is None:
        return
    theirs = _click_reading(pin_command, args)
    assert theirs is not None, args
    params, typed = theirs
    assert params.pop("pids") == ours.rest
    assert params == ours.values
    assert typed == ours.given


@pytest.mark.parametrize(
    "args",
    [
        ["--plan", "p.json", "--", "true"],
        ["--plan=p.json", "--local-rank", "3", "-v", "--dry-run", "--force", "--", "a", "-b"],
        ["--plan", "p.json", "--allow-env", "NCCL_X", "--allow-env=UCX_Y", "--nnodes", "1", "--", "true"],
        ["-C", "0-3", "-m", "0", "--", "./bench"],
        ["--nproc-per-node", "all", "--grace", "2.5", "python", "train.py"],
        ["--ranks", "2", "--smt", "one-per-core", "--mem-policy", "local", "--", "true"],
    ],
)
def test_the_usual_forms_take_the_fast_parser(args: list[str]) -> None:
    """Every usual form is read without click (and means what click would read)."""
    ours = parse(LAUNCH, args, interspersed=False)
    assert ours is not None and ours.rest
    theirs = _click_reading(launch_command, args)
    assert theirs is not None and theirs[0] == {**ours.values, "command": ours.rest}


# --- every launch form runs the same plan checks -------------------------------------------------


def _pinctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-X", "importtime", "-m", "pinctl", *args], capture_output=True, text=True, timeout=120, check=False
    )


def _click_loaded(res: subprocess.CompletedProcess[str]) -> bool:
    return any(line.split("|")[-1].strip() == "click" for line in res.stderr.splitlines() if line.startswith("import"))


def _diagnostics(res: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in res.stderr.splitlines() if not line.startswith("import time:")]


@pytest.fixture(scope="module")
def live_plan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A plan made by `pinctl plan` on this machine (one CPU-only rank: no GPU needed)."""
    path = tmp_path_factory.mktemp("grammar") / "plan.json"
    res = subprocess.run(
        [PYTHON, "-m", "pinctl", "plan", "--ranks", "1", "--json", "-o", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if res.returncode != 0:
        pytest.skip(f"pinctl plan cannot plan this machine: {res.stderr.strip()}")
    data: dict[str, object] = json.loads(path.read_text())
    return data


def _write(tmp_path: Path, data: dict[str, object], **node: str) -> str:
    changed = {**data, "node": {**data["node"], **node}}  # type: ignore[dict-item]
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(changed))
    return str(path)


def test_an_edited_fingerprint_means_the_same_on_every_form(live_plan: dict[str, object], tmp_path: Path) -> None:
    """The plan's facts (hostname, CPUs, NUMA layout, cpuset) decide on every form; before, the
    fingerprint was compared only once an option such as --nnodes sent launch down the click path."""
    plan = _write(tmp_path, live_plan, fingerprint="0123456789abcdef")
    forms = [
        ["--plan", plan, "--local-rank", "0", "--", "true"],
        ["--plan", plan, "--local-rank", "0", "--nnodes", "1", "--", "true"],
        ["--plan", plan, "--local-rank", "+0", "--", "true"],  # "+0" is click's to read
    ]
    results = [_pinctl("launch", *form) for form in forms]
    assert [r.returncode for r in results] == [0, 0, 0], [_diagnostics(r) for r in results]
    assert [_click_loaded(r) for r in results] == [False, False, True]


def test_every_form_prints_the_same_dry_run(live_plan: dict[str, object], tmp_path: Path) -> None:
    plan = _write(tmp_path, live_plan)
    forms = [
        ["--plan", plan, "--dry-run", "--local-rank", "0", "--", "true", "x"],
        ["--dry-run", f"--plan={plan}", "--local-rank=0", "true", "x"],
        ["--plan", plan, "--dry-run", "--local-rank", "+0", "--", "true", "x"],
    ]
    results = [_pinctl("launch", *form) for form in forms]
    assert all(r.returncode == 0 for r in results), [_diagnostics(r) for r in results]
    assert results[0].stdout and len({r.stdout for r in results}) == 1
    assert _click_loaded(results[2]) and not _click_loaded(results[0])


def test_a_foreign_plan_is_refused_alike_on_every_form(live_plan: dict[str, object], tmp_path: Path) -> None:
    plan = _write(tmp_path, live_plan, hostname=f"not-{os.uname().nodename}")
    forms = [
        ["--plan", plan, "--local-rank", "0", "--", "true"],
        ["--plan", plan, "--local-rank", "0", "--nnodes", "1", "--", "true"],
        ["--plan", plan, "--local-rank", "+0", "--", "true"],
        ["--plan", plan, "--nproc-per-node", "1", "--", "true"],
    ]
    results = [_pinctl("launch", *form) for form in forms]
    assert [r.returncode for r in results] == [4, 4, 4, 4]
    assert len({tuple(_diagnostics(r)) for r in results}) == 1
    assert "is not allowed" not in results[0].stderr and "use --force" in results[0].stderr


# --- what a person reads when a number is wrong --------------------------------------------------


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["launch", "--local-rank", "x", "--", "true"], "'x' is not a valid integer."),
        (["launch", "--grace", "soon", "--", "true"], "'soon' is not a valid number."),
        (["plan", "--ranks", "1.5"], "'1.5' is not a valid integer."),
        (["pin", "--rank", "x", "1"], "'x' is not a valid integer."),
        (["watch", "--interval", "x"], "'x' is not a valid number."),
        (["noise", "--seconds", "x"], "'x' is not a valid number."),
    ],
)
def test_a_bad_number_is_named_as_a_number(args: list[str], said: str) -> None:
    """click's own words were "'x' is not a valid integer range": a number was asked for, not a range."""
    res = subprocess.run([PYTHON, "-m", "pinctl", *args], capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert said in res.stderr and "range." not in res.stderr


@pytest.mark.parametrize("command", ["launch", "pin", "watch", "noise", "plan"])
def test_help_names_each_value_not_its_type(command: str) -> None:
    """--help shows ``--local-rank N``, ``--grace SECONDS``: never click's ``INTEGER RANGE``."""
    res = subprocess.run([PYTHON, "-m", "pinctl", command, "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0
    assert "RANGE" not in res.stdout and "INTEGER" not in res.stdout and "FLOAT" not in res.stdout, res.stdout


@pytest.mark.parametrize("extra", [[], ["--nnodes", "1"], ["-lv"]])
def test_local_rank_and_nproc_per_node_are_refused_together(extra: list[str]) -> None:
    """--local-rank was silently ignored beside --nproc-per-node (every rank started); on every form."""
    args = ["launch", "--ranks", "1", "--local-rank", "0", "--nproc-per-node", "1", *extra, "--", "true"]
    res = subprocess.run([PYTHON, "-m", "pinctl", *args], capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 2 and "--local-rank picks one rank" in res.stderr, res.stderr


def test_a_plan_made_by_launch_says_its_warnings_once_per_node() -> None:
    """launch --helpers on a node with no idle core said nothing, and bind_helper in the workers then
    refused with "plan with --helpers": the warning `pinctl plan` prints is said by the launcher, or
    by local rank 0 (not once per rank)."""
    helpers = "--helpers: every allowed CPU is a rank's or housekeeping"

    def said(*args: str) -> int:
        res = subprocess.run(
            [PYTHON, "-m", "pinctl", "launch", "--helpers", *args, "--", "true"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        return res.stderr.count(helpers)

    assert said("--ranks", "1", "--nproc-per-node", "all") == 1  # one rank holds every core: no idle one
    assert said("--ranks", "1", "--local-rank", "0") == 1
    if len(os.sched_getaffinity(0)) >= 2 and said("--ranks", "2", "--local-rank", "0") == 1:
        assert said("--ranks", "2", "--local-rank", "1") == 0
