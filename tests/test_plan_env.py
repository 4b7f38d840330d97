"""What a plan file may put in a rank's environment (issue 11): exact names only, the rest refused in
one line before anything runs, unless the person running launch names it with --allow-env."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest
from act_helpers import pinctl, plan_dict, write_plan
from hypothesis import given, settings
from hypothesis import strategies as st

from pinctl.errors import PlanError, UsageError
from pinctl.planfile.allowlist import PLAN_ENV_KEYS, TUNING, WRITTEN, allowed_names, env_key_allowed
from pinctl.planfile.load import parse_plan_text
from pinctl.planfile.types import Plan

ROOT = Path(__file__).resolve().parents[1]
# The holes issue 11 found in the old prefix allowlist: each loads code, runs a command or writes a file.
HOSTILE = {
    "UCX_GDB_COMMAND": "gdb -batch -ex 'shell touch /tmp/owned'",
    "UCX_LOG_FILE": "/home/victim/.bashrc",
    "UCX_PROFILE_FILE": "/tmp/x",
    "UCX_STATS_DEST": "file:/tmp/x",
    "NCCL_TOPO_DUMP_FILE": "/tmp/x",
    "NCCL_GRAPH_DUMP_FILE": "/tmp/x",
}


def _with_env(**env: str) -> dict[str, object]:
    plan = plan_dict()
    for r in plan["ranks"]:
        r["env"].update(env)
    return plan


def _property_names(node: object) -> list[str]:
    if isinstance(node, dict):
        if "propertyNames" in node:
            return list(node["propertyNames"]["enum"])
        return [n for v in node.values() for n in _property_names(v)]
    if isinstance(node, list):
        return [n for v in node for n in _property_names(v)]
    return []


def test_the_schema_lists_exactly_the_allowed_names() -> None:
    schema = json.loads((ROOT / "pinctl" / "schemas" / "plan-v2.json").read_text())
    assert set(_property_names(schema)) == PLAN_ENV_KEYS


def test_docs_list_every_allowed_name() -> None:
    text = (ROOT / "docs" / "launch.md").read_text()
    missing = sorted(k for k in PLAN_ENV_KEYS if f"`{k}`" not in text)
    assert not missing, missing
    assert "--allow-env" in text


def test_the_tuning_list_names_no_file_library_or_command() -> None:
    risky = ("FILE", "DEST", "DIR", "PATH", "PLUGIN", "LIBRAR", "COMMAND", "PRELOAD", "CONF")
    assert not [k for k in PLAN_ENV_KEYS if any(r in k for r in risky)]
    assert not TUNING & WRITTEN


@pytest.mark.parametrize("key", sorted(HOSTILE))
def test_hostile_names_are_refused_accurately(key: str) -> None:
    with pytest.raises(PlanError) as err:
        Plan.from_dict(_with_env(**{key: HOSTILE[key]}))
    message = str(err.value)
    assert key in message and "--allow-env" in message and "\n" not in message
    assert "only NCCL_" not in message  # the old text said NCCL_* was allowed, about an NCCL_ name


def test_allow_env_admits_exactly_the_names_given() -> None:
    plan = Plan.from_dict(_with_env(UCX_LOG_FILE="/tmp/ucx.log"), allow_env={"UCX_LOG_FILE"})
    rank0 = plan.rank(0)
    assert rank0 is not None and dict(rank0.env)["UCX_LOG_FILE"] == "/tmp/ucx.log"
    with pytest.raises(PlanError, match="UCX_GDB_COMMAND"):
        Plan.from_dict(_with_env(UCX_LOG_FILE="x", UCX_GDB_COMMAND="y"), allow_env={"UCX_LOG_FILE"})


@pytest.mark.parametrize("name", ["", "nccl_debug", "A=B", "1X", "UCX LOG", "ÜCX"])
def test_allow_env_names_must_be_variable_names(name: str) -> None:
    with pytest.raises(UsageError):
        allowed_names([name])


@given(st.text(max_size=24), st.text(max_size=8))
@settings(max_examples=300, deadline=None)
def test_any_key_is_an_allowed_name_or_a_plan_error(key: str, value: str) -> None:
    plan = plan_dict()
    plan["ranks"][0]["env"][key] = value
    try:
        parsed = parse_plan_text(json.dumps(plan))
    except PlanError as exc:
        assert "\n" not in str(exc)
        return
    rank0 = parsed.rank(0)
    assert rank0 is not None and key in dict(rank0.env) and key in PLAN_ENV_KEYS
    assert env_key_allowed(key)


# --- through the command line: refused in one line, nothing run -----------------------------------


@pytest.mark.parametrize("extra", [[], ["--nproc-per-node", "1"]], ids=["fast-path", "click-path"])
@pytest.mark.parametrize("key", ["UCX_GDB_COMMAND", "NCCL_TOPO_DUMP_FILE"])
def test_launch_refuses_a_hostile_plan_and_runs_nothing(tmp_path: Path, key: str, extra: list[str]) -> None:
    marker = tmp_path / "ran"
    path = write_plan(tmp_path / "p.json", _with_env(**{key: HOSTILE[key]}))
    rank = [] if extra else ["--local-rank", "0"]  # --nproc-per-node starts the ranks itself
    res = pinctl("launch", "--plan", path, *rank, *extra, "--", "touch", str(marker))
    assert res.returncode == 4, res.stderr
    assert res.stderr.startswith("pinctl: error: ") and res.stderr.count("\n") == 1, res.stderr
    assert key in res.stderr and "only NCCL_" not in res.stderr
    assert not marker.exists()


@pytest.mark.parametrize("extra", [[], ["--nproc-per-node", "1"]], ids=["fast-path", "click-path"])
def test_allow_env_on_the_command_line_passes_the_variable(tmp_path: Path, extra: list[str]) -> None:
    out = tmp_path / "seen"
    path = write_plan(tmp_path / "p.json", _with_env(UCX_LOG_FILE="/tmp/ucx-%p.log"))
    command = ["sh", "-c", f'printf %s "$UCX_LOG_FILE" > {out}']
    rank = [] if extra else ["--local-rank", "0"]  # --nproc-per-node starts the ranks itself
    res = pinctl("launch", "--plan", path, *rank, "--allow-env", "UCX_LOG_FILE", *extra, "--", *command)
    assert res.returncode == 0, res.stderr
    assert out.read_text() == "/tmp/ucx-%p.log"


def test_allow_env_names_one_variable_per_option(tmp_path: Path) -> None:
    path = write_plan(tmp_path / "p.json", _with_env(UCX_LOG_FILE="a", NCCL_TOPO_DUMP_FILE="b"))
    marker = tmp_path / "ran"
    res = pinctl("launch", "--plan", path, "--local-rank", "0", "--allow-env=UCX_LOG_FILE", "--", "touch", str(marker))
    assert res.returncode == 4 and "NCCL_TOPO_DUMP_FILE" in res.stderr and not marker.exists()
    res = pinctl("launch", "--plan", path, "--local-rank", "0", "--allow-env=UCX_LOG_FILE",
                 "--allow-env", "NCCL_TOPO_DUMP_FILE", "--dry-run", "--", "true")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "NCCL_TOPO_DUMP_FILE=b" in res.stdout


@pytest.mark.parametrize(
    "args",
    [["--allow-env", "ucx_log_file", "--plan", "{plan}"], ["--allow-env", "UCX_LOG_FILE", "-C", "0"]],
    ids=["not-a-name", "no-plan-file"],
)
def test_allow_env_misuse_is_one_usage_line(tmp_path: Path, args: list[str]) -> None:
    marker = tmp_path / "ran"
    path = write_plan(tmp_path / "p.json", plan_dict())
    res = pinctl("launch", *(a.format(plan=path) for a in args), "--local-rank", "0", "--", "touch", str(marker))
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("pinctl: error: ") and res.stderr.count("\n") == 1, res.stderr
    assert not marker.exists()


def test_a_plan_error_never_escapes_as_another_exception() -> None:
    with contextlib.suppress(PlanError):
        Plan.from_dict(_with_env(**{"X" * 200: "y"}))


@pytest.mark.parametrize(
    "command", [["check", "{pid}"], ["doctor", "--only", "kernel", "--no-nvml"]], ids=["check", "doctor"]
)
def test_commands_that_read_a_plan_take_allow_env_too(tmp_path: Path, command: list[str]) -> None:
    """The refusal says "add --allow-env NAME": every command that reads a plan file takes it."""
    path = write_plan(tmp_path / "p.json", _with_env(UCX_LOG_FILE="/tmp/ucx.log"))
    args = [a.format(pid=os.getpid()) for a in command]
    refused = pinctl(*args, "--plan", path)
    assert refused.returncode == 4 and "--allow-env UCX_LOG_FILE" in refused.stderr, refused.stderr
    accepted = pinctl(*args, "--plan", path, "--allow-env", "UCX_LOG_FILE")
    assert "not allowed" not in accepted.stderr and accepted.returncode in (0, 1), accepted.stderr
