"""``pinctl watch``: while a job runs, what else takes its CPUs' time, interval after interval.

Targets: the ranks ``pinctl launch`` started (found as ``check`` finds them), PIDs given (with
``--plan`` their ranks and the plan's housekeeping and idle CPUs are named), or ``--cpus LIST``.
Each interval reads the per-CPU counters and the targets' own threads; every thread on the node
is read only once a target's foreign time is notable, to name who (pinctl.kernel.counters).
Exit status: 0, 1 when a ``--max-*`` bound was crossed in any interval, 2 bad input.
``--format prometheus`` is one interval (``--count 1``, the default there): one exposition.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

import click

from pinctl.cli.options import FloatRange, IntRange, output_format, output_options
from pinctl.cli.output import note, out
from pinctl.cli.targets import node_name, targets_for, users
from pinctl.discovery.gpufacts import CLOCK_EVENTS
from pinctl.discovery.nvml import NvmlUnavailable, query_health
from pinctl.errors import UsageError
from pinctl.kernel.counters import Sample, take
from pinctl.kernel.files import KeptOpen, KernelFiles
from pinctl.kernel.interrupts import Memo
from pinctl.kernel.stat import clock_ticks
from pinctl.noise.figures import compute_all
from pinctl.noise.report import Bounds, watch_doc
from pinctl.planfile.load import load_plan
from pinctl.render.noise import draw_watch
from pinctl.render.prometheus import watch_textfile

NUMA_EVERY = 10  # numa_maps makes the kernel walk page tables: read it every tenth interval
GPU_EVERY = 10  # an NVML session (init, health queries, shutdown) costs milliseconds: every tenth interval too


@click.command()
@click.argument("pids", nargs=-1)
@click.option("--cpus", metavar="LIST", help="Watch these CPUs (no process needed), e.g. 8-15.")
@click.option("--plan", "plan_file", metavar="FILE", help="A plan file: names ranks and its housekeeping/idle CPUs.")
@click.option(
    "--interval",
    type=FloatRange(0.1, 3600),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="Seconds between two samples.",
)
@click.option(
    "--count", type=IntRange(1), default=None, metavar="N", help="Stop after N intervals (default: until Ctrl-C)."
)
@output_options("One JSON object per interval (JSON Lines, pinctl.watch/v1).")
@click.option(
    "--max-foreign",
    type=FloatRange(0, 100),
    metavar="PCT",
    help="Exit 1 when other threads take more than PCT% of a target's CPUs.",
)
@click.option("--max-irq", type=FloatRange(0), metavar="N", help="Exit 1 past N interrupts/s on a target.")
@click.option("--no-nvml", is_flag=True, help="Do not ask NVML about GPU clock slowdowns.")
@click.option("--max-steal", type=FloatRange(0, 100), metavar="PCT", help="Exit 1 past PCT% steal.")
def watch(
    pids: tuple[str, ...],
    cpus: str | None,
    plan_file: str | None,
    interval: float,
    count: int | None,
    as_json: bool,
    fmt: str,
    max_foreign: float | None,
    max_irq: float | None,
    no_nvml: bool,
    max_steal: float | None,
) -> int:
    """Watch a running job's CPUs: who else runs there, interrupts, steal, preemptions.

    With no PID and no --cpus, watches the ranks `pinctl launch` started (this user's).

    Exit status: 0, 1 when a --max-* bound was crossed, 2 bad input.
    """
    files = KernelFiles()
    plan = load_plan(plan_file) if plan_file else None
    targets = targets_for(files, cpus, pids, plan)
    bounds = Bounds(max_foreign=max_foreign, max_irq=max_irq, max_steal=max_steal)
    fmt = output_format(click.get_current_context(), as_json, fmt)
    if fmt == "prometheus":  # one exposition: a second interval would repeat every metric (invalid)
        if count not in (None, 1):
            raise UsageError("--format prometheus writes one interval (a textfile holds one exposition): use --count 1")
        count = 1
    host = node_name(files)
    ticks = clock_ticks()
    watched = frozenset().union(*(t.cpus for t in targets))
    own = tuple(dict.fromkeys(p for t in targets for p in t.pids))
    memo: Memo = {}
    homes = {p: t.cpus for t in targets for p in t.pids}
    standing = []  # said with every interval: each JSON line stands alone
    if plan is not None and not pids and not cpus and not any(t.kind == "rank" for t in targets):
        standing.append(
            "no rank of this plan started by pinctl launch is running here (this user's): "
            "watching the plan's housekeeping and idle CPUs only"
        )
    kept = KeptOpen(files)
    # One interval (a health check) has no next one to name offenders in: it scans from the start.
    scan = count == 1 and fmt != "prometheus"
    prev = take(files, watched, own, ticks, scan=scan, numa=True, memo=memo, homes=homes, kept=kept)
    crossed = False
    n = 0
    try:
        while count is None or n < count:
            n += 1
            time.sleep(max(0.0, prev.t_ns / 1e9 + interval - time.monotonic()))
            cur = take(
                files, watched, own, ticks, scan=scan, numa=n % NUMA_EVERY == 0, memo=memo, homes=homes, kept=kept
            )
            if not cur.numa and prev.numa:  # between numa_maps readings, the last one stands
                cur = replace(cur, numa=prev.numa)
            figures = compute_all(prev, cur, targets, ticks)
            scan = any(bounds.notable(f) for f in figures)
            if scan and cur.scan is None:  # notable now: a first scan, so the next interval names who
                cur = _with_scan(files, cur, ticks)
            names = users(o.uid for f in figures for o in f.offenders or ())
            notes = list(standing)
            ended = [p for p in own if not cur.threads.get(p)]  # no thread left to read: it exited
            notes += [f"process {p} has ended: its target's figures are its CPUs' alone" for p in ended]
            if own and len(ended) == len(own):
                notes.append("every watched process has ended: stopping")
            gpus = _gpus(notes) if not no_nvml and (n == 1 or n % GPU_EVERY == 0) else []
            doc = watch_doc(
                host, n, time.time(), figures, names, bounds=bounds, denied=cur.denied, notes=notes, gpus=gpus
            )
            crossed = crossed or not doc["ok"]
            _emit(doc, fmt)
            prev = cur
            if own and len(ended) == len(own):
                break
    except KeyboardInterrupt:
        note(f"stopped after {n - 1} interval{'s' if n != 2 else ''}")
    finally:
        kept.close()
    return 1 if crossed else 0


NOT_SLOWDOWNS = (0x1, 0x2, 0x100)  # GPU idle, application and display clock settings: choices, not slowdowns


def _gpus(notes: list[str]) -> list[dict[str, object]]:
    """Each GPU's clock slowdowns now (NVML's clock event reasons, read with doctor's health
    queries), or a note saying why they are unknown."""
    health = query_health()
    if isinstance(health, NvmlUnavailable):
        notes.append(f"GPU clock slowdowns unknown: {health.reason}")
        return []
    out: list[dict[str, object]] = []
    for g in health.gpus:
        mask = None if g.lost else g.condition.clock_events
        slow = (
            None
            if mask is None
            else [n for bit, (n, _) in CLOCK_EVENTS.items() if mask & bit and bit not in NOT_SLOWDOWNS]
        )
        out.append({"index": g.index, "slowdowns": slow})
    return out


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
