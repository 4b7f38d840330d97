"""``check``'s facts and verdicts: what a process really runs on, and what is off compared with the plan.

Facts are read from /proc (``gather``); the verdicts (``evaluate``) are a pure
function of facts, plan and node CPU lists, so tests can feed them by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pinctl.cpuset import decimal, format_list
from pinctl.discovery.nvml import GpuProcesses
from pinctl.job.localrank import rank_from_env
from pinctl.kernel.files import KernelFiles
from pinctl.kernel.proc import (
    MemPolicy,
    pids,
    read_environ,
    read_numa_maps,
    read_status,
    summarize_policies,
    thread_affinities,
)
from pinctl.plan.environment import MARKER_PLAN, MARKER_RANK
from pinctl.planfile.types import Plan, RankPlan
from pinctl.words import named, said


@dataclass(frozen=True)
class ProcFacts:
    """One process as /proc shows it; ``policies`` None when numa_maps is unreadable."""

    pid: int
    exists: bool
    name: str = ""
    cpus_allowed: frozenset[int] = frozenset()
    mems_allowed: frozenset[int] = frozenset()
    threads: Mapping[int, frozenset[int]] = field(default_factory=dict)
    policies: tuple[MemPolicy, ...] | None = None
    local_rank: int | None = None
    rank_source: str | None = None
    gpus: tuple[int, ...] = ()

    @property
    def cpus(self) -> frozenset[int]:
        """Every CPU any thread may run on."""
        out: set[int] = set()
        for cpus in self.threads.values():
            out |= cpus
        return frozenset(out) if out else self.cpus_allowed


def gather(pid: int, *, gpus: tuple[int, ...] = (), files: KernelFiles | None = None) -> ProcFacts:
    fs = files or KernelFiles()
    status = read_status(fs, pid)
    if status is None:
        return ProcFacts(pid, exists=False, gpus=gpus)
    env = read_environ(fs, pid)
    marked = env.get(MARKER_RANK, "") if env is not None else ""
    number = decimal(marked, limit=9)
    found = (number, MARKER_RANK) if number is not None else rank_from_env(env) if env is not None else None
    maps = read_numa_maps(fs, pid)
    return ProcFacts(
        pid=pid,
        exists=True,
        name=status.name,
        cpus_allowed=status.cpus_allowed,
        mems_allowed=status.mems_allowed,
        threads=thread_affinities(fs, pid),
        policies=tuple(p for _, p in maps) if maps is not None else None,
        local_rank=found[0] if found else None,
        rank_source=found[1] if found else None,
        gpus=gpus,
    )


def launched_ranks(
    files: KernelFiles, *, uid: int, job: str | None, fingerprint: str | None, exclude: int
) -> list[int]:
    """The processes ``pinctl launch`` started as ranks (its markers in their environment), of user
    *uid*, in Slurm job *job* when given, of the plan with *fingerprint* when given; not their
    children (a DataLoader worker inherits its rank's markers), not *exclude* (the caller)."""
    marked: dict[int, tuple[str, str]] = {}
    parents: dict[int, int | None] = {}
    for pid in pids(files):
        if pid == exclude:
            continue
        env = read_environ(files, pid)
        status = read_status(files, pid)
        if env is None or status is None or MARKER_RANK not in env or status.uid != uid:
            continue
        if job is not None and env.get("SLURM_JOB_ID") != job:
            continue
        if fingerprint is not None and env.get(MARKER_PLAN) != fingerprint:
            continue
        marked[pid] = (env.get(MARKER_PLAN, ""), env[MARKER_RANK])
        parents[pid] = status.ppid
    return sorted(pid for pid, mark in marked.items() if marked.get(parents[pid] or -1) != mark)


def expected_for(facts: ProcFacts, plan: Plan | None) -> tuple[RankPlan, ...]:
    """The plan ranks a process should follow: by its LOCAL_RANK-style variable, else by the GPUs it uses."""
    if plan is None:
        return ()
    if facts.local_rank is not None:
        rank = plan.rank(facts.local_rank)
        return (rank,) if rank is not None else ()
    out: list[RankPlan] = []
    for gpu in facts.gpus:
        out += [r for r in plan.ranks_for_gpu(gpu) if r not in out]
    return tuple(out)


def _bound_policies(policies: Sequence[MemPolicy]) -> dict[str, frozenset[int]]:
    """Policies that name nodes (bind, prefer, interleave), by their text."""
    return {str(p): p.nodes for p in policies if p.nodes}


def evaluate(
    facts: Sequence[ProcFacts],
    plan: Plan | None,
    node_cpus: Mapping[int, frozenset[int]],
) -> dict[int, list[str]]:
    """Problems per PID: CPUs outside the rank's (and its GPU's NUMA node), ranks sharing CPUs, remote memory."""
    issues: dict[int, list[str]] = {f.pid: [] for f in facts}
    for f in facts:
        out = issues[f.pid]
        if not f.exists:
            out.append("process does not exist")
            continue
        expected = expected_for(f, plan)
        if plan is not None and f.local_rank is not None and not expected:
            out.append(f"local rank {f.local_rank} ({f.rank_source}) is not in the plan")
        if not expected:
            continue
        want_cpus = frozenset().union(*(r.cpus for r in expected))
        outside = f.cpus - want_cpus
        if outside:
            out.append(f"runs on {named('CPU', outside)} outside its rank's {named('CPU', want_cpus)}")
        homes = {r.numa_node for r in expected if r.numa_node is not None}
        home_cpus = frozenset().union(*(node_cpus.get(n, frozenset()) for n in homes))
        if homes and home_cpus and f.cpus - home_cpus:
            out.append(f"{said('CPU', f.cpus - home_cpus, 'is', 'are')} outside its GPU's {named('NUMA node', homes)}")
        if f.policies is not None:
            want_mems = frozenset().union(*(r.mems for r in expected))
            for text, nodes in sorted(_bound_policies(f.policies).items()):
                remote = nodes - want_mems - homes
                if remote:
                    home = format_list(homes or want_mems)
                    out.append(f"memory {text} uses node {format_list(remote)}, rank's node is {home}")
            policies = {r.mem_policy for r in expected}
            # Binding to every node the process may use anyway (one-node machines) changes nothing.
            no_op = bool(f.mems_allowed) and f.mems_allowed <= want_mems
            if "bind" in policies and want_mems and not no_op and not any(p.mode == "bind" for p in f.policies):
                out.append(f"memory is not bound (plan: bind {format_list(want_mems)})")
    ranked = [f for f in facts if f.exists and (f.local_rank is not None or f.gpus)]
    for i, a in enumerate(ranked):
        for b in ranked[i + 1 :]:
            if a.local_rank is not None and a.local_rank == b.local_rank:
                issues[a.pid].append(f"has the same local rank {a.local_rank} as process {b.pid}")
                issues[b.pid].append(f"has the same local rank {b.local_rank} as process {a.pid}")
            shared = a.cpus & b.cpus
            if shared:
                issues[a.pid].append(f"shares {named('CPU', shared)} with process {b.pid}")
                issues[b.pid].append(f"shares {named('CPU', shared)} with process {a.pid}")
    return issues


def thread_groups(f: ProcFacts) -> dict[str, int]:
    """How many threads run on each CPU list (one entry when all threads agree)."""
    groups: dict[str, int] = {}
    for cpus in f.threads.values():
        key = format_list(cpus)
        groups[key] = groups.get(key, 0) + 1
    return dict(sorted(groups.items(), key=lambda kv: -kv[1]))


def to_dict(f: ProcFacts, issues: list[str], plan: Plan | None) -> dict[str, Any]:
    """One process in ``check --json`` (pinctl.check/v1)."""
    expected = expected_for(f, plan)
    return {
        "pid": f.pid,
        "exists": f.exists,
        "name": f.name,
        "local_rank": f.local_rank,
        "rank_source": f.rank_source,
        "gpus": list(f.gpus),
        "cpus": sorted(f.cpus) if f.exists else [],
        "cpulist": format_list(f.cpus) if f.exists else "",
        "threads": thread_groups(f),
        "mems_allowed": sorted(f.mems_allowed),
        "mem_policies": summarize_policies([(0, p) for p in f.policies]) if f.policies is not None else None,
        "expected": [
            {
                "local_rank": r.local_rank,
                "cpulist": format_list(r.cpus),
                "numa_node": r.numa_node,
                "mem_policy": r.mem_policy,
                "mems": sorted(r.mems),
            }
            for r in expected
        ],
        "issues": issues,
        "ok": not issues,
    }


def pids_by_gpu(per_gpu: Sequence[GpuProcesses], index_of: Mapping[str, int] | None) -> dict[int, list[int]]:
    """PID -> the GPUs it runs on, as pinctl numbers them (node-wide, PCI order).

    NVML's index counts only the GPUs this job was given (inside a pod given GPUs 2 and 5,
    NVML's 0 is the node's 2), so GPUs are joined on bus ids through *index_of* (bus id ->
    pinctl's index, from the plan or the node); a GPU it does not hold is left out. Without
    *index_of*, NVML's index is all there is.
    """
    found: dict[int, list[int]] = {}
    for gpu in per_gpu:
        index = gpu.index if index_of is None else index_of.get(gpu.pci_bus_id or "")
        if index is None:
            continue
        for pid in gpu.pids:
            found.setdefault(pid, []).append(index)
    return found
