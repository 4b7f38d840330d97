"""``pinctl noise``: an active probe of every allowed CPU at once, for a node between jobs or a health check.

The probe (pinctl.act.probe) says how much time each CPU lost and how long the detours were; the
counters read before and after (pinctl.kernel.counters, as ``watch`` reads them) say what ran or
interrupted there. The kernel's osnoise tracer would split the causes itself; where it cannot run
the reason is in ``method_note``. Exit status: 0, 1 past a ``--max-*`` bound, 2 bad input.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import click

from pinctl.act import probe
from pinctl.cli.options import FloatRange, output_format, output_options
from pinctl.cli.output import out
from pinctl.cli.targets import node_cpus, node_name, users
from pinctl.cpuset import format_list
from pinctl.errors import UsageError
from pinctl.kernel.counters import take
from pinctl.kernel.files import KernelFiles
from pinctl.kernel.stat import clock_ticks
from pinctl.kernel.tracefs import osnoise
from pinctl.noise.figures import Target, compute
from pinctl.noise.report import Bounds, noise_doc, target_dict
from pinctl.planfile.load import load_plan
from pinctl.planfile.types import Plan
from pinctl.render.noise import draw_noise
from pinctl.render.prometheus import noise_textfile


def cpu_class(plan: Plan | None, cpu: int) -> str | None:
    """What the plan makes of *cpu*: ``rank N``, ``helper``, housekeeping, idle, not allowed."""
    if plan is None:
        return None
    for r in plan.ranks:
        if cpu in r.cpus:
            return f"rank {r.local_rank}"
    if cpu in plan.helper_cpus:
        return "helper"
    c = plan.cpu_classes
    if c is None:
        return None
    return (
        "housekeeping"
        if cpu in c.housekeeping
        else "idle"
        if cpu in c.idle
        else ("not allowed" if cpu in c.not_allowed else None)
    )


@click.command()
@click.option("--cpus", metavar="LIST", help="Probe these CPUs (default: every CPU this process may use).")
@click.option(
    "--seconds",
    type=FloatRange(0.2, 600),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="How long the probe runs (all CPUs at once).",
)
@click.option("--plan", "plan_file", metavar="FILE", help="A plan file: each CPU's class is shown.")
@output_options("Machine-readable output (pinctl.noise/v1).")
@click.option("--max-lost", type=FloatRange(0, 100), metavar="PCT", help="Exit 1 when a CPU loses over PCT%.")
@click.option(
    "--max-foreign",
    type=FloatRange(0, 100),
    metavar="PCT",
    help="Exit 1 when other threads take over PCT% of a CPU during the probe.",
)
def noise(
    cpus: str | None,
    seconds: float,
    plan_file: str | None,
    as_json: bool,
    fmt: str,
    max_lost: float | None,
    max_foreign: float | None,
) -> int:
    """Measure how much time each CPU loses to interruptions, and name what ran there.

    Exit status: 0, 1 when a --max-* bound was crossed, 2 bad input.
    """
    fmt = output_format(click.get_current_context(), as_json, fmt)
    files = KernelFiles()
    plan = load_plan(plan_file) if plan_file else None
    allowed = frozenset(os.sched_getaffinity(0))
    chosen = node_cpus(files, cpus) if cpus is not None else allowed
    if chosen - allowed:
        raise UsageError(f"--cpus: this process may not run on CPU {format_list(chosen - allowed)} (its cpuset)")
    usable, why = osnoise(files)
    method_note = (
        f"the kernel's osnoise tracer is available ({why}) but pinctl reads only its own probe so far"
        if usable
        else f"osnoise not used: {why}"
    )
    ticks = clock_ticks()
    before = take(files, chosen, (), ticks, scan=True)
    children, pipe = probe.start(chosen, seconds)
    results = probe.collect(children, pipe)
    after = take(files, chosen, (), ticks, scan=True)
    rows: list[dict[str, Any]] = []
    figures = []
    for r in results:
        f = compute(before, after, Target(f"CPU {r.cpu}", "cpus", frozenset({r.cpu})), ticks, own_extra_ns=r.own_ns)
        figures.append(f)
        row: dict[str, Any] = {
            "cpu": r.cpu,
            "class": cpu_class(plan, r.cpu),
            "lost_pct": r.lost_pct,
            "max_detour_us": r.max_detour_us,
            "p99_detour_us": r.p99_detour_us,
            "detours": r.detours,
            "quantum_ns": r.quantum_ns,
            "error": r.error,
        }
        names = users(o.uid for o in f.offenders or ())
        detail = target_dict(f, names)
        for key in ("foreign_cpu_pct", "offenders", "irq_per_s", "irq_sources", "softirq_per_s", "steal_pct"):
            row[key] = detail[key]
        rows.append(row)
    doc = noise_doc(
        node_name(files), "probe", method_note, seconds, rows, bounds=Bounds(max_lost=max_lost, max_foreign=max_foreign)
    )
    doc["time"] = round(time.time(), 3)
    if fmt == "json":
        out([json.dumps(doc, indent=2, sort_keys=True)])
    elif fmt == "prometheus":
        out([noise_textfile(doc).rstrip("\n")])
    else:
        draw_noise(doc)
    return 0 if doc["ok"] else 1
