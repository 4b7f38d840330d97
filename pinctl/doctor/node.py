"""Whether discovery produced a topology at all; the other checks say "skipped" without one."""

from __future__ import annotations

from pinctl.doctor.finding import DoctorContext, Finding, ok

CHECK = "node.discovery"


def discovery(ctx: DoctorContext) -> list[Finding]:
    if ctx.node is None:
        return [Finding(
            CHECK, "warn", "topology", f"topology discovery failed: {ctx.discovery_error or 'unknown'}",
            (f"discover() -> {ctx.discovery_error}",),
            "run `pinctl show --debug` to see why; device checks are skipped until discovery works",
        )]
    n = ctx.node
    return [ok(CHECK, "topology", f"{n.source}: {len(n.numa_nodes)} NUMA nodes, {len(n.cpus)} CPUs, "
               f"{len(n.gpus)} GPUs, {len(n.nics)} NICs, {len(n.storage)} storage devices")]
