"""PCIe distance between two devices, classified as ``nvidia-smi topo -m`` does.

The rules (docs/distances.md gives the reasoning and sources):

* ``X``    the same device.
* ``NV#``  GPU to GPU over # NVLinks (only when NVLink facts are known).
* ``PIX``  both devices hang off the same PCIe switch (at most one switch crossed).
* ``PXB``  they share a switch higher up: several switches, no host bridge.
* ``PHB``  they share a host bridge (root complex) but no switch.
* ``NODE`` different host bridges within one NUMA node.
* ``SYS``  different NUMA nodes (the SMP interconnect or, on NPS>1 AMD parts,
           the inter-quadrant fabric), or locality unknown on either side.

Lower is nearer; the planner sorts on :func:`level_order`. :func:`distance_matrix` is
the GPU x device table ``show`` prints (``?`` where a device has no PCI facts: unknown,
which the planner, needing an order, counts as SYS).
"""

from __future__ import annotations

from pinctl.model import Gpu, Node, PciAddress, PciInfo

LEVELS = ("X", "NV", "PIX", "PXB", "PHB", "NODE", "SYS")


def level_between(a: PciInfo | None, b: PciInfo | None) -> str:
    """PCIe level between two devices; SYS when either has no PCI facts."""
    return pci_level(a, b) if a is not None and b is not None else "SYS"


def pci_level(a: PciInfo, b: PciInfo) -> str:
    """The nvidia-smi level between two PCI devices (no NVLink)."""
    if a.address == b.address:
        return "X"
    if a.bridges and b.bridges and a.bridges[0] == b.bridges[0]:
        return "PIX"  # one parent bridge: the two functions of a dual-port card below a root port
    common = [s for s in a.switches if s in b.switches]
    if common:
        first = common[0]
        if a.switches.index(first) == 0 and b.switches.index(first) == 0:
            return "PIX"
        return "PXB"
    if a.host_bridge is not None and a.host_bridge == b.host_bridge:
        return "PHB"
    if a.numa_node is not None and a.numa_node == b.numa_node:
        return "NODE"
    return "SYS"


def c2c_attached(gpu: Gpu) -> bool:
    """A GPU whose memory is a NUMA node of its own and that sits under no PCIe switch: one joined to
    its CPU by a coherent link (Grace's NVLink-C2C; POWER9's NVLink), not PCIe. Its GPUDirect RDMA
    path is GPU -> CPU -> PCIe root -> NIC, so a NIC under its own CPU's roots (PHB/NODE) is the
    nearest it can have (NVIDIA's Grace tuning guides; NCCL's NCCL_NET_GDR_C2C); only SYS is far."""
    return gpu.memory_numa_node is not None and not gpu.pci.switches


def nvlink_count(a: Gpu, b: Gpu, gpu_addresses: frozenset[PciAddress]) -> int:
    """Links between two GPUs: direct links, or through NVSwitches (as NVML reports).

    With NVSwitch every GPU's links end on switches (peers that are not GPUs), so
    two GPUs that both reach the fabric talk over the smaller of their link counts.
    """
    direct = sum(link.links for link in a.nvlinks if link.peer == b.pci.address)
    if direct:
        return direct
    a_fabric = sum(link.links for link in a.nvlinks if link.peer not in gpu_addresses)
    b_fabric = sum(link.links for link in b.nvlinks if link.peer not in gpu_addresses)
    return min(a_fabric, b_fabric)


def bridges_between(a: PciInfo | None, b: PciInfo | None) -> int:
    """PCIe bridges on the path between two devices (below their common ancestor); 0 when unknown.

    The planner's tie-break among NICs of one level: a GPU and a NIC under the same
    downstream port are nearer than under one switch's two ports.
    """
    if a is None or b is None:
        return 0
    common = 0
    for x, y in zip(reversed(a.bridges), reversed(b.bridges), strict=False):
        if x != y:
            break
        common += 1
    return len(a.bridges) + len(b.bridges) - 2 * common


def gpu_level(a: Gpu, b: Gpu, gpu_addresses: frozenset[PciAddress] = frozenset()) -> str:
    """Level between two GPUs: NV# when NVLink-connected, else the PCIe level.

    *gpu_addresses* (all GPUs of the node) lets NVSwitch peers be told from GPU peers.
    """
    if a.pci.address == b.pci.address:
        return "X"
    n = nvlink_count(a, b, gpu_addresses or frozenset({a.pci.address, b.pci.address}))
    if n:
        return f"NV{n}"
    return pci_level(a.pci, b.pci)


def level_order(level: str) -> int:
    """Sort key: nearer is smaller; NV# of any count sorts as NV."""
    key = "NV" if level.startswith("NV") else level
    return LEVELS.index(key)


def device_columns(node: Node) -> list[tuple[str, PciInfo | None]]:
    """Columns of the distance matrix: GPUs, then NICs, then storage (labels as nvidia-smi)."""
    cols: list[tuple[str, PciInfo | None]] = [(f"GPU{g.index}", g.pci) for g in node.gpus]
    cols += [(n.name, n.pci) for n in node.nics]
    cols += [(s.name, s.pci) for s in node.storage]
    return cols


def distance_matrix(node: Node) -> list[list[str]]:
    """GPU rows x device columns of nvidia-smi levels; ``?`` where a device has no PCI info."""
    gpu_addrs = frozenset(g.pci.address for g in node.gpus)
    rows: list[list[str]] = []
    for gpu in node.gpus:
        row = [gpu_level(gpu, other, gpu_addrs) for other in node.gpus]
        for _, info in device_columns(node)[len(node.gpus) :]:
            row.append(pci_level(gpu.pci, info) if info is not None else "?")
        rows.append(row)
    return rows
