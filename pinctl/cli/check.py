"""``pinctl check``: is each process bound where the plan says? Exit 1 when anything is off (a health check).

With no PID it checks the processes whose environment carries a local-rank
variable (LOCAL_RANK, SLURM_LOCALID, ...); ``--gpu-procs`` checks those NVML sees
on a GPU. Plain text when stdout is not a terminal, a rich table when it is.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from pinctl.cli.plansource import obtain_plan, plan_options, plan_options_given
from pinctl.cpuset import format_list
from pinctl.doctor.bindings import ProcFacts, evaluate, gather, thread_groups, to_dict
from pinctl.errors import PinctlError, TopologyError, UsageError
from pinctl.kernel.files import Sysfs
from pinctl.kernel.proc import node_cpus, online_nodes, read_environ
from pinctl.plan.localrank import rank_from_env
from pinctl.plan.validate import PlanFile


@click.command()
@click.argument("pids", nargs=-1)
@click.option("--gpu-procs", is_flag=True, help="Check the processes NVML sees on each GPU.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (pinctl.check/v1).")
@click.option("--force", is_flag=True, help="Compare with a plan made for another node.")
@plan_options
@click.pass_context
def check(ctx: click.Context, /, pids: tuple[str, ...], gpu_procs: bool, as_json: bool, **params: Any) -> int:
    """Show each process's real CPU affinity and memory policy, and what is off compared with the plan."""
    fs = Sysfs()
    notes: list[str] = []
    targets = _targets(pids, gpu_procs, fs)
    plan = _plan(ctx, params, notes)
    facts = [gather(pid, gpus=gpus, sysfs=fs) for pid, gpus in targets]
    nodes = {n: node_cpus(fs, n) or frozenset() for n in online_nodes(fs)}
    issues = evaluate(facts, plan, nodes)
    ok = not any(issues.values())
    if not facts:
        notes.append("no process to check (give PIDs, --gpu-procs, or run ranks with LOCAL_RANK set)")
    if as_json:
        doc = {
            "schema": "pinctl.check/v1",
            "ok": ok,
            "plan": {"hostname": plan.hostname, "fingerprint": plan.fingerprint} if plan else None,
            "notes": notes,
            "processes": [to_dict(f, issues[f.pid], plan) for f in facts],
        }
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
    elif sys.stdout.isatty():
        _rich(facts, issues, notes)
    else:
        _plain(facts, issues, notes)
    return 0 if ok else 1


def _targets(pids: tuple[str, ...], gpu_procs: bool, fs: Sysfs) -> list[tuple[int, tuple[int, ...]]]:
    if pids and gpu_procs:
        raise UsageError("give PIDs or --gpu-procs, not both")
    if pids:
        for p in pids:
            if not p.isdigit() or int(p) <= 0:
                raise UsageError(f"{p!r} is not a process id")
        return [(int(p), ()) for p in dict.fromkeys(pids)]
    if gpu_procs:
        from pinctl.discover.nvml import gpu_processes

        per_gpu, note = gpu_processes()
        if per_gpu is None:
            raise TopologyError(f"check --gpu-procs: {note}")
        found: dict[int, list[int]] = {}
        for g in per_gpu:
            for pid in g.pids:
                found.setdefault(pid, []).append(g.index)
        return [(pid, tuple(gpus)) for pid, gpus in sorted(found.items())]
    me = os.getpid()
    out: list[tuple[int, tuple[int, ...]]] = []
    for entry in fs.listdir("/proc"):
        if entry.isdigit() and int(entry) != me:
            env = read_environ(fs, int(entry))
            if env is not None and rank_from_env(env) is not None:
                out.append((int(entry), ()))
    return sorted(out)


def _plan(ctx: click.Context, params: dict[str, Any], notes: list[str]) -> PlanFile | None:
    """The plan to compare with; a plan that cannot be computed is a note unless one was asked for."""
    explicit = bool(params.get("plan_file")) or plan_options_given(ctx)
    try:
        return obtain_plan(params, force=params["force"], warn=lambda m: notes.append(m))
    except PinctlError as exc:
        if explicit:
            raise
        notes.append(f"no plan to compare with: {exc}")
        return None


def _row(f: ProcFacts) -> list[str]:
    groups = thread_groups(f)
    threads = ", ".join(f"{cpus} ({n})" for cpus, n in groups.items()) if len(groups) > 1 else str(len(f.threads))
    policies = "?" if f.policies is None else ", ".join(sorted({str(p) for p in f.policies})) or "-"
    return [
        str(f.pid),
        f.name,
        "-" if f.local_rank is None else str(f.local_rank),
        format_list(f.cpus) if f.exists else "-",
        threads if f.exists else "-",
        format_list(f.mems_allowed) if f.exists else "-",
        policies if f.exists else "-",
    ]


_HEADERS = ["PID", "NAME", "RANK", "CPUS", "THREADS", "MEMS", "POLICY"]


def _plain(facts: list[ProcFacts], issues: dict[int, list[str]], notes: list[str]) -> None:
    rows = [_HEADERS] + [_row(f) for f in facts]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADERS))]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    for f in facts:
        for issue in issues[f.pid]:
            click.echo(f"off: {f.pid}: {issue}")
    for note in notes:
        click.echo(f"note: {note}", err=True)
    if facts:
        click.echo("ok" if not any(issues.values()) else "not ok")


def _rich(facts: list[ProcFacts], issues: dict[int, list[str]], notes: list[str]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    table = Table(*_HEADERS, "STATUS")
    for f in facts:
        status = "[green]ok[/]" if not issues[f.pid] else "[red]" + escape("; ".join(issues[f.pid])) + "[/]"
        table.add_row(*(escape(c) for c in _row(f)), status)
    console.print(table)
    for note in notes:
        Console(stderr=True).print(f"note: {escape(note)}")
