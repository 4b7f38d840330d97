"""Device facts hwloc does not hold, read from sysfs: RDMA ports, PCIe links, NVMe, plain NICs.

Pure functions of a :class:`~pinctl.sysfs.Sysfs` (live "/" or a gathered ``--root``)
and a Node, returning a new Node. Files and formats follow the kernel ABI docs:
Documentation/ABI/stable/sysfs-class-infiniband (``ports/N/state`` "4: ACTIVE",
``phys_state`` "5: LinkUp", ``link_layer``, ``rate`` "400 Gb/sec (4X NDR)",
``gid_attrs/ndevs/N``), Documentation/ABI/testing/sysfs-bus-pci (``numa_node``,
``local_cpulist``, ``current_link_speed`` "16.0 GT/s PCIe", ``*_link_width``) and
Documentation/ABI/stable/sysfs-nvme + sysfs-block (``model``, ``address``, ``size``
in 512-byte sectors). Devices are joined on parsed PCI addresses and names.
"""

from __future__ import annotations

import re
from dataclasses import replace

from pinctl.cpuset import parse_list
from pinctl.discover.nickind import rdma_kind
from pinctl.errors import UsageError
from pinctl.kernel.files import Sysfs
from pinctl.model import Nic, NicKind, NicPort, Node, PciAddress, PciInfo, PciLink, Storage

_IB = "/sys/class/infiniband"
_CXI = "/sys/class/cxi"
_NET = "/sys/class/net"
_NVME = "/sys/class/nvme"
_PCI = "/sys/bus/pci/devices"
_SPEED_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*GT/s")
_RATE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*Gb/sec")
_NS_RE = re.compile(r"^nvme(\d+)(?:c\d+)?n(\d+)$")
_SECTOR = 512  # sysfs-block: "size" counts 512-byte sectors whatever the logical block size


def enrich(sysfs: Sysfs, node: Node) -> Node:
    """All sysfs enrichments in dependency order (RDMA before plain NICs, links last)."""
    node = enrich_rdma(sysfs, node)
    node = enrich_netdevs(sysfs, node)
    node = enrich_nvme(sysfs, node)
    return enrich_pci(sysfs, node)


# --- PCI -------------------------------------------------------------------


def parse_link_speed(text: str | None) -> float | None:
    """``16.0 GT/s PCIe`` / ``8 GT/s`` -> GT/s per lane; ``Unknown`` or junk -> None."""
    m = _SPEED_RE.match(text or "")
    return float(m.group(1)) if m else None


def _addr(text: str) -> PciAddress | None:
    try:
        return PciAddress.parse(text)
    except UsageError:
        return None


def pci_address_of(sysfs: Sysfs, rel: str) -> PciAddress | None:
    """The PCI function a class device link (``.../device``) resolves to, or None (virtual, VMBus)."""
    real = sysfs.resolve(rel)
    if real is None:
        return None
    last = real.rstrip("/").rsplit("/", 1)[-1]
    addr = _addr(last)
    if addr is None:  # virtio-net: device -> .../0000:00:03.0/virtio0
        addr = _addr(real.rstrip("/").rsplit("/", 2)[-2])
    return addr


def _pci_link(sysfs: Sysfs, base: str) -> PciLink:
    return PciLink(
        speed_gts=parse_link_speed(sysfs.read(f"{base}/current_link_speed")),
        width=_positive(sysfs.read_int(f"{base}/current_link_width")),
        max_speed_gts=parse_link_speed(sysfs.read(f"{base}/max_link_speed")),
        max_width=_positive(sysfs.read_int(f"{base}/max_link_width")),
    )


def _positive(value: int | None) -> int | None:
    return value if value is not None and value > 0 else None


def _numa(sysfs: Sysfs, base: str) -> int | None:
    value = sysfs.read_int(f"{base}/numa_node")
    return value if value is not None and value >= 0 else None  # -1: firmware gave no locality


def _local_cpus(sysfs: Sysfs, base: str) -> frozenset[int]:
    text = sysfs.read(f"{base}/local_cpulist")
    if not text:
        return frozenset()
    try:
        return parse_list(text, what="local_cpulist")
    except UsageError:
        return frozenset()


def _path_topology(real: str) -> tuple[tuple[PciAddress, ...], tuple[str, ...], str | None]:
    """Bridges (nearest first), switches and host bridge from a resolved ``/sys/devices/pciDDDD:BB/...`` path.

    Bridges pair bottom-up into switches (downstream port, then upstream port, named by the
    upstream port); a single bridge left under the host bridge is a root port, as in
    docs/distances.md.
    """
    parts = real.strip("/").split("/")
    host = next((p for p in parts if p.startswith("pci") and ":" in p), None)
    chain = [a for a in (_addr(p) for p in parts) if a is not None]
    bridges = tuple(reversed(chain[:-1]))
    switches = tuple(str(bridges[i + 1]) for i in range(0, len(bridges) - 1, 2))
    return bridges, switches, host


def _host_aliases(sysfs: Sysfs, node: Node) -> dict[str, str]:
    """sysfs host bridge name (``pci0000:16``) -> the name the model already uses for it.

    So a device that only sysfs knows gets the same host_bridge id as its hwloc-found
    neighbours, and PHB comparisons still work.
    """
    out: dict[str, str] = {}
    for info in _all_pci(node):
        if info.host_bridge is None:
            continue
        real = sysfs.resolve(f"{_PCI}/{info.address}")
        if real is not None:
            _b, _s, host = _path_topology(real)
            if host is not None:
                out.setdefault(host, info.host_bridge)
    return out


def pci_info_from_sysfs(sysfs: Sysfs, address: PciAddress, aliases: dict[str, str] | None = None) -> PciInfo:
    """A PciInfo for a device only sysfs knows (EFA, irdma, a plain NIC), locality included."""
    base = f"{_PCI}/{address}"
    real = sysfs.resolve(base)
    bridges: tuple[PciAddress, ...] = ()
    switches: tuple[str, ...] = ()
    host: str | None = None
    if real is not None:
        bridges, switches, host = _path_topology(real)
        if host is not None and aliases:
            host = aliases.get(host, host)
    return PciInfo(
        address=address,
        class_id=sysfs.read_int(f"{base}/class", 16) or 0,
        vendor_id=sysfs.read_int(f"{base}/vendor", 16) or 0,
        device_id=sysfs.read_int(f"{base}/device", 16) or 0,
        link=_pci_link(sysfs, base),
        bridges=bridges,
        switches=switches,
        host_bridge=host,
        numa_node=_numa(sysfs, base),
        local_cpus=_local_cpus(sysfs, base),
    )


def _all_pci(node: Node) -> list[PciInfo]:
    infos = [g.pci for g in node.gpus]
    infos += [n.pci for n in node.nics if n.pci is not None]
    infos += [s.pci for s in node.storage if s.pci is not None]
    return infos


def _refresh(sysfs: Sysfs, info: PciInfo) -> PciInfo:
    """Current link state from sysfs (it wins: it is now), locality only where the model has none."""
    base = f"{_PCI}/{info.address}"
    if not sysfs.exists(base):
        return info
    fresh = _pci_link(sysfs, base)
    old = info.link
    link = PciLink(
        speed_gts=fresh.speed_gts if fresh.speed_gts is not None else old.speed_gts,
        width=fresh.width if fresh.width is not None else old.width,
        max_speed_gts=fresh.max_speed_gts if fresh.max_speed_gts is not None else old.max_speed_gts,
        max_width=fresh.max_width if fresh.max_width is not None else old.max_width,
    )
    numa = info.numa_node if info.numa_node is not None else _numa(sysfs, base)
    cpus = info.local_cpus or _local_cpus(sysfs, base)
    return replace(info, link=link, numa_node=numa, local_cpus=cpus)


def enrich_pci(sysfs: Sysfs, node: Node) -> Node:
    """PCIe link speed/width of every GPU, NIC and storage device, and missing NUMA locality."""
    return replace(
        node,
        gpus=tuple(replace(g, pci=_refresh(sysfs, g.pci)) for g in node.gpus),
        nics=tuple(replace(n, pci=_refresh(sysfs, n.pci)) if n.pci else n for n in node.nics),
        storage=tuple(replace(s, pci=_refresh(sysfs, s.pci)) if s.pci else s for s in node.storage),
    )


# --- RDMA ------------------------------------------------------------------


def _state(text: str | None) -> str | None:
    """``4: ACTIVE`` -> ``ACTIVE``; ``5: LinkUp`` -> ``LinkUp``."""
    if not text:
        return None
    return (text.partition(":")[2] if ":" in text else text).strip() or None


def parse_rate(text: str | None) -> float | None:
    """``400 Gb/sec (4X NDR)`` -> 400.0."""
    m = _RATE_RE.match(text or "")
    return float(m.group(1)) if m else None


def _rdma_ports(sysfs: Sysfs, dev: str, netdevs: tuple[str, ...]) -> tuple[NicPort, ...]:
    ports = []
    names = sorted(sysfs.listdir(f"{_IB}/{dev}/ports"), key=lambda p: int(p) if p.isdigit() else 0)
    for name in names:
        if not name.isdigit():
            continue
        base = f"{_IB}/{dev}/ports/{name}"
        # RoCE ports name their netdev per GID; IB ports have none, so a lone PCI netdev is theirs.
        netdev = sysfs.read(f"{base}/gid_attrs/ndevs/0") or None
        if netdev is None and len(names) == 1 and len(netdevs) == 1:
            netdev = netdevs[0]
        ports.append(
            NicPort(
                number=int(name),
                state=_state(sysfs.read(f"{base}/state")),
                phys_state=_state(sysfs.read(f"{base}/phys_state")),
                link_layer=sysfs.read(f"{base}/link_layer") or None,
                rate_gbps=parse_rate(sysfs.read(f"{base}/rate")),
                netdev=netdev,
            )
        )
    return tuple(ports)


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


def _rdma_nic(sysfs: Sysfs, cls: str, dev: str, aliases: dict[str, str]) -> Nic:
    base = f"{cls}/{dev}"
    address = pci_address_of(sysfs, f"{base}/device")
    driver = sysfs.link_name(f"{base}/device/driver")
    pci_netdevs = tuple(sysfs.listdir(f"{base}/device/net"))
    ports = _rdma_ports(sysfs, dev, pci_netdevs) if cls == _IB else ()
    port_netdevs = tuple(p.netdev for p in ports if p.netdev)
    netdevs = tuple(dict.fromkeys((*port_netdevs, *pci_netdevs)))
    info = pci_info_from_sysfs(sysfs, address, aliases) if address is not None else None
    kind: NicKind = "slingshot" if cls == _CXI else rdma_kind(info, ports, driver)
    return Nic(name=dev, kind=kind, rdma=True, pci=info, ports=ports, netdevs=netdevs)


def enrich_rdma(sysfs: Sysfs, node: Node) -> Node:
    """Ports, states, rates, link layers and netdevs of every RDMA device (and Slingshot cxi).

    An RDMA device the model lacks is added with its PCI facts from sysfs; a plain
    NIC entry that is really the netdev of an RDMA device is folded into it.
    """
    aliases = _host_aliases(sysfs, node)
    nics = list(node.nics)
    for cls in (_IB, _CXI):
        for dev in sysfs.listdir(cls):
            nics = _merge_nic(nics, _rdma_nic(sysfs, cls, dev, aliases))
    owned = {nd for n in nics if n.rdma for nd in n.netdevs}
    nics = [n for n in nics if n.rdma or n.name not in owned]
    return replace(node, nics=tuple(nics))


# --- plain NICs -------------------------------------------------------------


def enrich_netdevs(sysfs: Sysfs, node: Node) -> Node:
    """Network interfaces backed by a device (not lo, bridges, veth), unless an RDMA device owns them."""
    aliases = _host_aliases(sysfs, node)
    owned = {nd for n in node.nics if n.rdma for nd in n.netdevs}
    nics = list(node.nics)
    for ifname in sysfs.listdir(_NET):
        if ifname in owned or not sysfs.exists(f"{_NET}/{ifname}/device"):
            continue
        address = pci_address_of(sysfs, f"{_NET}/{ifname}/device")
        info = pci_info_from_sysfs(sysfs, address, aliases) if address is not None else None
        oper = sysfs.read(f"{_NET}/{ifname}/operstate")
        speed = sysfs.read_int(f"{_NET}/{ifname}/speed")  # Mb/s; -1 when the link is down
        port = NicPort(
            number=1,
            state={"up": "ACTIVE", "down": "DOWN"}.get(oper or ""),
            link_layer="InfiniBand" if sysfs.read_int(f"{_NET}/{ifname}/type") == 32 else "Ethernet",
            rate_gbps=speed / 1000.0 if speed is not None and speed > 0 else None,
            netdev=ifname,
        )
        new = Nic(name=ifname, kind="ethernet", rdma=False, pci=info, ports=(port,), netdevs=(ifname,))
        for i, old in enumerate(nics):
            if old.name == ifname:
                nics[i] = replace(new, kind=old.kind, pci=old.pci or info)
                break
        else:
            nics.append(new)
    return replace(node, nics=tuple(nics))


# --- NVMe -------------------------------------------------------------------


def enrich_nvme(sysfs: Sysfs, node: Node) -> Node:
    """NVMe namespaces (``nvme0n1``) with the controller's model and PCI place, and their size.

    With native multipath the controller lists ``nvme<subsys>c<ctrl>n<ns>`` and the block
    device ``nvme<subsys>n<ns>`` lives in /sys/block, so the size is read there.
    """
    aliases = _host_aliases(sysfs, node)
    storage = list(node.storage)
    for ctrl in sysfs.listdir(_NVME):
        base = f"{_NVME}/{ctrl}"
        model = sysfs.read(f"{base}/model") or None
        address = _addr(sysfs.read(f"{base}/address") or "") or pci_address_of(sysfs, f"{base}/device")
        info = pci_info_from_sysfs(sysfs, address, aliases) if address is not None else None
        namespaces: list[tuple[str, int | None]] = []
        for entry in sysfs.listdir(base):
            m = _NS_RE.match(entry)
            if m is None:
                continue
            name = f"nvme{m.group(1)}n{m.group(2)}"
            sectors = sysfs.read_int(f"/sys/block/{name}/size")
            if sectors is None:
                sectors = sysfs.read_int(f"{base}/{entry}/size")
            namespaces.append((name, sectors * _SECTOR if sectors is not None else None))
        if not namespaces:
            namespaces.append((ctrl, None))
        names = {name for name, _size in namespaces}
        for name, size in namespaces:
            new = Storage(name=name, pci=info, model=model, size_bytes=size)
            i = _find_storage(storage, name, address, names)
            if i is None:
                storage.append(new)
            else:
                storage[i] = replace(new, pci=storage[i].pci or info)
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
