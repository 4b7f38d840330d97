"""``pinctl check``: is each process bound where the plan says? Exit 1 when anything is off (a health check).

With no PID it checks the processes whose environment carries a local-rank
variable (LOCAL_RANK, SLURM_LOCALID, ...); ``--gpu-procs`` checks those NVML sees
on a GPU. The judgement is pinctl.doctor.pinning's; the view pinctl.render.check's.
"""

from __future__ import annotations

import json
import os
from typing import Any

import click

from pinctl.cli.options import obtain_plan, plan_options, plan_options_given
from pinctl.cli.output import note, out
from pinctl.discovery.nvml import gpu_processes
from pinctl.doctor.pinning import evaluate, gather, to_dict
from pinctl.errors import PinctlError, TopologyError, UsageError
from pinctl.kernel.files import KernelFiles
from pinctl.kernel.numa import node_cpus, online_nodes
from pinctl.kernel.proc import pids, read_environ
from pinctl.plan.localrank import rank_from_env
from pinctl.plan.types import Plan
from pinctl.render.check import draw


@click.command()
@click.argument("pids", nargs=-1)
@click.option("--gpu-procs", is_flag=True, help="Check the processes NVML sees on each GPU.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (pinctl.check/v1).")
@click.option("--force", is_flag=True, help="Compare with a plan made for another node.")
@plan_options
@click.pass_context
def check(ctx: click.Context, /, pids: tuple[str, ...], gpu_procs: bool, as_json: bool, **params: Any) -> int:
    """Show each process's real CPU affinity and memory policy, and what is off compared with the plan."""
    files = KernelFiles()
    notes: list[str] = []
    targets = _targets(pids, gpu_procs, files)
    plan = _plan(ctx, params, notes)
    facts = [gather(pid, gpus=gpus, files=files) for pid, gpus in targets]
    nodes = {n: node_cpus(files, n) or frozenset() for n in online_nodes(files)}
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
        out([json.dumps(doc, indent=2, sort_keys=True)])
    else:
        draw(facts, issues)
        for n in notes:
            note(n)
    return 0 if ok else 1


def _targets(pids_given: tuple[str, ...], gpu_procs: bool, files: KernelFiles) -> list[tuple[int, tuple[int, ...]]]:
    if pids_given and gpu_procs:
        raise UsageError("give PIDs or --gpu-procs, not both")
    if pids_given:
        for p in pids_given:
            if not p.isdigit() or int(p) <= 0:
                raise UsageError(f"{p!r} is not a process id")
        return [(int(p), ()) for p in dict.fromkeys(pids_given)]
    if gpu_procs:
        per_gpu, note = gpu_processes()
        if per_gpu is None:
            raise TopologyError(f"check --gpu-procs: {note}")
        found: dict[int, list[int]] = {}
        for g in per_gpu:
            for pid in g.pids:
                found.setdefault(pid, []).append(g.index)
        return [(pid, tuple(gpus)) for pid, gpus in sorted(found.items())]
    me = os.getpid()
    out_: list[tuple[int, tuple[int, ...]]] = []
    for pid in pids(files):
        if pid != me:
            env = read_environ(files, pid)
            if env is not None and rank_from_env(env) is not None:
                out_.append((pid, ()))
    return out_


def _plan(ctx: click.Context, params: dict[str, Any], notes: list[str]) -> Plan | None:
    """The plan to compare with; a plan that cannot be computed is a note unless one was asked for."""
    explicit = bool(params.get("plan_file")) or plan_options_given(ctx)
    try:
        return obtain_plan(params, force=params["force"], note=notes.append)
    except PinctlError as exc:
        if explicit:
            raise
        notes.append(f"no plan to compare with: {exc}")
        return None
