"""Is this plan for this node? Cheap checks against the kernel's facts, before anything is bound.

The plan's fingerprint needs discovery (hwloc, NVML), too slow for ``launch --plan``;
these checks read what sysfs and /proc tell at once: the hostname, that every CPU of
the plan exists here, every memory node is online, every rank's CPUs lie in its NUMA
node here, and that the launched rank's CPUs and nodes are inside this process's cgroup
cpuset and allowed mems. The affinity the process inherited (srun --cpu-bind, mpirun's
bind-to-core) is no limit: binding replaces it. A plan made for another node is refused
unless ``--force``.
"""

from __future__ import annotations

import os

from pinctl.cpuset import format_list
from pinctl.errors import PlanError
from pinctl.kernel.cgroup import cpuset
from pinctl.kernel.cpus import online_cpus, present_cpus
from pinctl.kernel.files import KernelFiles
from pinctl.kernel.numa import node_cpus, online_nodes
from pinctl.kernel.proc import read_status
from pinctl.planfile.types import Plan, RankPlan
from pinctl.words import named, said, verb


def check_live_node(plan: Plan, rank: RankPlan | None, *, files: KernelFiles | None = None) -> list[str]:
    """One line per reason the plan does not fit this node (empty = it fits)."""
    fs = files or KernelFiles()
    problems: list[str] = []
    live_host = os.uname().nodename  # what socket.gethostname() returns, without importing socket
    if plan.hostname != live_host:
        problems.append(f"plan was made on host {plan.hostname!r}, this is {live_host!r}")
    present = present_cpus(fs)
    if present is not None:
        extra = set().union(*(r.cpus for r in plan.ranks)) - present
        if extra:
            problems.append(f"{named('CPU', extra)} of the plan {verb(len(extra), 'does', 'do')} not exist here")
    online = online_cpus(fs)
    if online is not None and plan.cpu_classes is not None:
        c = plan.cpu_classes
        unnamed = online - plan.rank_cpus - plan.helper_cpus - c.housekeeping - c.idle - c.not_allowed
        if unnamed:
            problems.append(
                f"the plan's CPU classes do not cover this node: {said('CPU', unnamed, 'is', 'are')} in "
                "none (a plan names every CPU of its node)"
            )
    extra_nodes = set().union(*(r.mems for r in plan.ranks)) - online_nodes(fs)
    if extra_nodes:
        problems.append(
            f"{named('NUMA node', extra_nodes)} of the plan {verb(len(extra_nodes), 'is', 'are')} not online here"
        )
    problems += _numa_layout_problems(plan, fs)
    if rank is not None:
        limit = cpuset(fs)
        if limit is not None and rank.cpus - limit.cpus:
            problems.append(
                f"rank {rank.local_rank}'s {said('CPU', rank.cpus - limit.cpus, 'is', 'are')} outside the CPUs this "
                f"job step or container may use (cgroup cpuset {format_list(limit.cpus)}, {limit.path}): "
                + _more_cpus_hint(len(rank.cpus))
            )
        me = read_status(fs, "self")
        if me is not None:
            outside_mems = rank.mems - me.mems_allowed
            if outside_mems:
                problems.append(
                    f"rank {rank.local_rank}'s {said('memory node', outside_mems, 'is', 'are')} outside the "
                    f"allowed mems {format_list(me.mems_allowed)}"
                )
    return problems


def _more_cpus_hint(ncpus: int) -> str:
    """How to get the CPUs a rank needs, in the words of the launcher in use."""
    if "SLURM_JOB_ID" in os.environ:
        return (
            f"ask Slurm for them (srun -c {ncpus} per task, or srun --exclusive; "
            "a step holds only the CPUs it asks for)"
        )
    return "give the job or container more CPUs (docker --cpuset-cpus, the pod's CPU request)"


def _numa_layout_problems(plan: Plan, fs: KernelFiles) -> list[str]:
    """Each rank's CPUs must lie in its NUMA node here: a same-named node with another
    CPU numbering (BIOS change, other hardware) would otherwise be bound across sockets."""
    problems: list[str] = []
    cpus_of: dict[int, frozenset[int] | None] = {}
    for r in plan.ranks:
        if r.numa_node is None or not r.cpus:
            continue
        if r.numa_node not in cpus_of:
            cpus_of[r.numa_node] = node_cpus(fs, r.numa_node)
        here = cpus_of[r.numa_node]
        if here is not None and not r.cpus <= here:
            problems.append(
                f"rank {r.local_rank}'s {said('CPU', r.cpus - here, 'is', 'are')} not on NUMA node {r.numa_node} here"
            )
    return problems


def refuse_foreign(problems: list[str], *, force: bool) -> None:
    """A plan for another node is an error unless --force (then the caller warns)."""
    if problems and not force:
        raise PlanError("plan does not fit this node: " + "; ".join(problems) + " (use --force to apply it anyway)")
