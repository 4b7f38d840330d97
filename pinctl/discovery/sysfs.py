"""The sysfs source: device facts hwloc does not hold (RDMA ports, PCIe links, NVMe, plain NICs).

Reads through pinctl.kernel (live "/" or a gathered ``--root``) and returns them as
model values in :class:`SysfsFacts`; :mod:`pinctl.discovery.merge` joins them onto the
Node hwloc produced. Host bridges are left as sysfs names them (``pci0000:16``): the
merge maps them to the model's own names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pinctl.discovery.kinds import rdma_kind
from pinctl.kernel import cpus, net, numa, nvme, pci, rdma
from pinctl.kernel.files import KernelFiles
from pinctl.model import Nic, NicKind, NicPort, Node, PciAddress, PciInfo, PciLink, Storage


@dataclass(frozen=True)
class PciFacts:
    """What sysfs says about one function now: its link, locality and place (bridges nearest
    first, switches, host bridge), the same facts :func:`pci_info` gives a device only sysfs knows."""

    link: PciLink
    numa_node: int | None
    local_cpus: frozenset[int]
    host: str | None
    bridges: tuple[PciAddress, ...] = ()
    switches: tuple[str, ...] = ()


@dataclass(frozen=True)
class NumaFacts:
    """One online NUMA node as /sys/devices/system/node shows it: CPUs, MemTotal (0: memory-less;
    None: unknown) and its row of the distance matrix, by the order of ``nodes``."""

    os_index: int
    cpus: frozenset[int] | None
    memory_bytes: int | None
    distances: tuple[int, ...] | None


@dataclass(frozen=True)
class SysfsFacts:
    """Everything the merge needs: RDMA devices, device-backed interfaces, NVMe namespaces per
    controller (with the controller's PCI address), the facts of every PCI function involved,
    the NUMA nodes, the online CPUs, and ConnectX functions bound to mlx5_core that have no
    RDMA device (the RDMA stack is not loaded)."""

    rdma: tuple[Nic, ...] = ()
    netifs: tuple[Nic, ...] = ()
    nvme: tuple[tuple[PciAddress | None, tuple[Storage, ...]], ...] = ()
    functions: tuple[tuple[PciAddress, PciFacts], ...] = ()
    numa: tuple[NumaFacts, ...] = ()
    online_cpus: frozenset[int] | None = None
    rdma_less: tuple[PciInfo, ...] = ()

    def function(self, address: PciAddress) -> PciFacts | None:
        for addr, facts in self.functions:
            if addr == address:
                return facts
        return None


def read_sysfs(files: KernelFiles, node: Node) -> SysfsFacts:
    """The facts for *node*'s devices and for every RDMA device, interface and NVMe sysfs lists."""
    rdma_nics = [_rdma_nic(files, dev, cxi=False) for dev in rdma.devices(files)]
    rdma_nics += [_rdma_nic(files, dev, cxi=True) for dev in rdma.cxi_devices(files)]
    netifs = [_netif(files, i) for i in net.interfaces(files)]
    controllers = [_controller(files, c) for c in nvme.controllers(files)]
    addresses = [info.address for info in model_pci(node)]
    addresses += [n.pci.address for n in (*rdma_nics, *netifs) if n.pci is not None]
    addresses += [addr for addr, _ in controllers if addr is not None]
    functions = []
    for addr in dict.fromkeys(addresses):
        facts = function_facts(files, addr)
        if facts is not None:
            functions.append((addr, facts))
    return SysfsFacts(
        tuple(rdma_nics),
        tuple(netifs),
        tuple(controllers),
        tuple(functions),
        numa_facts(files),
        cpus.online_cpus(files),
        tuple(pci_info(files, a) for a in rdma.mlx5_without_rdma(files)),
    )


def numa_facts(files: KernelFiles) -> tuple[NumaFacts, ...]:
    """Every NUMA node sysfs lists (none when the tree has no node folder: then nothing is known)."""
    if not files.exists(numa.NODE_DIR):
        return ()
    return tuple(
        NumaFacts(n, numa.node_cpus(files, n), numa.node_memory(files, n), numa.node_distances(files, n))
        for n in sorted(numa.online_nodes(files))
    )


def model_pci(node: Node) -> list[PciInfo]:
    """The PCI facts of every device of the model, GPUs first."""
    infos = [g.pci for g in node.gpus]
    infos += [n.pci for n in node.nics if n.pci is not None]
    infos += [s.pci for s in node.storage if s.pci is not None]
    return infos


def function_facts(files: KernelFiles, address: PciAddress) -> PciFacts | None:
    """A function's link, locality and host bridge; None when sysfs does not list it."""
    if not pci.exists(files, address):
        return None
    bridges, switches, host = pci.place(files, address) or ((), (), None)
    return PciFacts(
        pci.link(files, address), pci.numa_node(files, address), pci.local_cpus(files, address), host, bridges, switches
    )


def pci_info(files: KernelFiles, address: PciAddress) -> PciInfo:
    """A PciInfo for a device only sysfs knows (EFA, irdma, a plain NIC), locality included."""
    bridges: tuple[PciAddress, ...] = ()
    switches: tuple[str, ...] = ()
    host: str | None = None
    place = pci.place(files, address)
    if place is not None:
        bridges, switches, host = place
    class_code, vendor_id, device_id = pci.ids(files, address)
    return PciInfo(
        address=address,
        class_id=class_code >> 8,  # sysfs has base, subclass and prog-if; the model keeps 16 bits, as hwloc
        vendor_id=vendor_id,
        device_id=device_id,
        link=pci.link(files, address),
        bridges=bridges,
        switches=switches,
        host_bridge=host,
        numa_node=pci.numa_node(files, address),
        local_cpus=pci.local_cpus(files, address),
    )


def _ports(ports: Iterable[rdma.IbPort], netdevs: tuple[str, ...]) -> tuple[NicPort, ...]:
    listed = list(ports)
    out = []
    for p in listed:
        # RoCE ports name their netdev per GID; IB ports have none, so a lone PCI netdev is theirs.
        netdev = p.ndev
        if netdev is None and len(listed) == 1 and len(netdevs) == 1:
            netdev = netdevs[0]
        out.append(NicPort(p.number, p.state, p.phys_state, p.link_layer, p.rate_gbps, netdev))
    return tuple(out)


def _rdma_nic(files: KernelFiles, dev: str, *, cxi: bool) -> Nic:
    address = rdma.device_address(files, dev, cxi=cxi)
    pci_netdevs = rdma.device_netdevs(files, dev, cxi=cxi)
    ports = () if cxi else _ports(rdma.ports(files, dev), pci_netdevs)
    port_netdevs = tuple(p.netdev for p in ports if p.netdev)
    netdevs = tuple(dict.fromkeys((*port_netdevs, *pci_netdevs)))
    info = pci_info(files, address) if address is not None else None
    kind: NicKind = "slingshot" if cxi else rdma_kind(info, ports, rdma.device_driver(files, dev))
    return Nic(name=dev, kind=kind, rdma=True, pci=info, ports=ports, netdevs=netdevs)


def _netif(files: KernelFiles, iface: net.NetIf) -> Nic:
    port = NicPort(
        number=1,
        state={"up": "ACTIVE", "down": "DOWN"}.get(iface.operstate or ""),
        link_layer="InfiniBand" if iface.infiniband else "Ethernet",
        rate_gbps=iface.speed_mbps / 1000.0 if iface.speed_mbps is not None else None,
        netdev=iface.name,
    )
    info = pci_info(files, iface.address) if iface.address is not None else None
    return Nic(name=iface.name, kind="ethernet", rdma=False, pci=info, ports=(port,), netdevs=(iface.name,))


def _controller(files: KernelFiles, c: nvme.NvmeController) -> tuple[PciAddress | None, tuple[Storage, ...]]:
    info = pci_info(files, c.address) if c.address is not None else None
    namespaces = c.namespaces or ((c.name, None),)
    return c.address, tuple(Storage(name=name, pci=info, model=c.model, size_bytes=size) for name, size in namespaces)
