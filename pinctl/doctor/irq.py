"""Interrupts of RDMA NICs and NVMe served by CPUs of another NUMA node.

``/sys/bus/pci/devices/ADDR/msi_irqs/`` names a device's IRQs;
``/proc/irq/N/effective_affinity_list`` says which CPU really takes each one
(``smp_affinity_list`` is only the allowed set, used when the former is absent).
An IRQ is remote when no CPU serving it is local to the device.

Not every remote IRQ is a fault. mlx5 spreads completion vectors over local
CPUs first and spills to remote ones only when it has more vectors than local
CPUs, so a NIC is flagged when more IRQs are remote than that spill explains.
NVMe uses managed IRQs, one per queue, spread over *all* CPUs by design (the
remote ones serve I/O submitted there), so an NVMe device is flagged only when
every one of its IRQs is remote.
"""

from __future__ import annotations

from pinctl.cpuset import format_list, parse_list
from pinctl.doctor.finding import DoctorContext, Finding, no_node, ok, skipped
from pinctl.errors import UsageError
from pinctl.model import PciInfo

CHECK = "irq.remote-numa"


def _local_cpus(ctx: DoctorContext, pci: PciInfo) -> frozenset[int]:
    node = ctx.node
    if node is not None and pci.numa_node is not None:
        numa = node.numa(pci.numa_node)
        if numa is not None and numa.cpus:
            return numa.cpus
    if pci.local_cpus:
        return pci.local_cpus
    text = ctx.sysfs.read(f"/sys/bus/pci/devices/{pci.address}/local_cpulist")
    try:
        return parse_list(text or "", what="local_cpulist")
    except UsageError:
        return frozenset()


def _affinity(ctx: DoctorContext, irq: str) -> tuple[frozenset[int], str] | None:
    for name in ("effective_affinity_list", "smp_affinity_list"):
        path = f"/proc/irq/{irq}/{name}"
        text = ctx.sysfs.read(path, strict_perm=True)
        if text:
            try:
                return parse_list(text, what=path), f"{path} = {text}"
            except UsageError:
                return None
    return None


def remote_numa(ctx: DoctorContext) -> list[Finding]:
    if ctx.node is None:
        return [no_node(ctx, CHECK)]
    devices = [(f"NIC {n.name}", n.pci, False) for n in ctx.node.nics if n.rdma and n.pci is not None]
    devices += [(f"NVMe {s.name}", s.pci, True) for s in ctx.node.storage if s.pci is not None]
    if not devices:
        return [skipped(CHECK, "no RDMA NICs or NVMe in the topology")]
    out: list[Finding] = []
    checked = 0
    seen: set[str] = set()
    for label, pci, is_nvme in devices:
        if str(pci.address) in seen:
            continue
        seen.add(str(pci.address))
        irqs = ctx.sysfs.listdir(f"/sys/bus/pci/devices/{pci.address}/msi_irqs")
        local = _local_cpus(ctx, pci)
        if not irqs or not local:
            continue
        remote: list[str] = []
        total = 0
        for irq in irqs:
            aff = _affinity(ctx, irq)
            if aff is None:
                continue
            total += 1
            cpus, ev = aff
            if cpus and not cpus & local:
                remote.append(ev)
        if total == 0:
            continue
        checked += 1
        allowed = total - 1 if is_nvme else max(0, total - len(local))
        if len(remote) > allowed:
            out.append(Finding(
                CHECK, "warn", f"{label} ({pci.address})",
                f"{len(remote)} of {total} IRQs served only by CPUs outside its NUMA node "
                f"(local CPUs {format_list(local)})",
                tuple(remote[:8]) + ((f"... {len(remote) - 8} more",) if len(remote) > 8 else ()),
                "set the IRQ affinity to local CPUs (mlx5: set_irq_affinity_cpulist.sh or "
                "irqbalance with local hints; NVMe: leave managed IRQs alone, check irqbalance bans)",
            ))
    if checked == 0:
        return [skipped(CHECK, "no IRQ facts (msi_irqs, /proc/irq) for these devices")]
    return out or [ok(CHECK, "node", f"IRQs of {checked} devices served by local CPUs")]
