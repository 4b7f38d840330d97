"""RDMA ports that are down, GPUs without a GPUDirect-friendly NIC, NICs shared unevenly.

Port states come straight from sysfs (``/sys/class/infiniband/DEV/ports/N/state``
reads ``4: ACTIVE``, ``phys_state`` reads ``5: LinkUp``), so a gathered tree can
be diagnosed. GPU-to-NIC distances use the model and pinctl.distance, the same
classes ``nvidia-smi topo -m`` prints; NCCL decides on GPUDirect RDMA by that
distance (NCCL_NET_GDR_LEVEL), and NVIDIA asks for GPU and HCA under one PCIe
switch for full GPUDirect RDMA bandwidth (docs/doctor.md has the sources).
"""

from __future__ import annotations

from collections import Counter

from pinctl.distance import pci_level, rank
from pinctl.doctor.finding import DoctorContext, Finding, no_node, ok, skipped
from pinctl.model import Gpu, Nic

PORT_DOWN = "rdma.port-down"
NO_GDR = "rdma.no-gdr-path"
IMBALANCE = "rdma.nic-imbalance"
_FAR = ("PHB", "NODE", "SYS")


def _state_name(text: str) -> str:
    """``4: ACTIVE`` -> ``ACTIVE``; ``5: LinkUp`` -> ``LinkUp``."""
    return text.partition(":")[2].strip() if ":" in text else text.strip()


def port_down(ctx: DoctorContext) -> list[Finding]:
    devices = ctx.sysfs.listdir("/sys/class/infiniband")
    if not devices:
        return [skipped(PORT_DOWN, "no RDMA devices (/sys/class/infiniband is empty or absent)")]
    out: list[Finding] = []
    ports = 0
    for dev in devices:
        for port in ctx.sysfs.listdir(f"/sys/class/infiniband/{dev}/ports"):
            base = f"/sys/class/infiniband/{dev}/ports/{port}"
            state = ctx.sysfs.read(f"{base}/state", strict_perm=True)
            phys = ctx.sysfs.read(f"{base}/phys_state", strict_perm=True)
            if state is None:
                continue
            ports += 1
            good_phys = phys is None or _state_name(phys).replace("_", "").lower() == "linkup"
            if _state_name(state) != "ACTIVE" or not good_phys:
                evidence = [f"{base}/state = {state}"]
                if phys is not None:
                    evidence.append(f"{base}/phys_state = {phys}")
                out.append(Finding(
                    PORT_DOWN, "warn", f"{dev} port {port}",
                    f"port is {_state_name(state)}" + (f" / {_state_name(phys)}" if phys else ""),
                    tuple(evidence),
                    "check the cable and the switch port; on InfiniBand make sure a subnet manager "
                    "runs (INIT/ARMED means no SM has configured the port); `ibstat` shows the same",
                ))
    if ports == 0:
        return [skipped(PORT_DOWN, "RDMA devices have no readable port state")]
    return out or [ok(PORT_DOWN, "node", f"{ports} RDMA ports ACTIVE / LinkUp")]


def _usable(nics: tuple[Nic, ...]) -> list[Nic]:
    """RDMA NICs on PCI with an active port (or no port facts at all)."""
    return [n for n in nics if n.rdma and n.pci is not None
            and (not n.ports or any(p.active for p in n.ports))]


def _nearest(gpu: Gpu, nics: list[Nic]) -> tuple[str, list[Nic]]:
    levels = {n.name: pci_level(gpu.pci, n.pci) for n in nics if n.pci is not None}
    best = min(levels.values(), key=rank)
    return best, [n for n in nics if levels[n.name] == best]


def _needs(ctx: DoctorContext, check: str) -> tuple[list[Gpu], list[Nic]] | Finding:
    if ctx.node is None:
        return no_node(ctx, check)
    if not ctx.node.gpus:
        return skipped(check, "no GPUs in the topology")
    nics = _usable(ctx.node.nics)
    if not nics:
        return skipped(check, "no usable RDMA NIC (none found, or no port ACTIVE)")
    return list(ctx.node.gpus), nics


def no_gdr_path(ctx: DoctorContext) -> list[Finding]:
    needs = _needs(ctx, NO_GDR)
    if isinstance(needs, Finding):
        return [needs]
    gpus, nics = needs
    assert ctx.node is not None
    down = [n for n in ctx.node.nics if n.rdma and n.pci is not None and n not in nics]
    out: list[Finding] = []
    unknown: list[str] = []
    for gpu in gpus:
        level, nearest = _nearest(gpu, nics)
        if level == "SYS" and (gpu.numa_node is None or all(n.numa_node is None for n in nearest)):
            unknown.append(f"GPU {gpu.index}")  # SYS only because locality is unknown: not a finding here
            continue
        if level in _FAR:
            ev = [f"GPU {gpu.index} {gpu.pci.address} -> {n.name} {n.pci.address if n.pci else '?'}: {level}"
                  for n in nearest[:3]]
            if len(nearest) > 3:
                ev.append(f"... {len(nearest) - 3} more NICs at {level}")
            close = [n.name for n in down if n.pci is not None and rank(pci_level(gpu.pci, n.pci)) < rank(level)]
            if close:
                ev.append(f"nearer RDMA NIC(s) without an active port: {', '.join(close)}")
            out.append(Finding(
                NO_GDR, "warn", f"GPU {gpu.index} ({gpu.pci.address})",
                f"nearest usable RDMA NIC is {level} away (no PCIe switch shared)", tuple(ev),
                ("bring the nearer NIC's port up (see rdma.port-down); " if close else "")
                + "GPUDirect RDMA needs the NIC under the same PCIe switch as the GPU (PIX/PXB): move the "
                "NIC or GPU to a shared switch, or accept staging through host memory",
            ))
    if unknown:
        out.append(skipped(NO_GDR, f"{', '.join(unknown)}: NUMA locality unknown, distance cannot be judged "
                                   "(see numa.unknown-locality)"))
    return out or [ok(NO_GDR, "node", f"every GPU ({len(gpus)}) has an RDMA NIC at PIX/PXB")]


def nic_assignment(gpus: list[Gpu], nics: list[Nic]) -> Counter[str]:
    """Each GPU takes the least-loaded of its nearest NICs (ties by name): the best a planner can do."""
    load: Counter[str] = Counter({n.name: 0 for n in nics})
    for gpu in gpus:
        _, nearest = _nearest(gpu, nics)
        pick = min(nearest, key=lambda n: (load[n.name], n.name))
        load[pick.name] += 1
    return load


def nic_imbalance(ctx: DoctorContext) -> list[Finding]:
    needs = _needs(ctx, IMBALANCE)
    if isinstance(needs, Finding):
        return [needs]
    gpus, nics = needs
    load = nic_assignment(gpus, nics)
    evidence = tuple(f"{name}: nearest NIC of {count} GPU(s)" for name, count in sorted(load.items()))
    hi, lo = max(load.values()), min(load.values())
    if hi - lo > 1:
        busiest = sorted(name for name, c in load.items() if c == hi)
        return [Finding(
            IMBALANCE, "warn", ", ".join(busiest),
            f"RDMA NICs shared unevenly: {hi} GPUs on the busiest NIC, {lo} on the idlest", evidence,
            "rebalance GPUs and NICs across PCIe switches (or fix down ports) so each NIC serves "
            "about the same number of GPUs; otherwise the busiest NIC caps all-reduce bandwidth",
        )]
    return [ok(IMBALANCE, "node", f"{len(gpus)} GPUs spread over {len(nics)} RDMA NICs", *evidence)]
