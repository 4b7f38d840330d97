"""The plan file is untrusted: what the validator lets through, and what it refuses."""

from __future__ import annotations

import contextlib
import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from act_helpers import pinctl, plan_dict, rank, write_plan
from hypothesis import given, settings
from hypothesis import strategies as st

from pinctl.discovery import discover
from pinctl.errors import PlanError
from pinctl.job.fit import check_live_node
from pinctl.plan.make import fingerprint, make_plan
from pinctl.plan.request import PlanRequest
from pinctl.planfile import load
from pinctl.planfile.allowlist import env_key_allowed
from pinctl.planfile.load import MAX_FILE_BYTES, load_plan, parse_plan_text
from pinctl.planfile.types import Plan
from pinctl.render.export import plan_to_json

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "pinctl" / "schemas" / "plan-v2.json"


def test_valid_plan_keeps_what_acting_needs() -> None:
    plan = Plan.from_dict(plan_dict([rank(0, [0, 1], mem_policy="interleave"), rank(1, [2])]))
    assert plan.hostname == os.uname().nodename
    r0 = plan.rank(0)
    assert r0 is not None
    assert r0.cpus == {0, 1}
    assert r0.mem_policy == "interleave"
    assert dict(r0.env) == {"LOCAL_RANK": "0", "OMP_NUM_THREADS": "2"}
    assert plan.rank(2) is None


@pytest.mark.parametrize(
    "key", ["NCCL_IB_HCA", "UCX_NET_DEVICES", "OMP_NUM_THREADS", "NCCL_DEBUG", "CUDA_VISIBLE_DEVICES", "LOCAL_RANK"]
)
def test_allowlisted_env_keys(key: str) -> None:
    assert env_key_allowed(key)


@pytest.mark.parametrize(
    "key",
    [
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "PATH",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "BASH_ENV",
        "NCCL_",
        "nccl_debug",
        "NCCL DEBUG",
        "NCCL_X=Y",
        "HOME",
        "IFS",
        "CUDA_VISIBLE_DEVICES_X",
        # allowed prefixes, but they load code or write files
        "NCCL_NET_PLUGIN",
        "NCCL_TUNER_PLUGIN",
        "NCCL_CONF_FILE",
        "NCCL_DEBUG_FILE",
        "OMP_TOOL_LIBRARIES",
        "UCX_MODULE_DIR",
        # issue 11: holes in the old prefix list with a deny-list inside
        "UCX_GDB_COMMAND",
        "UCX_LOG_FILE",
        "UCX_PROFILE_FILE",
        "UCX_STATS_DEST",
        "NCCL_TOPO_DUMP_FILE",
        "NCCL_GRAPH_DUMP_FILE",
        # pinctl's own markers are set by launch, never by a file; and names nobody listed
        "PINCTL_LOCAL_RANK",
        "PINCTL_PLAN",
        "NCCL_SOME_FUTURE_VARIABLE",
        "OMP_DISPLAY_ENV",
    ],
)
def test_env_keys_outside_the_allowlist_are_refused(key: str) -> None:
    bad = plan_dict()
    bad["ranks"][0]["env"][key] = "/tmp/evil.so"
    with pytest.raises(PlanError, match=r"not allowed|not a plain variable name") as err:
        Plan.from_dict(bad)
    assert "only NCCL_" not in str(err.value) and "\n" not in str(err.value)


def _mutate(path: str, value: Any) -> dict[str, Any]:
    """A copy of the good plan with one place (dotted path, ints index lists) set to *value*."""
    obj = plan_dict()
    target: Any = obj
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = parts[-1]
    if value is _DELETE:
        del target[last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return obj


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("schema", "pinctl.plan/v3", "is not 'pinctl.plan/v1' or 'pinctl.plan/v2'"),
        ("schema", 1, "is not"),
        ("ranks.0.cpus", [70000], "out of range"),
        ("ranks.0.cpus", [-1], "out of range"),
        ("ranks.0.cpus", [10**30], "out of range"),
        ("ranks.0.cpus", [True], "expected an integer"),
        ("ranks.0.cpus", [0.5], "expected an integer"),
        ("ranks.0.cpus", "0-1", "expected a list"),
        ("ranks.0.cpus", [], "empty"),
        ("ranks.0.cpus", [0, 0], "duplicate"),
        ("ranks.0.cpulist", "0-3", "does not match"),
        ("ranks.0.mems", [70000], "out of range"),
        ("ranks.0.mems", [], "needs at least one node"),
        ("ranks.0.mem_policy", "steal", "is not one of"),
        ("ranks.0.local_rank", "0", "expected an integer"),
        ("ranks.0.local_rank", 5, "does not match local_rank 5"),
        ("ranks.0.env", ["LOCAL_RANK"], "expected an object"),
        ("ranks.0.env.OMP_NUM_THREADS", 4, "expected a string"),
        ("ranks.0.env.OMP_NUM_THREADS", "4\x00LD_PRELOAD=x", "NUL"),
        ("ranks.0.env.OMP_NUM_THREADS", "x" * 5000, "longer than"),
        ("ranks.0.env.LOCAL_RANK", "1", "does not match local_rank"),
        ("ranks.0.gpu", 3, "expected an object"),
        ("ranks.0.nics", "mlx5_0", "expected a list"),
        ("ranks.0.shell", "rm -rf /", "unknown key"),
        ("ranks.0.env", _DELETE, "missing key 'env'"),
        ("node.fingerprint", None, "expected a string"),
        ("node", _DELETE, "missing key 'node'"),
        ("ranks", [], "no ranks"),
        ("ranks", {"0": {}}, "expected a list"),
        ("extra", 1, "unknown key"),
    ],
)
def test_malformed_plans_are_refused_with_the_place_named(path: str, value: Any, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        Plan.from_dict(_mutate(path, value))


def test_duplicate_or_gapped_local_ranks_are_refused() -> None:
    with pytest.raises(PlanError, match="appears twice"):
        Plan.from_dict(plan_dict([rank(0, [0]), rank(0, [1])]))
    with pytest.raises(PlanError, match="local ranks must be 0-1"):
        Plan.from_dict(plan_dict([rank(0, [0]), rank(2, [1])]))


def _classes(**given: list[int]) -> dict[str, Any]:
    return {"housekeeping": [], "idle": [], "not_allowed": [], **given}


@pytest.mark.parametrize(
    ("ranks", "classes", "message"),
    [
        ([rank(0, [0, 1]), rank(1, [1, 2])], None, r"ranks\[1\]\.cpus: CPU 1 is also rank 0's"),
        ([rank(0, [0], helpers=[5]), rank(1, [1], helpers=[5])], None, "CPU 5 is also rank 0's helper"),
        ([rank(0, [0]), rank(1, [1])], _classes(housekeeping=[2], idle=[2]), "CPU 2 is in two classes"),
        ([rank(0, [0]), rank(1, [1])], _classes(idle=[1]), "CPU 1 is a rank's and also idle"),
    ],
)
def test_a_cpu_of_two_ranks_or_two_classes_is_refused_at_load(
    tmp_path: Path, ranks: list[dict[str, Any]], classes: dict[str, Any] | None, message: str
) -> None:
    """docs/plan.md: rank CPU sets are pairwise disjoint, and the classes partition the node."""
    doc = plan_dict(ranks)
    if classes is not None:
        doc["cpus"] = classes
    with pytest.raises(PlanError, match=message):
        Plan.from_dict(doc)
    res = pinctl("launch", "--plan", write_plan(tmp_path / "p.json", doc), "--local-rank", "0", "--", "true")
    assert res.returncode == 4
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


def test_a_plan_whose_classes_miss_a_cpu_of_the_node_is_refused(tmp_path: Path) -> None:
    """Every CPU of the node is in one class (a rank's, a helper's, housekeeping, idle, not allowed);
    a CPU of this node the plan does not name is refused where the node is known: launch."""
    from pinctl.kernel.files import KernelFiles

    (tmp_path / "sys/devices/system/cpu").mkdir(parents=True)
    (tmp_path / "sys/devices/system/cpu/online").write_text("0-3\n")
    (tmp_path / "sys/devices/system/node").mkdir(parents=True)
    (tmp_path / "sys/devices/system/node/online").write_text("0\n")
    doc = plan_dict([rank(0, [0]), rank(1, [1])])
    doc["cpus"] = _classes(idle=[2])
    plan = Plan.from_dict(doc)
    problems = check_live_node(plan, None, files=KernelFiles(str(tmp_path)))
    assert problems == ["the plan's CPU classes do not cover this node: CPU 3 is in none (a plan names every "
                        "CPU of its node)"]  # fmt: skip
    doc["cpus"] = _classes(idle=[2], not_allowed=[3])
    assert check_live_node(Plan.from_dict(doc), None, files=KernelFiles(str(tmp_path))) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"schema": "pinctl.plan/v1", "schema": "x"}', "duplicate key"),
        ('{"a": NaN}', "not valid JSON"),
        ("{", "not valid JSON"),
        ("[" * 100000 + "]" * 100000, "not valid JSON"),
        ("[]", "expected an object"),
    ],
)
def test_bad_json_is_refused(text: str, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        parse_plan_text(text)


def test_oversized_and_missing_files_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (MAX_FILE_BYTES + 1))
    with pytest.raises(PlanError, match="larger than"):
        load_plan(str(big))
    with pytest.raises(PlanError, match="cannot read"):
        load_plan(str(tmp_path / "absent.json"))


def test_live_node_check_names_foreign_facts() -> None:
    ok = Plan.from_dict(plan_dict())
    assert check_live_node(ok, ok.rank(0)) == []
    foreign = Plan.from_dict(plan_dict([rank(0, [4000], mems=[7])], hostname="gpu-node-17"))
    problems = " | ".join(check_live_node(foreign, foreign.rank(0)))
    assert "gpu-node-17" in problems
    assert "CPU 4000 of the plan does not exist here" in problems
    assert "7" in problems and "not online" in problems


def test_live_node_check_catches_another_cpu_numbering(tmp_path: Path) -> None:
    """Same hostname, CPUs that exist, but on another NUMA node here (a BIOS that interleaves)."""
    from pinctl.kernel.files import KernelFiles

    for path, text in {
        "sys/devices/system/cpu/present": "0-3",
        "sys/devices/system/node/online": "0-1",
        "sys/devices/system/node/node0/cpulist": "0,2",
        "sys/devices/system/node/node1/cpulist": "1,3",
    }.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text + "\n")
    contiguous = Plan.from_dict(plan_dict([rank(0, [0, 1]), rank(1, [2, 3], numa_node=1, mems=[1])]))
    problems = check_live_node(contiguous, None, files=KernelFiles(str(tmp_path)))
    assert problems == ["rank 0's CPU 1 is not on NUMA node 0 here", "rank 1's CPU 2 is not on NUMA node 1 here"]
    interleaved = Plan.from_dict(plan_dict([rank(0, [0, 2]), rank(1, [1, 3], numa_node=1, mems=[1])]))
    assert check_live_node(interleaved, None, files=KernelFiles(str(tmp_path))) == []


@pytest.mark.parametrize(("slurm", "hint"), [(True, "srun -c 2 per task, or srun --exclusive"),
                                              (False, "docker --cpuset-cpus")])  # fmt: skip
def test_a_rank_beyond_the_cgroup_is_refused_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slurm: bool, hint: str
) -> None:
    """An `srun -n1` step holds one CPU: a two-CPU rank cannot fit, and the message says how to ask."""
    from pinctl.kernel.files import KernelFiles

    step = "/slurm_vm/uid_0/job_3/step_0"
    for path, text in {
        "proc/self/cgroup": f"3:cpuset:{step}",
        f"sys/fs/cgroup/cpuset{step}/cpuset.effective_cpus": "0",
        "proc/self/status": "Name:\tpinctl\nCpus_allowed_list:\t0\nMems_allowed_list:\t0",
    }.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text + "\n")
    if slurm:
        monkeypatch.setenv("SLURM_JOB_ID", "3")
    else:
        monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    plan = Plan.from_dict(plan_dict([rank(0, [0, 1])]))
    problems = check_live_node(plan, plan.rank(0), files=KernelFiles(str(tmp_path)))
    assert any("rank 0's CPU 1 is outside the CPUs this job step or container may use (cgroup cpuset 0" in p
               and hint in p for p in problems), problems  # fmt: skip


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
        max_leaves=20,
    )
)
@settings(max_examples=200, deadline=None)
def test_any_json_value_gives_a_plan_or_a_plan_error(value: Any) -> None:
    with contextlib.suppress(PlanError):
        Plan.from_dict(value)


@given(st.data())
@settings(max_examples=150, deadline=None)
def test_a_valid_plan_with_one_field_replaced_never_crashes(data: st.DataObject) -> None:
    obj = plan_dict()
    r0 = obj["ranks"][0]
    key = data.draw(st.sampled_from(sorted(r0)))
    r0[key] = data.draw(st.none() | st.integers() | st.text(max_size=5) | st.lists(st.integers(), max_size=3))
    with contextlib.suppress(PlanError):
        Plan.from_dict(obj)


# --- the schema file, when the planner's author has written it -----------------------------------


def _schema() -> Any:
    return jsonschema, json.loads(SCHEMA_PATH.read_text())


def test_hand_written_plans_meet_the_json_schema() -> None:
    jsonschema, schema = _schema()
    jsonschema.validate(plan_dict(), schema)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("schema", "pinctl.plan/v3"),
        ("ranks.0.cpus", [True]),
        ("ranks.0.cpus", "0-1"),
        ("ranks.0.mem_policy", "steal"),
        ("ranks.0.env.OMP_NUM_THREADS", 4),
        ("ranks.0.local_rank", "0"),
        ("ranks.0.env", _DELETE),
    ],
)
def test_what_the_validator_refuses_the_schema_refuses_too(path: str, value: Any) -> None:
    jsonschema, schema = _schema()
    bad = _mutate(path, value)
    with pytest.raises(PlanError):
        Plan.from_dict(copy.deepcopy(bad))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


# --- through the command line ---------------------------------------------------------------------


def test_launch_refuses_an_ld_preload_plan_and_runs_nothing(tmp_path: Path) -> None:
    bad = plan_dict()
    bad["ranks"][0]["env"]["LD_PRELOAD"] = "/tmp/evil.so"
    marker = tmp_path / "ran"
    res = pinctl(
        "launch", "--plan", write_plan(tmp_path / "p.json", bad), "--local-rank", "0", "--", "touch", str(marker)
    )
    assert res.returncode == 4
    assert "LD_PRELOAD" in res.stderr and "not allowed" in res.stderr
    assert "Traceback" not in res.stderr
    assert not marker.exists()


def test_launch_refuses_a_foreign_plan_unless_forced(tmp_path: Path) -> None:
    path = write_plan(tmp_path / "p.json", plan_dict(hostname="another-node"))
    res = pinctl("launch", "--plan", path, "--local-rank", "0", "--", "true")
    assert res.returncode == 4
    assert "another-node" in res.stderr and "--force" in res.stderr
    forced = pinctl("launch", "--plan", path, "--local-rank", "0", "--force", "--", "true")
    assert forced.returncode == 0
    assert "warning" in forced.stderr and "another-node" in forced.stderr


def test_foreign_fingerprint_is_refused_where_it_is_computed(tmp_path: Path) -> None:
    path = write_plan(tmp_path / "p.json", plan_dict(fingerprint="ffffffffffffffff"))
    res = pinctl("pin", str(os.getpid()), "--rank", "0", "--plan", path)
    assert res.returncode == 4
    assert "fingerprint ffffffffffffffff is not this node's" in res.stderr
    # The launch fast path checks hostname, CPUs and nodes only (no discovery): same host, so it runs.
    assert pinctl("launch", "--plan", path, "--local-rank", "0", "--", "true").returncode == 0


def test_planner_output_meets_the_validator() -> None:
    node = discover()
    plan = make_plan(node, PlanRequest(ranks=2))
    parsed = parse_plan_text(plan_to_json(plan))
    assert parsed.fingerprint == fingerprint(node)
    assert parsed == plan


@pytest.mark.parametrize(
    "text",
    [
        '{"a": [1, 2.5, "x", null, true]}', '  {"a": 1}\n', "[]", "", "   ", '{"a": 1} x', '{"a": 1}{}', '{"a": 1,}',
        '{"a": 1, "a": 2}', '{"a": NaN}', "Infinity", '"\ufeff"', '\ufeff{"a": 1}', '{"a": "\x01"}', "[" * 100000,
        '{"a": 1e999}', "-0", '"\\ud800"',
    ],
)  # fmt: skip
def test_the_plan_reader_reads_json_as_json_loads_does(text: str) -> None:
    """json_value (json's C scanner, without importing json) gives json.loads's value or its error."""

    def read(how: Callable[[str], object]) -> tuple[str, object]:
        try:
            return "value", how(text)
        except (ValueError, RecursionError, PlanError) as exc:
            return type(exc).__name__, str(exc)

    hooks = {"object_pairs_hook": load._no_duplicates, "parse_constant": load._no_constant, "parse_float": load._finite}
    assert read(load.json_value) == read(lambda t: json.loads(t, **hooks))
