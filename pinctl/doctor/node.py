"""Whether discovery produced a topology at all; the other checks say "skipped" without one."""

from __future__ import annotations

from pinctl.cpuset import format_list
from pinctl.doctor.finding import DoctorContext, Finding, ok
from pinctl.kernel import cpus, pci
from pinctl.words import count

CHECK = "node.discovery"


def discovery(ctx: DoctorContext) -> list[Finding]:
    if ctx.node is None:
        return [
            Finding(
                CHECK,
                "warn",
                "topology",
                f"topology discovery failed: {ctx.discovery_error or 'unknown'}",
                (f"discover() -> {ctx.discovery_error}",),
                "run `pinctl --debug show` to see why; device checks are skipped until discovery works",
            )
        ]
    n = ctx.node
    mismatch = _mismatch(ctx)
    if mismatch:
        return [
            Finding(
                CHECK,
                "fail",
                "topology",
                "the topology and the /sys tree describe different machines",
                tuple(mismatch),
                "give --topology and --root from the same node (or only --root: it is discovered from the tree)",
            )
        ]
    return [
        ok(
            CHECK,
            "topology",
            f"{n.source}: {count(len(n.numa_nodes), 'NUMA node')}, {count(len(n.cpus), 'CPU')}, "
            f"{count(len(n.gpus), 'GPU')}, {count(len(n.nics), 'NIC')}, {count(len(n.storage), 'storage device')}",
        )
    ]


def _mismatch(ctx: DoctorContext) -> list[str]:
    """Facts where the model and the files the checks read disagree (e.g. --topology of node A, --root of B).

    Findings would otherwise name node A's devices with node B's link speeds and IRQs.
    """
    n = ctx.node
    assert n is not None
    out: list[str] = []
    # offline: the files are this machine's, which the user did not ask about; live or sysfs: the
    # model was read from these very files (offline CPUs may differ; that is kernel.offline-cpus)
    if ctx.offline or n.source == "live" or n.source.startswith("sysfs:"):
        return out
    present, evidence = cpus.cpu_list_fact(ctx.files, "present", strict=False)
    if present and n.cpus and present != n.cpus:
        out.append(f"{evidence}; {n.source} has CPUs {format_list(n.cpus)}")
    if pci.has_devices(ctx.files):
        missing = [str(g.pci.address) for g in n.gpus if not pci.exists(ctx.files, g.pci.address)]
        if missing:
            out.append(f"GPUs {', '.join(missing)} of {n.source} are not in {pci.DEVICES_DIR}")
    return out
