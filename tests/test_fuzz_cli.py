"""Command-line values fuzzed through the real entry point (issue 11): every value a user types for
plan, launch --dry-run and pin gives an exit status with at most one `pinctl: error:` line, never a
traceback, in bounded time. Nothing may be bound or run: the test replaces binding, exec and the
child supervisor with tripwires, so a value that swallowed --dry-run fails loudly instead of acting."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from act_helpers import plan_dict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pinctl.cli.main import main
from pinctl.kernel.proc import process_id

CLI = settings(max_examples=80, deadline=timedelta(seconds=10),
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
NCCL_FILE = str(Path(__file__).resolve().parents[1] / "fixtures" / "nccl" / "azure-ndv4-like.xml")
NO_SUCH_PID = "4194303"  # the highest PID a 64-bit kernel hands out; no process holds it here
VALUES = ["0", "1", "-1", "0-3", "0-62:2", "all", "8-1", "0,,1", "65537", "9" * 30, "9" * 5000, "²", "٣",
          "0000:01:00.0", "GPU-x", "", " ", "x", "--", "-v", "=", "0x1", "1e3", "\u00e9"]  # fmt: skip
value = st.sampled_from(VALUES) | st.text(max_size=10).filter(lambda t: "\0" not in t)


class Tripwire(Exception):
    """Something was about to be bound or run."""


def trip(*_: object, **__: object) -> None:
    raise Tripwire


@contextmanager
def nothing_acts() -> Iterator[None]:
    with mock.patch("pinctl.cli.fast.exec_command", trip), mock.patch("pinctl.api.bind_self", trip), \
            mock.patch("pinctl.act.supervise.run_children", trip):  # fmt: skip
        yield


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> int:
    capsys.readouterr()
    with nothing_acts():
        rc = main(args)
    err = capsys.readouterr().err
    assert isinstance(rc, int)
    errors = [line for line in err.splitlines() if line.startswith("pinctl: error:")]
    assert len(errors) <= 1 and "Traceback" not in err, err
    assert (rc == 0) or errors or "warning" in err or not err, err
    return rc


def options(names: list[str]) -> st.SearchStrategy[list[str]]:
    """``--name=value`` pairs (the = form, so no value can swallow the next option)."""
    return st.lists(st.tuples(st.sampled_from(names), value), max_size=3).map(
        lambda pairs: [f"{name}={v}" for name, v in pairs]
    )


@CLI
@given(options(["--gpus", "--reserve", "--ranks", "--procs-per-gpu", "--nics-per-gpu", "--reserve-per-numa",
                "--smt", "--mem-policy", "--nic-link-layer", "--format"]))  # fmt: skip
def test_plan_values(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    run(["plan", "--topology", NCCL_FILE, *args], capsys)


@CLI
@given(options(["--physcpubind", "--cpunodebind", "--membind", "--preferred", "--interleave", "--local-rank",
                "--nproc-per-node", "--nnodes", "--node-rank", "--master-port", "--grace"]))  # fmt: skip
def test_launch_values(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    run(["launch", "--dry-run", *args, "--", "true"], capsys)


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("plan") / "plan.json"
    path.write_text(json.dumps(plan_dict()))
    return str(path)


@CLI
@given(options(["--local-rank", "--allow-env"]))
def test_launch_plan_values(capsys: pytest.CaptureFixture[str], plan_file: str, args: list[str]) -> None:
    run(["launch", "--plan", plan_file, "--dry-run", "--local-rank=0", *args, "--", "true"], capsys)


@CLI
@given(value, st.one_of(st.none(), value), st.booleans())
def test_pin_values(capsys: pytest.CaptureFixture[str], cpus: str, mems: str | None, migrate: bool) -> None:
    args = ["pin", NO_SUCH_PID, f"--cpus={cpus}", *([f"--mems={mems}"] if mems is not None else [])]
    assert run([*args, *(["--migrate"] if migrate else [])], capsys) != 0  # the process does not exist


@CLI
@given(st.lists(value.filter(lambda v: not v.startswith("-")), min_size=1, max_size=3))
def test_pin_process_ids(capsys: pytest.CaptureFixture[str], pids: list[str]) -> None:
    """Only real process ids reach pinning (replaced here: other people's processes run on this machine)."""
    with mock.patch("pinctl.cli.fast.pin_targets", trip), mock.patch("pinctl.cli.pin.pin_targets", trip):
        try:
            rc = run(["pin", *pids, "--cpus=0"], capsys)
        except Tripwire:
            assert all(process_id(p) is not None for p in pids), pids
        else:
            assert rc != 0
