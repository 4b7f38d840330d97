"""NUMA facts that make placement guesswork: unknown device locality, memoryless and CPU-less nodes."""

from __future__ import annotations

from pinctl.doctor.finding import DoctorContext, Finding, no_node, ok, skipped
from pinctl.kernel.numa import node_file
from pinctl.kernel.pci import device_file
from pinctl.words import every, named

UNKNOWN = "numa.unknown-locality"
MEMORYLESS = "numa.memoryless-node"
CPULESS = "numa.cpuless-node"
# Memory-only nodes that are expected: GPU memory (Grace Hopper, POWER9), HBM, CXL expanders, pmem.
EXPECTED_CPULESS = ("gpu", "hbm", "cxl", "nvm")


def unknown_locality(ctx: DoctorContext) -> list[Finding]:
    if ctx.node is None:
        return [no_node(ctx, UNKNOWN)]
    node = ctx.node
    devices = [(f"GPU {g.index}", g.pci) for g in node.gpus]
    devices += [(f"NIC {n.name}", n.pci) for n in node.nics if n.pci is not None]
    if not devices:
        return [skipped(UNKNOWN, "no GPUs or NICs on PCI in the topology")]
    cpu_nodes = [n for n in node.numa_nodes if n.cpus]
    unknown = [(label, pci) for label, pci in devices if pci.numa_node is None]
    if not unknown:
        return [
            ok(
                UNKNOWN,
                "node",
                (every(len(devices), "GPU/NIC", "has", "have", plural_word="GPUs/NICs") + " a known NUMA node"),
            )
        ]
    if len(cpu_nodes) <= 1:
        return [ok(UNKNOWN, "node", f"{len(unknown)} device(s) report no NUMA node, harmless with one CPU NUMA node")]
    return [
        Finding(
            UNKNOWN,
            "warn",
            f"{label} ({pci.address})",
            "NUMA locality unknown (numa_node -1)",
            (f"{device_file(pci.address, 'numa_node')} = -1 (or absent)",),
            "enable the ACPI _PXM/SRAT locality in the BIOS (or the VM's vNUMA/PCI expander config); "
            "until then pin by hand: pinctl cannot tell which CPUs are near this device",
        )
        for label, pci in unknown
    ]


def memoryless_node(ctx: DoctorContext) -> list[Finding]:
    if ctx.node is None:
        return [no_node(ctx, MEMORYLESS)]
    nodes = ctx.node.numa_nodes
    known = [n for n in nodes if n.memory_bytes is not None]
    if not known:
        return [skipped(MEMORYLESS, "the topology has no NUMA memory sizes")]
    empty = [n for n in known if n.memory_bytes == 0 and n.cpus]
    if not empty:
        with_cpus = [n for n in known if n.cpus]
        if not with_cpus:
            return [skipped(MEMORYLESS, "no NUMA node with CPUs has a known memory size")]
        return [
            ok(
                MEMORYLESS,
                "node",
                (
                    every(len(with_cpus), "NUMA node with CPUs", "has", "have", plural_word="NUMA nodes with CPUs")
                    + " memory"
                ),
            )
        ]
    return [
        Finding(
            MEMORYLESS,
            "warn",
            f"NUMA node {n.os_index}",
            f"NUMA node {n.os_index} has {named('CPU', n.cpus)} but no memory",
            (f"{node_file(n.os_index, 'meminfo')} MemTotal = 0",),
            "populate the DIMM slots of this socket/channel (or change the NPS/SNC BIOS setting): "
            "every allocation from these CPUs goes to a remote node",
        )
        for n in empty
    ]


def cpuless_node(ctx: DoctorContext) -> list[Finding]:
    if ctx.node is None:
        return [no_node(ctx, CPULESS)]
    cpuless = [n for n in ctx.node.numa_nodes if n.cpuless]
    if not cpuless:
        return [ok(CPULESS, "node", every(len(ctx.node.numa_nodes), "NUMA node", "has", "have") + " CPUs")]
    out: list[Finding] = []
    for n in cpuless:
        ev = (f"{node_file(n.os_index, 'cpulist')} = (empty); kind = {n.kind}",)
        owner = ctx.node.memory_gpu(n.os_index)
        if n.memory_bytes == 0:
            what = (
                f"empty node reserved for GPU {owner[0].index}'s MIG instances"
                if owner is not None
                else "empty node (no CPUs, no memory): nothing is placed there"
            )
            out.append(ok(CPULESS, f"NUMA node {n.os_index}", what, *ev))
        elif n.kind in EXPECTED_CPULESS:
            mine = f": GPU {owner[0].index}'s memory" if owner is not None else ""
            out.append(ok(CPULESS, f"NUMA node {n.os_index}", f"CPU-less {n.kind} memory node (expected){mine}", *ev))
        else:
            out.append(
                Finding(
                    CPULESS,
                    "warn",
                    f"NUMA node {n.os_index}",
                    f"NUMA node {n.os_index} ({n.kind}) has memory but no CPUs",
                    ev,
                    "check for offline CPUs or a BIOS NUMA setting (NPS/SNC) that left this node without "
                    "cores; bind memory there only on purpose",
                )
            )
    return out
