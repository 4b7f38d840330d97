"""``pinctl check``: is each process bound where the plan says? Exit 1 when anything is off, 5 when unknown.

With no PID it checks the ranks ``pinctl launch`` started (it marks them), this user's
only, in this Slurm job when run inside one, launched with this plan when there is one,
and not their children: batch shells, srun clients and DataLoader workers carry a
launcher's variables too and are not ranks. ``--gpu-procs`` checks the processes NVML
sees on a GPU. The judgement is pinctl.pinning's; the view pinctl.render.check's.
"""

from __future__ import annotations

import json
import os
from typing import Any

import click

from pinctl.cli.options import obtain_plan, plan_options, plan_options_given
from pinctl.cli.output import note, out
from pinctl.discovery.nvml import gpu_processes
from pinctl.errors import PinctlError, TopologyError, UsageError
from pinctl.kernel.files import KernelFiles
from pinctl.kernel.numa import node_cpus, online_nodes
from pinctl.kernel.proc import process_id
from pinctl.pinning import evaluate, gather, launched_ranks, pids_by_gpu, to_dict, unknowns
from pinctl.planfile.types import Plan
from pinctl.render.check import draw


@click.command()
@click.argument("pids", nargs=-1)
@click.option("--gpu-procs", is_flag=True, help="Check the processes NVML sees on each GPU.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (pinctl.check/v1).")
@click.option("--force", is_flag=True, help="Compare with a plan made for another node.")
@plan_options
@click.pass_context
def check(ctx: click.Context, /, pids: tuple[str, ...], gpu_procs: bool, as_json: bool, **params: Any) -> int:
    """Show each process's real CPU affinity and memory policy, and what is off compared with the plan.

    With no PID: the ranks `pinctl launch` started (this user's).

    Exit status: 0 as planned, 1 something is off, 5 something could not be read (2 bad input, 4 bad plan).
    """
    files = KernelFiles()
    notes: list[str] = []
    plan = _plan(ctx, params, notes)
    unseen: list[str] = []  # GPUs whose processes NVML would not list: the check cannot pass over them
    targets = _targets(pids, gpu_procs, files, plan, unseen)
    facts = [gather(pid, gpus=gpus, files=files) for pid, gpus in targets]
    if not pids and not gpu_procs:  # a rank that ended while ranks were listed is skipped, not failed
        for f in facts:
            if not f.exists:
                notes.append(f"rank process {f.pid} ended while checking: skipped")
        facts = [f for f in facts if f.exists]
    nodes = {n: node_cpus(files, n) or frozenset() for n in online_nodes(files)}
    off = evaluate(facts, plan, nodes)
    issues = {f.pid: unknowns(f) + off[f.pid] for f in facts}
    ok = not any(issues.values()) and not unseen
    notes.extend(f"could not list the processes on {u}" for u in unseen)
    if not facts and not unseen:
        notes.append("no process to check (give PIDs or --gpu-procs, or start the ranks with pinctl launch)")
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
    if any(off.values()) or unseen:
        return 1
    return UNKNOWN_EXIT if not ok else 0


# Nothing seen is off, but something could not be read (another user's /proc files): not ok either.
UNKNOWN_EXIT = 5


def _targets(
    pids_given: tuple[str, ...], gpu_procs: bool, files: KernelFiles, plan: Plan | None, unseen: list[str]
) -> list[tuple[int, tuple[int, ...]]]:
    if pids_given and gpu_procs:
        raise UsageError("give PIDs or --gpu-procs, not both")
    if pids_given:
        for p in pids_given:
            if process_id(p) is None:
                raise UsageError(f"{p[:40]!r} is not a process id")
        return [(int(p), ()) for p in dict.fromkeys(pids_given)]
    if gpu_procs:
        per_gpu, note = gpu_processes()
        if per_gpu is None:
            raise TopologyError(f"check --gpu-procs: {note}")
        unseen.extend(g.error for g in per_gpu if g.error is not None)
        index_of = (
            None
            if plan is None
            else {r.gpu.pci_bus_id: r.gpu.index for r in plan.ranks if r.gpu is not None and r.gpu.pci_bus_id}
        )
        found = pids_by_gpu(per_gpu, index_of)
        return [(pid, tuple(gpus)) for pid, gpus in sorted(found.items())]
    # This user's ranks that `pinctl launch` started (in this Slurm job, of this plan), not their children.
    ranks = launched_ranks(
        files,
        uid=os.getuid(),
        job=os.environ.get("SLURM_JOB_ID"),
        fingerprint=plan.fingerprint if plan is not None else None,
        exclude=os.getpid(),
    )
    return [(pid, ()) for pid in ranks]


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
