"""What ``watch`` and ``noise`` look at: the CPUs asked for, the ranks or processes, the node's name
and its users' names; shared by both commands (pinctl.cli.watch, pinctl.cli.noise)."""

from __future__ import annotations

import os
import pwd
import socket
from collections.abc import Iterable, Sequence

from pinctl.cpuset import format_list, parse_list
from pinctl.errors import UsageError
from pinctl.kernel.files import KernelFiles
from pinctl.kernel.host import hostname
from pinctl.kernel.proc import process_id
from pinctl.kernel.stat import STAT, read_cpu_times
from pinctl.noise.figures import Target
from pinctl.pinning import expected_for, gather, launched_ranks
from pinctl.planfile.types import Plan


def node_cpus(files: KernelFiles, given: str | None) -> frozenset[int]:
    """The CPUs /proc/stat counts; *given* (--cpus) must be among them."""
    known = frozenset(read_cpu_times(files))
    if not known:
        raise UsageError(f"{STAT} has no per-CPU counters: nothing to watch")
    if given is None:
        return known
    cpus = parse_list(given, what="--cpus")
    if not cpus or cpus - known:
        raise UsageError(f"--cpus {given}: no such online CPU {format_list(cpus - known) or given}")
    return cpus


def process_target(files: KernelFiles, pid: int, plan: Plan | None, kind: str) -> Target | None:
    facts = gather(pid, files=files)
    if not facts.exists:
        return None
    ranks = expected_for(facts, plan)
    mems = frozenset().union(*(r.mems for r in ranks)) if ranks else facts.mems_allowed
    label = f"rank {facts.local_rank} (pid {pid})" if facts.local_rank is not None else f"{facts.name} (pid {pid})"
    return Target(label, kind, facts.cpus, (pid,), mems, facts.local_rank)


def targets_for(files: KernelFiles, cpus: str | None, pids: Sequence[str], plan: Plan | None) -> list[Target]:
    """What to watch, from the options; a PID that does not exist is a usage error."""
    if cpus is not None and pids:
        raise UsageError("give PIDs or --cpus, not both")
    if cpus is not None:
        chosen = node_cpus(files, cpus)
        return [Target(f"CPUs {format_list(chosen)}", "cpus", chosen)]
    node_cpus(files, None)
    out: list[Target] = []
    if pids:
        for text in dict.fromkeys(pids):
            pid = process_id(text)
            target = process_target(files, pid, plan, "process") if pid is not None else None
            if target is None:
                raise UsageError(f"{text[:40]!r} is not a running process")
            out.append(target)
    else:
        found = launched_ranks(
            files,
            uid=os.getuid(),
            job=os.environ.get("SLURM_JOB_ID"),
            fingerprint=plan.fingerprint if plan else None,
            exclude=os.getpid(),
        )
        out += [t for pid in found if (t := process_target(files, pid, plan, "rank")) is not None]
    if plan is not None and plan.cpu_classes is not None:
        for name in ("housekeeping", "idle"):
            cls = getattr(plan.cpu_classes, name)
            if cls:
                out.append(Target(name, "class", cls))
    if not out:
        raise UsageError(
            "nothing to watch: no rank started by pinctl launch is running here (give PIDs, or --cpus LIST)"
        )
    return out


def users(uids: Iterable[int | None]) -> dict[int, str]:
    names = {}
    for uid in {u for u in uids if u is not None}:
        try:
            names[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            names[uid] = str(uid)
    return names


def node_name(files: KernelFiles) -> str:
    return hostname(files) or socket.gethostname()
