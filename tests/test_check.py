"""``pinctl check`` on real processes, and its verdicts on hand-made facts."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from act_helpers import ALL_CPUS, PYTHON, TWO_CPUS, pinctl, plan_dict, rank, wait_for, write_plan

from pinctl.kernel.proc import MemPolicy, parse_numa_maps
from pinctl.pinning import ProcFacts, evaluate, gather
from pinctl.planfile.types import Plan

needs_two = pytest.mark.skipif(not TWO_CPUS, reason="needs two CPUs")
FIRST, LAST = ALL_CPUS[0], ALL_CPUS[-1]


@pytest.fixture
def plan_path(tmp_path: Path) -> str:
    return write_plan(tmp_path / "plan.json", plan_dict([rank(0, [FIRST]), rank(1, [LAST])]))


@pytest.fixture
def ranks(plan_path: str) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two ranks launched by pinctl from the plan, sleeping."""
    procs = [
        subprocess.Popen(
            [PYTHON, "-m", "pinctl", "launch", "--plan", plan_path, "--", "sleep", "60"],
            env={**os.environ, "LOCAL_RANK": str(i)},
        )
        for i in range(2)
    ]
    try:
        assert wait_for(lambda: all(_comm(p.pid) == "sleep" for p in procs))
        yield procs
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@needs_two
def test_ranks_launched_from_the_plan_check_ok(plan_path: str, ranks: list[subprocess.Popen[bytes]]) -> None:
    res = pinctl("check", *(str(p.pid) for p in ranks), "--plan", plan_path, "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["ok"] is True
    by_pid = {p["pid"]: p for p in doc["processes"]}
    first = by_pid[ranks[0].pid]
    assert first["local_rank"] == 0 and first["rank_source"] == "PINCTL_LOCAL_RANK"  # launch's mark
    assert first["cpulist"] == str(FIRST)
    assert set(first["mem_policies"]) == {"bind:0"}


@needs_two
def test_repinned_rank_sharing_cpus_is_off(plan_path: str, ranks: list[subprocess.Popen[bytes]]) -> None:
    os.sched_setaffinity(ranks[1].pid, {FIRST, LAST})
    res = pinctl("check", *(str(p.pid) for p in ranks), "--plan", plan_path)
    assert res.returncode == 1
    assert f"{ranks[1].pid}: runs on CPU {FIRST} outside its rank's CPU {LAST}" in res.stdout
    assert f"shares CPU {FIRST} with process {ranks[0].pid}" in res.stdout
    assert res.stdout.rstrip().endswith("not ok")


@needs_two
def test_without_pids_it_checks_the_ranks_pinctl_launched_and_nothing_else(plan_path: str) -> None:
    """Not a shell that merely carries a launcher's variable (a batch shell, an srun client), and not a
    rank's own children (a DataLoader worker inherits its rank and its CPUs): judging those cried wolf."""
    # A job id of this test's own: other ranks pinctl launched on this machine (another suite) are not ours.
    job = {"SLURM_JOB_ID": f"pinctl-test-{os.getpid()}"}
    shell = subprocess.Popen(["sleep", "60"], env={**os.environ, **job, "SLURM_LOCALID": "0", "LOCAL_RANK": "0"})
    ranks = [
        subprocess.Popen(
            [PYTHON, "-m", "pinctl", "launch", "--plan", plan_path, "--", "sh", "-c", "sleep 60 & exec sleep 61"],
            env={**os.environ, **job, "LOCAL_RANK": str(i)},
        )
        for i in range(2)
    ]
    try:
        assert wait_for(lambda: all(_comm(p.pid) == "sleep" and _children(p.pid) for p in ranks))
        res = pinctl("check", "--plan", plan_path, "--json", env=job)
        doc = json.loads(res.stdout)
        assert {p["pid"] for p in doc["processes"]} == {p.pid for p in ranks}
        assert res.returncode == 0 and doc["ok"] is True, res.stdout
    finally:
        for p in [shell, *ranks]:
            for child in _children(p.pid):
                os.kill(child, 9)
            p.kill()
            p.wait()


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_missing_pid_is_off() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    res = pinctl("check", str(proc.pid), "--json")
    assert res.returncode == 1
    assert json.loads(res.stdout)["processes"][0]["issues"] == ["process does not exist"]


@needs_two
def test_threads_with_different_affinity_are_shown_per_group() -> None:
    ready = threading.Event()
    stop = threading.Event()
    tids: list[int] = []

    def worker() -> None:
        tids.append(threading.get_native_id())
        os.sched_setaffinity(0, {LAST})
        ready.set()
        stop.wait()

    t = threading.Thread(target=worker)
    t.start()
    try:
        ready.wait(5)
        facts = gather(os.getpid())
        assert facts.threads[tids[0]] == {LAST}
        res = pinctl("check", str(os.getpid()), "--json")
        groups = json.loads(res.stdout)["processes"][0]["threads"]
        assert groups.get(str(LAST), 0) >= 1 and len(groups) >= 2
    finally:
        stop.set()
        t.join()


# --- verdicts on hand-made facts (a two-node machine) ----------------------------------------------

NODES = {0: frozenset(range(4)), 1: frozenset(range(4, 8))}
PLAN = Plan.from_dict(
    plan_dict(
        [
            rank(0, [0, 1], numa_node=0, mems=[0], gpu={"index": 0}),
            rank(1, [4, 5], numa_node=1, mems=[1], gpu={"index": 1}),
        ]
    )
)


def _facts(
    pid: int,
    cpus: set[int],
    policy: str = "bind:0",
    *,
    local_rank: int | None = None,
    rank_source: str | None = None,
    gpus: tuple[int, ...] = (),
) -> ProcFacts:
    policies = tuple(p for _, p in parse_numa_maps(f"1000 {policy} anon=1\n2000 {policy} file=/x\n"))
    return ProcFacts(
        pid,
        True,
        "x",
        frozenset(cpus),
        frozenset({0, 1}),
        {pid: frozenset(cpus)},
        policies,
        local_rank,
        rank_source,
        gpus,
    )


def test_correctly_bound_ranks_have_no_issue() -> None:
    issues = evaluate([_facts(10, {0, 1}, local_rank=0), _facts(11, {4, 5}, "bind:1", local_rank=1)], PLAN, NODES)
    assert issues == {10: [], 11: []}


def test_remote_memory_and_cpus_outside_the_gpus_node_are_off() -> None:
    issues = evaluate([_facts(10, {0, 1, 4}, "bind:1", local_rank=0)], PLAN, NODES)[10]
    assert "runs on CPU 4 outside its rank's CPUs 0-1" in issues
    assert "CPU 4 is outside its GPU's NUMA node 0" in issues
    assert "memory bind:1 uses node 1, rank's node is 0" in issues


def test_unbound_memory_is_off_when_the_plan_binds() -> None:
    issues = evaluate([_facts(10, {0, 1}, "default", local_rank=0)], PLAN, NODES)[10]
    assert issues == ["memory is not bound (plan: bind 0)"]


def test_unbound_memory_is_fine_when_binding_would_change_nothing() -> None:
    """A process that may only use the plan's node (a one-node machine, a cpuset.mems) is as good as bound."""
    confined = replace(_facts(10, {0, 1}, "default", local_rank=0), mems_allowed=frozenset({0}))
    assert evaluate([confined], PLAN, NODES)[10] == []


def test_gpu_processes_are_matched_by_gpu_and_sharing_is_found() -> None:
    issues = evaluate([_facts(10, {4, 5}, "bind:1", gpus=(1,)), _facts(11, {5}, "bind:1", gpus=(1,))], PLAN, NODES)
    assert issues[10] == ["shares CPU 5 with process 11"]


def test_rank_not_in_plan_and_no_plan() -> None:
    issues = evaluate([_facts(10, {0}, local_rank=7, rank_source="LOCAL_RANK")], PLAN, NODES)[10]
    assert issues == ["local rank 7 (LOCAL_RANK) is not in the plan"]
    assert evaluate([_facts(10, {0, 1, 4}, "bind:1")], None, NODES) == {10: []}


def test_numa_maps_policies_parse() -> None:
    text = (
        "7f00 default file=/lib/x.so mapped=3\n"
        "7f01 bind:0-1 anon=4\n"
        "7f02 prefer (many):0,2 anon=1\n"
        "7f03 interleave=static:1 anon=1\n"
        "7f04 local anon=2\n"
        "garbage line\n"
    )
    got = [p for _, p in parse_numa_maps(text)]
    assert got == [
        MemPolicy("default"),
        MemPolicy("bind", frozenset({0, 1})),
        MemPolicy("prefer (many)", frozenset({0, 2})),
        MemPolicy("interleave", frozenset({1}), "static"),
        MemPolicy("local"),
    ]
    assert str(got[3]) == "interleave=static:1"
