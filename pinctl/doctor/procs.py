"""Processes on GPUs pinned badly: what ``pinctl check --gpu-procs`` finds, as doctor findings.

The NVML process list (pinctl.discovery.nvml), the /proc facts and the
verdicts (pinctl.pinning) belong to ``pinctl check``; this module only
adapts them, so there is one parser and one judgement. Without a plan the
verdicts are what needs no plan (GPU processes sharing CPUs); with ``--plan``
they include CPUs and memory outside each rank's plan.
"""

from __future__ import annotations

from pinctl.discovery.nvml import gpu_processes
from pinctl.doctor.finding import DoctorContext, Finding, ok, skipped
from pinctl.kernel.numa import node_cpus, online_nodes
from pinctl.pinning import evaluate, gather, pids_by_gpu
from pinctl.words import count

CHECK = "procs.mis-pinned"
_GONE = "process does not exist"  # exited between the NVML query and /proc: not a finding


def _remedy(error: str) -> str:
    if "NO_PERMISSION" in error:
        return (
            "run pinctl doctor as root: NVML lists a MIG GPU's processes only to root (and to others "
            "only per MIG instance, which refused too)"
        )
    if "older than" in error:
        return "upgrade the NVIDIA driver (R450 or newer has the process queries pinctl uses)"
    return "see `nvidia-smi` for this GPU; upgrade the driver if the query is missing"


def mis_pinned(ctx: DoctorContext) -> list[Finding]:
    if not ctx.files.is_live:
        return [skipped(CHECK, "live node only: processes (--root given)")]
    if ctx.health is None:
        return [skipped(CHECK, ctx.nvml_note)]
    per_gpu, note = gpu_processes()
    if per_gpu is None:
        return [skipped(CHECK, note or "NVML process query failed")]
    unseen = [
        Finding(
            CHECK,
            "warn",
            f"GPU {g.index}" + (f" ({g.pci_bus_id})" if g.pci_bus_id else ""),
            "could not list the processes on this GPU",
            (g.error,),
            _remedy(g.error),
        )
        for g in per_gpu
        if g.error is not None and g.pci_bus_id is not None
    ]  # a lost GPU is gpu.lost's
    index_of = None if ctx.node is None else {str(g.pci.address): g.index for g in ctx.node.gpus}
    found = pids_by_gpu(per_gpu, index_of)
    if not found:
        return unseen or [skipped(CHECK, "no processes on the GPUs")]
    facts = [gather(pid, gpus=tuple(gpus), files=ctx.files) for pid, gpus in sorted(found.items())]
    if ctx.node is not None:
        cpus = {n.os_index: n.cpus for n in ctx.node.numa_nodes}
    else:
        cpus = {n: node_cpus(ctx.files, n) or frozenset() for n in online_nodes(ctx.files)}
    issues = evaluate(facts, ctx.plan, cpus)
    out: list[Finding] = list(unseen)
    for f in facts:
        problems = [p for p in issues.get(f.pid, []) if p != _GONE]
        if f.exists and problems:
            out.append(
                Finding(
                    CHECK,
                    "warn",
                    f"PID {f.pid} ({f.name}) on GPU {','.join(map(str, f.gpus))}",
                    problems[0],
                    tuple(problems),
                    "launch ranks with `pinctl launch` (or re-pin with `pinctl pin`); "
                    "`pinctl check --gpu-procs` shows the details",
                )
            )
    live = sum(1 for f in facts if f.exists)
    plan_note = "against the plan" if ctx.plan is not None else "no plan given: only CPU sharing is judged"
    return out or [ok(CHECK, "node", f"{count(live, 'GPU process', 'GPU processes')} pinned apart ({plan_note})")]
