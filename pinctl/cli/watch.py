"""``pinctl watch``: while a job runs, what else takes its CPUs' time, interval after interval.

Targets: the ranks ``pinctl launch`` started (found as ``check`` finds them), PIDs given (with
``--plan`` their ranks and the plan's housekeeping and idle CPUs are named), or ``--cpus LIST``.
Each interval reads the per-CPU counters and the targets' own threads; every thread on the node
is read only once a target's foreign time is notable, to name who (pinctl.kernel.counters).
Exit status: 0, 1 when a ``--max-*`` bound was crossed in any interval, 2 bad input.
"""

from __future__ import annotations

import json
import os
import pwd
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace

import click

from pinctl.cli.output import note, out
from pinctl.cpuset import format_list, parse_list
from pinctl.doctor.pinning import expected_for, gather, launched_ranks
from pinctl.errors import UsageError
from pinctl.fleet.prometheus import watch_textfile
from pinctl.kernel.counters import Sample, take
from pinctl.kernel.files import KernelFiles
from pinctl.kernel.host import hostname
from pinctl.kernel.proc import process_id
from pinctl.kernel.stat import STAT, clock_ticks, read_cpu_times
from pinctl.noise.figures import Target, compute
from pinctl.noise.report import Bounds, watch_doc
from pinctl.plan.load import load_plan
from pinctl.plan.types import Plan
from pinctl.render.noise import draw_watch

NUMA_EVERY = 10  # numa_maps makes the kernel walk page tables: read it every tenth interval


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
        found = launched_ranks(files, uid=os.getuid(), job=os.environ.get("SLURM_JOB_ID"),
                               fingerprint=plan.fingerprint if plan else None, exclude=os.getpid())  # fmt: skip
        out += [t for pid in found if (t := process_target(files, pid, plan, "rank")) is not None]
    if plan is not None and plan.cpu_classes is not None:
        for name in ("housekeeping", "idle"):
            cls = getattr(plan.cpu_classes, name)
            if cls:
                out.append(Target(name, "class", cls))
    if not out:
        raise UsageError("nothing to watch: no rank started by pinctl launch is running here "
                         "(give PIDs, or --cpus LIST)")  # fmt: skip
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


@click.command()
@click.argument("pids", nargs=-1)
@click.option("--cpus", metavar="LIST", help="Watch these CPUs (no process needed), e.g. 8-15.")
@click.option("--plan", "plan_file", metavar="FILE", help="A plan file: names ranks and its housekeeping/idle CPUs.")
@click.option("--interval", type=click.FloatRange(0.1, 3600), default=1.0, show_default=True, help="Seconds.")
@click.option("--count", type=click.IntRange(1), default=None, help="Stop after N intervals (default: until Ctrl-C).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per interval (JSON Lines, pinctl.watch/v1).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "prometheus"]),
    default="table",
    help="table (default), json (= --json), or prometheus (node_exporter textfile collector).",
)
@click.option(
    "--max-foreign",
    type=click.FloatRange(0, 100),
    metavar="PCT",
    help="Exit 1 when other threads take more than PCT% of a target's CPUs.",
)
@click.option("--max-irq", type=click.FloatRange(0), metavar="N", help="Exit 1 past N interrupts/s on a target.")
@click.option("--max-steal", type=click.FloatRange(0, 100), metavar="PCT", help="Exit 1 past PCT% steal.")
def watch(pids: tuple[str, ...], cpus: str | None, plan_file: str | None, interval: float, count: int | None,
          as_json: bool, fmt: str, max_foreign: float | None, max_irq: float | None,
          max_steal: float | None) -> int:  # fmt: skip
    """Watch a running job's CPUs: who else runs there, interrupts, steal, preemptions.

    With no PID and no --cpus, watches the ranks `pinctl launch` started (this user's).

    Exit status: 0, 1 when a --max-* bound was crossed, 2 bad input.
    """
    files = KernelFiles()
    plan = load_plan(plan_file) if plan_file else None
    targets = targets_for(files, cpus, pids, plan)
    bounds = Bounds(max_foreign=max_foreign, max_irq=max_irq, max_steal=max_steal)
    fmt = "json" if as_json else fmt
    host = node_name(files)
    ticks = clock_ticks()
    watched = frozenset().union(*(t.cpus for t in targets))
    own = tuple(dict.fromkeys(p for t in targets for p in t.pids))
    prev = take(files, watched, own, ticks, numa=True)
    scan = False
    crossed = False
    n = 0
    try:
        while count is None or n < count:
            n += 1
            time.sleep(max(0.0, prev.t_ns / 1e9 + interval - time.monotonic()))
            cur = take(files, watched, own, ticks, scan=scan, numa=n % NUMA_EVERY == 0)
            figures = [compute(prev, cur, t, ticks) for t in targets]
            scan = any(bounds.notable(f) for f in figures)
            if scan and cur.scan is None:  # notable now: a first scan, so the next interval names who
                cur = _with_scan(files, cur, ticks)
            names = users(o.uid for f in figures for o in f.offenders or ())
            doc = watch_doc(host, n, time.time(), figures, names, bounds=bounds, denied=cur.denied)
            crossed = crossed or not doc["ok"]
            _emit(doc, fmt)
            prev = cur if cur.numa or not prev.numa else replace(cur, numa=prev.numa)
    except KeyboardInterrupt:
        note(f"stopped after {n - 1} interval{'s' if n != 2 else ''}")
    return 1 if crossed else 0


def _with_scan(files: KernelFiles, cur: Sample, ticks: int) -> Sample:
    every = take(files, (), (), ticks, scan=True, clock=cur.t_ns)
    return replace(cur, scan=every.scan, owners=every.owners)


def _emit(doc: dict[str, object], fmt: str) -> None:
    if fmt == "json":
        out([json.dumps(doc, sort_keys=True)])
    elif fmt == "prometheus":
        out([watch_textfile(doc).rstrip("\n")])
    else:
        draw_watch(doc)
