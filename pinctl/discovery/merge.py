"""The one pure step of discovery: join what the sources found into one Node.

hwloc gives the tree (CPUs, caches, NUMA, PCI placement); sysfs adds what is true
now (port states, link speeds, NVMe, devices hwloc missed); NVML adds names, UUIDs
and NVLink. Devices are joined on parsed PCI addresses and names; hwloc's placement
wins where both know a device, sysfs's live facts win where they are current. No
I/O here: every function takes values and returns a new Node.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pinctl.discovery.memory import merge_numa
from pinctl.discovery.nvml import NvmlGpu, NvmlResult
from pinctl.discovery.sysfs import SysfsFacts, model_pci
from pinctl.errors import TopologyError
from pinctl.model import Gpu, Nic, Node, PciAddress, PciInfo, PciLink, Storage, natural_key
from pinctl.words import named as named_list

# Linux's MAX_NUMNODES is at most 1024 (CONFIG_NODES_SHIFT=10); the largest nodes hold a few dozen
# GPUs, NICs and drives. Beyond these bounds a file describes no machine, only a cost.
MAX_NUMA_NODES = 1024
MAX_DEVICES = 1024


def merge_sysfs(node: Node, facts: SysfsFacts) -> Node:
    """Every sysfs enrichment in dependency order (RDMA before plain NICs, links last)."""
    node = merge_rdma(node, facts)
    node = merge_netifs(node, facts)
    node = merge_nvme(node, facts)
    node = merge_numa(node, facts)
    node = refresh_pci(node, facts)
    return rdma_stack_missing(node, facts)


def rdma_stack_missing(node: Node, facts: SysfsFacts) -> Node:
    """A note per ConnectX function on mlx5_core with no RDMA device (ib_core/mlx5_ib not loaded)."""
    notes = [
        f"ConnectX {info.address} (mlx5_core, NUMA node {info.numa_node if info.numa_node is not None else '?'}) "
        "has no RDMA device: the RDMA stack is not loaded (modprobe mlx5_ib; install rdma-core or MLNX_OFED/"
        "DOCA-OFED), so NCCL and MPI cannot use it for RDMA"
        for info in facts.rdma_less
    ]
    return replace(node, notes=(*node.notes, *notes)) if notes else node


def _aliases(node: Node, facts: SysfsFacts) -> dict[str, str]:
    """sysfs host bridge name (``pci0000:16``) -> the name the model already uses for it.

    So a device that only sysfs knows gets the same host_bridge id as its hwloc-found
    neighbours, and PHB comparisons still work.
    """
    out: dict[str, str] = {}
    for info in model_pci(node):
        found = facts.function(info.address)
        if info.host_bridge is not None and found is not None and found.host is not None:
            out.setdefault(found.host, info.host_bridge)
    return out


def _aliased(info: PciInfo | None, aliases: dict[str, str]) -> PciInfo | None:
    if info is None or info.host_bridge is None or info.host_bridge not in aliases:
        return info
    return replace(info, host_bridge=aliases[info.host_bridge])


def merge_rdma(node: Node, facts: SysfsFacts) -> Node:
    """Ports, states, rates, link layers and netdevs of every RDMA device (and Slingshot cxi).

    An RDMA device the model lacks is added with its PCI facts from sysfs; a plain
    NIC entry that is really the netdev of an RDMA device is folded into it.
    """
    aliases = _aliases(node, facts)
    nics = list(node.nics)
    for new in facts.rdma:
        nics = _merge_nic(nics, replace(new, pci=_aliased(new.pci, aliases)))
    owned = {nd for n in nics if n.rdma for nd in n.netdevs}
    nics = [n for n in nics if n.rdma or n.name not in owned]
    return replace(node, nics=tuple(nics))


def _merge_nic(nics: list[Nic], new: Nic) -> list[Nic]:
    """Put *new* in place of the model's entry with its name, else of an RDMA entry on its PCI address."""
    for i, old in enumerate(nics):
        if old.name == new.name:
            nics[i] = _combine(old, new)
            return nics
    if new.pci is not None:
        for i, old in enumerate(nics):
            if old.pci is not None and old.pci.address == new.pci.address:
                if old.rdma:
                    nics[i] = _combine(old, new)
                    return nics
                new = replace(new, pci=old.pci)  # the netdev's entry: keep hwloc's placement
    nics.append(new)
    return nics


def _combine(old: Nic, new: Nic) -> Nic:
    """Keep the model's PCI placement (hwloc's tree) and take sysfs's live facts."""
    netdevs = tuple(dict.fromkeys((*old.netdevs, *new.netdevs)))
    kind = old.kind if new.kind == "other" else new.kind
    return replace(new, kind=kind, pci=old.pci or new.pci, netdevs=netdevs)


def merge_netifs(node: Node, facts: SysfsFacts) -> Node:
    """Network interfaces backed by a device (not lo, bridges, veth), unless an RDMA device owns them."""
    aliases = _aliases(node, facts)
    owned = {nd for n in node.nics if n.rdma for nd in n.netdevs}
    nics = list(node.nics)
    for new in facts.netifs:
        if new.name in owned:
            continue
        info = _aliased(new.pci, aliases)
        for i, old in enumerate(nics):
            if old.name == new.name:
                nics[i] = replace(new, kind=old.kind, pci=old.pci or info)
                break
        else:
            nics.append(replace(new, pci=info))
    return replace(node, nics=tuple(nics))


def merge_nvme(node: Node, facts: SysfsFacts) -> Node:
    """NVMe namespaces (``nvme0n1``) with the controller's model and PCI place, and their size."""
    aliases = _aliases(node, facts)
    storage = list(node.storage)
    for address, namespaces in facts.nvme:
        names = {s.name for s in namespaces}
        for ns in namespaces:
            new = replace(ns, pci=_aliased(ns.pci, aliases))
            i = _find_storage(storage, new.name, address, names)
            if i is None:
                storage.append(new)
            else:
                storage[i] = replace(new, pci=storage[i].pci or new.pci)
    return replace(node, storage=tuple(storage))


def _find_storage(storage: list[Storage], name: str, address: PciAddress | None, names: set[str]) -> int | None:
    """The model's entry for *name*, else its placeholder for the controller (hwloc's ``nvme@ADDR``)."""
    for i, old in enumerate(storage):
        if old.name == name:
            return i
    for i, old in enumerate(storage):
        if old.pci is not None and old.pci.address == address and old.name not in names and old.size_bytes is None:
            return i
    return None


def refresh_pci(node: Node, facts: SysfsFacts) -> Node:
    """PCIe link speed/width of every GPU, NIC and storage device, and missing NUMA locality.

    One placement rule for every PCI device: one hwloc did not place below a bridge (a gathered
    tree whose /sys/bus/pci lists no bridges: hwloc hangs its devices off the machine root) takes
    its bridges, switches, host bridge and local CPUs from sysfs (its NUMA node too where the model
    has none), as a device only sysfs knows does (:func:`pinctl.discovery.sysfs.pci_info`), so a
    GPU and the NIC under its switch read PIX, not PHB.
    """
    aliases = _aliases(node, facts)
    placed = 0

    def fresh(info: PciInfo) -> PciInfo:
        nonlocal placed
        found = facts.function(info.address)
        if found is None:
            return info
        if not info.bridges and not info.switches and found.bridges:
            placed += 1
            info = replace(
                info,
                bridges=found.bridges,
                switches=found.switches,
                host_bridge=aliases.get(found.host, found.host) if found.host else info.host_bridge,
                local_cpus=found.local_cpus or info.local_cpus,
            )
        new, old = found.link, info.link
        link = PciLink(
            speed_gts=new.speed_gts if new.speed_gts is not None else old.speed_gts,
            width=new.width if new.width is not None else old.width,
            max_speed_gts=new.max_speed_gts if new.max_speed_gts is not None else old.max_speed_gts,
            max_width=new.max_width if new.max_width is not None else old.max_width,
            bandwidth_gbs=old.bandwidth_gbs,
        )
        numa = info.numa_node if info.numa_node is not None else found.numa_node
        return replace(info, link=link, numa_node=numa, local_cpus=info.local_cpus or found.local_cpus)

    fresh_node = replace(
        node,
        gpus=tuple(replace(g, pci=fresh(g.pci)) for g in node.gpus),
        nics=tuple(replace(n, pci=fresh(n.pci)) if n.pci else n for n in node.nics),
        storage=tuple(replace(s, pci=fresh(s.pci)) if s.pci else s for s in node.storage),
    )
    notes = fresh_node.notes
    if placed and all(info.numa_node is not None for info in model_pci(fresh_node)):
        notes = tuple(n for n in notes if not n.endswith("(attached to the machine root)"))  # sysfs placed them
    return replace(fresh_node, notes=notes + tuple(locality_conflicts(fresh_node, facts)))


def locality_conflicts(node: Node, facts: SysfsFacts) -> list[str]:
    """Devices whose sysfs ``numa_node`` and ``local_cpulist`` disagree (a BIOS that fills one and not the
    other); the device is shown on its numa_node, and the reader is told the other fact."""
    named = [(f"GPU{g.index}", g.pci) for g in node.gpus]
    named += [(n.name, n.pci) for n in node.nics if n.pci is not None]
    named += [(s.name, s.pci) for s in node.storage if s.pci is not None]
    notes: list[str] = []
    for name, info in named:
        found = facts.function(info.address)
        numa = node.numa(info.numa_node) if info.numa_node is not None else None
        if found is None or numa is None or not found.local_cpus or not numa.cpus_known:
            continue
        if not found.local_cpus <= numa.cpus:
            notes.append(
                f"{name} ({info.address}): numa_node says NUMA node {numa.os_index} ({named_list('CPU', numa.cpus)}), "
                f"local_cpulist says {named_list('CPU', found.local_cpus)}; shown on node {numa.os_index}"
            )
    return notes


def apply_nvml(node: Node, result: NvmlResult) -> Node:
    """Fill GPU name/UUID/memory/NVLink by PCI address; add GPUs only NVML knows (with a note).

    NVML's own facts fill what the topology lacks: its CPU and memory affinity place a GPU
    whose NUMA node is unknown, its current and maximum PCIe generation and width a link
    sysfs did not give. A GPU NVML could not read is named (:func:`_lost`). GPUs are
    re-indexed in PCI order afterwards (NVML's own order on every driver since PCI_BUS_ID
    enumeration, which the model's ``index`` promises).
    """
    by_addr = {g.pci: _known_locality(node, g) for g in result.gpus if g.pci is not None}
    notes = list(node.notes)
    gpus: list[Gpu] = []
    for gpu in node.gpus:
        found = by_addr.pop(gpu.pci.address, None)
        if found is None:
            gpus.append(gpu)
            continue
        gpus.append(
            replace(
                gpu,
                pci=_nvml_pci(gpu.pci, found),
                vendor="nvidia",
                name=found.name or gpu.name,
                uuid=found.uuid or gpu.uuid,
                memory_bytes=found.memory_bytes if found.memory_bytes is not None else gpu.memory_bytes,
                nvlinks=found.nvlinks if found.nvlinks is not None else gpu.nvlinks,
                **_nvml_access(gpu.os_names, found),
            )
        )
    for addr, found in sorted(by_addr.items()):
        pci = _nvml_pci(PciInfo(address=addr, vendor_id=0x10DE), found)
        where = (
            f"placed by NVML's affinity on NUMA node {pci.numa_node}"
            if pci.numa_node is not None
            else ("added without locality")
        )
        notes.append(f"GPU {addr} is known to NVML but not to the topology: {where}")
        gpus.append(
            Gpu(
                index=0,
                pci=pci,
                vendor="nvidia",
                name=found.name,
                uuid=found.uuid,
                memory_bytes=found.memory_bytes,
                nvlinks=found.nvlinks or (),
                **_nvml_access((), found),
            )
        )
    gpus, lost_notes = _lost(gpus, result)
    gpus = _nvml_memory_nodes(node, gpus, result)
    notes.extend(lost_notes)
    ordered = sorted(gpus, key=lambda g: g.pci.address)
    hbm = {g.memory_numa_node for g in ordered if g.memory_numa_node is not None}
    numa = tuple(replace(n, kind="gpu") if n.os_index in hbm and n.cpuless else n for n in node.numa_nodes)
    return replace(
        node, gpus=tuple(replace(g, index=i) for i, g in enumerate(ordered)), numa_nodes=numa, notes=tuple(notes)
    )


def _nvml_memory_nodes(node: Node, gpus: list[Gpu], result: NvmlResult) -> list[Gpu]:
    """NVML's nvmlDeviceGetNumaNodeId (Grace: the GPU's HBM node) wins over a tie guessed from sysfs."""
    ids = {g.pci: g.numa_node_id for g in result.gpus if g.pci is not None and g.numa_node_id is not None}
    known = {n.os_index for n in node.numa_nodes}
    return [replace(g, memory_numa_node=ids[g.pci.address]) if ids.get(g.pci.address) in known else g for g in gpus]


def _known_locality(node: Node, found: NvmlGpu) -> NvmlGpu:
    """NVML's affinity kept only where it names this node's NUMA nodes and CPUs (a container's NVML
    may describe the host); a memory affinity NVML did not give is the node holding its CPUs."""
    cpus = (found.cpus & node.cpus) or None if found.cpus else None
    numa = found.numa_node if found.numa_node is not None and node.numa(found.numa_node) is not None else None
    if numa is None and cpus:
        numa = next((n.os_index for n in node.numa_nodes if n.cpus and cpus <= n.cpus), None)
    return replace(found, cpus=cpus, numa_node=numa)


# PCIe generation -> GT/s per lane (PCI-SIG).
_GEN_GTS = {1: 2.5, 2: 5.0, 3: 8.0, 4: 16.0, 5: 32.0, 6: 64.0}


def _nvml_pci(info: PciInfo, found: NvmlGpu) -> PciInfo:
    """*info* with NVML's locality and link where the topology and sysfs had none."""
    numa = info.numa_node if info.numa_node is not None else found.numa_node
    cpus = info.local_cpus or found.cpus or frozenset()
    link = info.link
    if found.pcie is not None and link.speed_gts is None and link.width is None:
        p = found.pcie
        link = replace(
            link,
            speed_gts=_GEN_GTS.get(p.gen or 0),
            width=p.width,
            max_speed_gts=_GEN_GTS.get(p.max_gen or 0),
            max_width=p.max_width,
        )
    return replace(info, numa_node=numa, local_cpus=cpus, link=link)


LOST_GPU = "lost GPU"  # how a Node note about a GPU NVML could not read begins


def _lost(gpus: list[Gpu], result: NvmlResult) -> tuple[list[Gpu], list[str]]:
    """Name the GPUs NVML could not read. NVML cannot say a lost GPU's bus id, but the topology
    still shows it: when as many NVIDIA GPUs are missing from NVML's answers as NVML lost, those
    are the lost ones and are marked unusable with NVML's words; otherwise (a container sees part
    of the node) the note says which GPU index NVML lost."""
    lost = [g for g in result.gpus if g.lost is not None]
    if not lost:
        return gpus, []
    listed = {g.pci for g in result.gpus if g.pci is not None}
    missing = [g for g in gpus if g.vendor == "nvidia" and g.pci.address not in listed]
    if len(missing) != len(lost):
        among = f" (one of {', '.join(str(g.pci.address) for g in missing)})" if missing else ""
        return gpus, [f"{LOST_GPU}: {g.lost.line(f'NVML GPU {g.index}{among}')}" for g in lost if g.lost is not None]
    # NVML counts in PCI order, so the k-th lost index is the k-th missing address
    marked, notes = list(gpus), []
    for nvml_gpu, gpu in zip(lost, missing, strict=True):
        assert nvml_gpu.lost is not None
        line = nvml_gpu.lost.line(f"NVML GPU {nvml_gpu.index} ({gpu.pci.address})")
        why = f"lost: NVML answers {nvml_gpu.lost.code} (a note says more)"  # the row short, the note whole
        marked = [replace(g, unusable=why) if g is gpu else g for g in marked]
        notes.append(f"{LOST_GPU}: {line}")
    return marked, notes


def _nvml_access(os_names: tuple[str, ...], found: NvmlGpu) -> dict[str, Any]:
    """The device file NVML names (minor number), the MIG instances, and a GPU in MIG mode without any."""
    out: dict[str, Any] = {"mig": found.mig}
    if found.minor is not None and f"nvidia{found.minor}" not in os_names:
        out["os_names"] = (*os_names, f"nvidia{found.minor}")
    if found.mig_mode and not found.mig:
        out["unusable"] = "in MIG mode with no MIG instance this job can see"
    return out


def normalize(node: Node) -> Node:
    """GPUs re-indexed in PCI order (NVML's order); NICs and storage in natural name order (mlx5_2, mlx5_10).

    A source that yields nothing at all (``<system></system>``, a stripped XML) is not a
    node: every later step would report on nothing, so it is an error here. NCCL files
    whose ``<cpu>`` elements carry no affinity (AWS ships such) still name NUMA nodes.
    """
    if not (node.cpus or node.numa_nodes or node.gpus or node.nics or node.storage):
        raise TopologyError(f"{node.source}: the topology describes no CPUs, NUMA nodes or devices")
    devices = len(node.gpus) + len(node.nics) + len(node.storage)
    if devices > MAX_DEVICES or len(node.numa_nodes) > MAX_NUMA_NODES:
        # Every view and the JSON hold device x device distances: a 1 MB file of 5000 GPUs made 380 MB.
        raise TopologyError(
            f"{node.source}: {len(node.numa_nodes)} NUMA nodes and {devices} devices; no node has more than "
            f"{MAX_NUMA_NODES} and {MAX_DEVICES} (the file is not a machine's topology)"
        )
    gpus = sorted(node.gpus, key=lambda g: g.pci.address)
    return replace(
        node,
        gpus=tuple(replace(g, index=i) for i, g in enumerate(gpus)),
        nics=tuple(sorted(node.nics, key=lambda n: natural_key(n.name))),
        storage=tuple(sorted(node.storage, key=lambda s: natural_key(s.name))),
    )
