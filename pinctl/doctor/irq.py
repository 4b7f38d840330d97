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

Given a plan with housekeeping CPUs (``doctor --plan``, issue 13), a NIC's IRQs are judged
against it instead: each must be served by housekeeping CPUs of the NIC's own NUMA node (any
housekeeping CPU where that node has none), as ``pinctl plan --format irqbalance`` arranges.
NVMe's managed IRQs cannot be moved and keep the rule above.
"""

from __future__ import annotations

from pinctl.cpuset import format_list
from pinctl.doctor.finding import DoctorContext, Finding, no_node, ok, skipped
from pinctl.kernel import irq as kirq
from pinctl.kernel import pci
from pinctl.model import PciInfo
from pinctl.words import count

CHECK = "irq.remote-numa"


def _local_cpus(ctx: DoctorContext, info: PciInfo) -> frozenset[int]:
    node = ctx.node
    if node is not None and info.numa_node is not None:
        numa = node.numa(info.numa_node)
        if numa is not None and numa.cpus:
            return numa.cpus
    return info.local_cpus or pci.local_cpus(ctx.files, info.address)


def _housekeeping(ctx: DoctorContext) -> frozenset[int]:
    plan = ctx.plan
    if plan is None or plan.cpu_classes is None:
        return frozenset()
    return plan.cpu_classes.housekeeping


def remote_numa(ctx: DoctorContext) -> list[Finding]:
    if ctx.node is None:
        return [no_node(ctx, CHECK)]
    devices = [(f"NIC {n.name}", n.pci, False) for n in ctx.node.nics if n.rdma and n.pci is not None]
    devices += [(f"NVMe {s.name}", s.pci, True) for s in ctx.node.storage if s.pci is not None]
    if not devices:
        return [skipped(CHECK, "no RDMA NICs or NVMe in the topology")]
    housekeeping = _housekeeping(ctx)
    out: list[Finding] = []
    checked = 0
    seen: set[str] = set()
    for label, info, is_nvme in devices:
        if str(info.address) in seen:
            continue
        seen.add(str(info.address))
        irqs = pci.msi_irqs(ctx.files, info.address)
        local = _local_cpus(ctx, info)
        if not irqs or not local:
            continue
        target = (housekeeping & local or housekeeping) if housekeeping and not is_nvme else frozenset()
        remote: list[str] = []
        total = 0
        for irq in irqs:
            aff = kirq.affinity(ctx.files, irq)
            if aff is None:
                continue
            total += 1
            cpus, ev = aff
            if (cpus and not cpus <= target) if target else (cpus and not cpus & local):
                remote.append(ev)
        if total == 0:
            continue
        checked += 1
        allowed = 0 if target else total - 1 if is_nvme else max(0, total - len(local))
        if target and remote:
            out.append(
                Finding(
                    CHECK,
                    "warn",
                    f"{label} ({info.address})",
                    f"{len(remote)} of {total} IRQs served by CPUs outside the plan's housekeeping CPUs "
                    f"{format_list(target)}{' (its NUMA node has none)' if not housekeeping & local else ''}",
                    tuple(remote[:8]) + ((f"... {len(remote) - 8} more",) if len(remote) > 8 else ()),
                    "keep IRQs on the housekeeping CPUs: pinctl plan --format irqbalance (with the plan's options)",
                )
            )
        elif len(remote) > allowed:
            out.append(
                Finding(
                    CHECK,
                    "warn",
                    f"{label} ({info.address})",
                    f"{len(remote)} of {count(total, 'IRQ')} served only by CPUs outside its NUMA node "
                    f"(local CPUs {format_list(local)})",
                    tuple(remote[:8]) + ((f"... {len(remote) - 8} more",) if len(remote) > 8 else ()),
                    "set the IRQ affinity to local CPUs (mlx5: set_irq_affinity_cpulist.sh or "
                    "irqbalance with local hints; NVMe: leave managed IRQs alone, check irqbalance bans)",
                )
            )
    if checked == 0:
        return [skipped(CHECK, f"no IRQ facts (msi_irqs, {kirq.IRQ_DIR}) for these devices")]
    where = "the plan's housekeeping CPUs (NICs) and local CPUs" if housekeeping else "local CPUs"
    return out or [ok(CHECK, "node", f"IRQs of {count(checked, 'device')} served by {where}")]
