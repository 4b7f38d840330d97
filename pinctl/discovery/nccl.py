"""NCCL topology files (``NCCL_TOPO_FILE``, root ``<system>``) as a Node.

Cloud images ship these files because NCCL cannot see the real PCIe tree inside a
VM; they describe another machine, so nothing here reads the live system. The
format (NCCL ``src/graph/xml.cc``) holds one ``<cpu numaid affinity>`` per NUMA
node, nested ``<pci busid class link_speed link_width>`` elements (class 0x0604xx
is a PCIe switch, often synthetic ``ffff:ff:0N.0``), ``<gpu><nvlink>`` children
and ``<nic><net name port speed>`` elements. It has no packages, no SMT, no
caches and no port states: those stay unknown and the Node's notes say so.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from pinctl.cpuset import decimal, parse_mask
from pinctl.discovery.kinds import gpu_vendor, is_efa, pci_nic_kind
from pinctl.discovery.xmltree import parse_bounded, read_capped
from pinctl.errors import TopologyError, UsageError
from pinctl.kernel.pci import parse_link_speed
from pinctl.model import (
    Core,
    Gpu,
    GpuVendor,
    Nic,
    NicKind,
    NicPort,
    Node,
    NumaNode,
    NvLink,
    Package,
    PciAddress,
    PciInfo,
    PciLink,
)

MAX_NUMA_ID = 1023  # Linux's MAX_NUMNODES is at most 1024 (CONFIG_NODES_SHIFT=10)
_SNIFF_CHUNK = 4096
_SNIFF_LIMIT = 64 * 1024


def sniff_topology_file(path: str) -> str:
    """``"hwloc"`` or ``"nccl"`` from the root element, reading only as far as that element.

    An incremental parser skips the XML declaration, comments (AWS files open with a
    licence comment) and a DOCTYPE, so a 300 KB hwloc file costs one 4 KB read.
    """
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start",))
    seen = 0
    try:
        with open(path, "rb") as f:
            while seen < _SNIFF_LIMIT:
                chunk = f.read(_SNIFF_CHUNK)
                if not chunk:
                    break
                seen += len(chunk)
                parser.feed(chunk)
                for event in parser.read_events():
                    elem = event[-1]
                    if isinstance(elem, ET.Element):
                        return _kind_of_root(path, elem.tag)
    except OSError as e:
        raise TopologyError(f"cannot read topology file {path}: {e.strerror or e}") from None
    except ET.ParseError as e:
        raise TopologyError(f"topology file {path} is not valid XML: {e}") from None
    if seen == 0:
        raise TopologyError(f"topology file {path} is empty")
    raise TopologyError(f"topology file {path}: no XML root element in its first {seen} bytes")


def _kind_of_root(path: str, tag: str) -> str:
    if tag == "topology":
        return "hwloc"
    if tag == "system":
        return "nccl"
    raise TopologyError(f"topology file {path}: root element <{tag}> is neither hwloc (<topology>) nor NCCL (<system>)")


def load_nccl_xml(path: str) -> Node:
    """Read an NCCL topology file; any bad input is a one-line TopologyError."""
    return parse_nccl_xml(read_capped(path, "NCCL topology file"), path)


def parse_nccl_xml(data: bytes, path: str) -> Node:
    """The Node of an NCCL topology file's contents; *path* names it in messages and the Node's source."""
    try:
        root = parse_bounded(data, f"NCCL topology file {path}")
    except ET.ParseError as e:
        raise TopologyError(f"NCCL topology file {path} is not valid XML: {e}") from None
    if root.tag != "system":
        raise TopologyError(f"{path} is not an NCCL topology file: root element is <{root.tag}>, not <system>")
    try:
        return _build(path, root)
    except (UsageError, ValueError) as e:
        raise TopologyError(f"NCCL topology file {path}: {e}") from None


@dataclass
class _Acc:
    """What the walk collects; turned into a Node at the end."""

    gpus: list[Gpu] = field(default_factory=list)
    nics: list[Nic] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    unnamed_nics: int = 0


@dataclass(frozen=True)
class _Where:
    """The locality every device below one ``<cpu>`` (and its switches) shares."""

    numa: int
    cpus: frozenset[int]
    switches: tuple[str, ...] = ()
    bridges: tuple[PciAddress, ...] = ()


def _build(path: str, root: ET.Element) -> Node:
    notes = [
        "NCCL topology file: CPU packages unknown (one package per NUMA node assumed)",
        "NCCL topology file: SMT siblings and L3 caches unknown (one core per CPU assumed)",
    ]
    numa_nodes: list[NumaNode] = []
    packages: list[Package] = []
    cores: list[Core] = []
    acc = _Acc()
    cpu_elems = [c for c in root if c.tag == "cpu"]
    numa_ids = _numa_ids(cpu_elems, notes)
    for pkg_index, (cpu, numa) in enumerate(zip(cpu_elems, numa_ids, strict=True)):
        affinity = cpu.get("affinity")
        cpus = parse_mask(affinity, what="cpu affinity mask") if affinity else frozenset()
        if not affinity:
            notes.append(f"NCCL topology file: NUMA node {numa} has no affinity mask; its CPUs are unknown")
        numa_nodes.append(NumaNode(os_index=numa, cpus=cpus, package=pkg_index, cpus_known=bool(affinity)))
        packages.append(Package(os_index=pkg_index, cpus=cpus))
        cores.extend(Core(pus=(c,), package=pkg_index, numa_node=numa) for c in sorted(cpus))
        where = _Where(numa=numa, cpus=cpus)
        for child in cpu:
            if child.tag == "pci":
                _walk_pci(child, where, acc)
            elif child.tag == "nic":
                # A NIC straight under <cpu> (azure-ncv4's eth0): NCCL knows no PCI device for it.
                acc.nics.extend(_nics_from(child, None, kind_hint=None))
    if acc.ignored and not acc.gpus and not acc.nics and not any(n.cpus for n in numa_nodes):
        raise ValueError(
            "it lists bus ids only, no GPUs, NICs or CPU sets (a skeleton NCCL completes from sysfs at "
            "run time): plan on the node itself, or dump a complete file there with NCCL_TOPO_DUMP_FILE"
        )
    if acc.nics:
        notes.append("NCCL topology file: NIC port states unknown (the format does not record them)")
    if acc.unnamed_nics:
        notes.append("NCCL topology file: NICs without a <net> name are named by PCI address (rdma@ADDR)")
    if any(n.pci is None for n in acc.nics):
        notes.append("NCCL topology file: some NICs have no PCI device, so their locality is unknown")
    if acc.ignored:
        notes.append(
            f"NCCL topology file: {len(acc.ignored)} PCI device(s) without class or hints ignored "
            f"(e.g. {acc.ignored[0]}); NCCL fills such devices in at run time"
        )
    if acc.gpus or acc.nics:
        notes.append("NCCL topology file: link_speed/link_width are the devices' maximum (NCCL reads max_link_*)")
    gpus = tuple(
        Gpu(index=i, pci=g.pci, vendor=g.vendor, nvlinks=g.nvlinks)
        for i, g in enumerate(sorted(acc.gpus, key=lambda g: g.pci.address))
    )
    all_cpus = frozenset(c for n in numa_nodes for c in n.cpus)
    return Node(
        hostname="unknown",
        source=f"nccl-xml:{path}",
        packages=tuple(packages),
        numa_nodes=tuple(sorted(numa_nodes, key=lambda n: n.os_index)),
        cores=tuple(sorted(cores, key=lambda c: c.pus)),
        l3_groups=(),
        allowed_cpus=all_cpus,
        gpus=gpus,
        nics=tuple(sorted(acc.nics, key=lambda n: n.name)),
        notes=tuple(notes),
        smt_known=False,
    )


def _numa_ids(cpus: list[ET.Element], notes: list[str]) -> list[int]:
    """Each ``<cpu>``'s NUMA node: its numaid, or for a missing or negative one (NCCL copies sysfs's
    -1, "no NUMA information") the lowest number no other ``<cpu>`` uses, with a note."""
    if len(cpus) > MAX_NUMA_ID + 1:
        raise ValueError(f"{len(cpus)} <cpu> elements: Linux has at most {MAX_NUMA_ID + 1} NUMA nodes")
    given: list[int | None] = []
    why: list[str] = []  # what each unusable numaid was, for its note
    numbered = any(c.get("numaid") is not None for c in cpus)
    for position, cpu in enumerate(cpus):
        text = cpu.get("numaid")
        if text is None:
            # Without any numaid, the order is the numbering (as NCCL's own reader assumes).
            given.append(None if numbered else position)
            why.append("a <cpu> without numaid")
            continue
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"<cpu numaid={text[:40]!r}> is not a number") from None
        if value > MAX_NUMA_ID:
            raise ValueError(f"<cpu numaid={value}> is out of range 0..{MAX_NUMA_ID}")
        given.append(value if value >= 0 else None)
        why.append(f"<cpu numaid={value}> (no NUMA node number)")
    seen: set[int] = set()
    for n in given:
        if n in seen:
            raise ValueError(f"two <cpu> elements claim NUMA node {n}")
        if n is not None:
            seen.add(n)
    free = (n for n in range(MAX_NUMA_ID + 1) if n not in seen)
    out = [n if n is not None else next(free) for n in given]
    notes.extend(
        f"NCCL topology file: {reason} is shown as NUMA node {n}, a number of pinctl's"
        for n, original, reason in zip(out, given, why, strict=True)
        if original is None
    )
    return out


def _hex(elem: ET.Element, attr: str) -> int | None:
    text = elem.get(attr)
    if not text:
        return None
    try:
        return int(text, 16)
    except ValueError:
        raise ValueError(f"<pci busid={elem.get('busid')!r}> has a bad {attr} {text!r}") from None


def _link(elem: ET.Element) -> PciLink:
    """``16 GT/s``, ``32.0 GT/s PCIe``, ``32 GT/s PCIe/s`` -> 16.0/32.0; ``""``/``Unknown`` -> None.

    NCCL copies sysfs max_link_speed/max_link_width into these attributes, so the
    values fill both the current and the maximum fields (nothing says it trained lower).
    """
    speed = parse_link_speed(elem.get("link_speed"))
    width_text = elem.get("link_width", "").strip()
    width = decimal(width_text, limit=3) or None
    return PciLink(speed_gts=speed, width=width, max_speed_gts=speed, max_width=width)


def _walk_pci(elem: ET.Element, where: _Where, acc: _Acc) -> None:
    busid = elem.get("busid")
    if not busid:
        raise ValueError("<pci> element without busid")
    address = PciAddress.parse(busid)
    code = _hex(elem, "class")  # NCCL copies sysfs's 24-bit class code (0x030200)
    class_id = code >> 8 if code is not None and code > 0xFFFF else code  # the model keeps 16 bits, as hwloc
    children = [c for c in elem if c.tag == "pci"]
    if (class_id is not None and class_id == 0x0604) or (class_id is None and children):
        below = _Where(where.numa, where.cpus, (str(address), *where.switches), (address, *where.bridges))
        for child in children:
            _walk_pci(child, below, acc)
        return
    vendor = _hex(elem, "vendor") or 0
    device = _hex(elem, "device") or 0
    info = PciInfo(
        address=address,
        class_id=class_id or 0,
        vendor_id=vendor,
        device_id=device,
        link=_link(elem),
        bridges=where.bridges,
        switches=where.switches,
        host_bridge=f"cpu{where.numa}",  # NCCL hangs devices off the CPU: it is their host bridge
        numa_node=where.numa,
        local_cpus=where.cpus,
    )
    gpu_elem = elem.find("gpu")
    nic_elem = elem.find("nic")
    if (class_id is not None and class_id >> 8 == 0x03) or gpu_elem is not None:
        acc.gpus.append(Gpu(index=0, pci=info, vendor=_gpu_vendor(vendor), nvlinks=_nvlinks(gpu_elem)))
    elif (class_id is not None and class_id >> 8 == 0x02) or nic_elem is not None or is_efa(vendor, device):
        nics = _nics_from(nic_elem, info, kind_hint=pci_nic_kind(class_id, vendor, device))
        if not nics:
            acc.unnamed_nics += 1
            kind = pci_nic_kind(class_id, vendor, device) or "other"
            rdma = kind not in ("ethernet", "other")
            # Named like the hwloc source's unnamed devices (rdma@ADDR), so both sort in PCI order.
            nics = [Nic(name=f"{'rdma' if rdma else 'nic'}@{address}", kind=kind, rdma=rdma, pci=info)]
        acc.nics.extend(nics)
    else:
        acc.ignored.append(str(address))


def _gpu_vendor(vendor: int) -> GpuVendor:
    # NCCL only drives NVIDIA GPUs, so a GPU whose file omits the vendor id is NVIDIA.
    if vendor in (0, 0xFFFF):
        return "nvidia"
    return gpu_vendor(vendor) or "other"


def _nvlinks(gpu: ET.Element | None) -> tuple[NvLink, ...]:
    if gpu is None:
        return ()
    links: dict[PciAddress, int] = {}
    for nv in gpu.iter("nvlink"):
        target = nv.get("target")
        if not target:
            continue
        peer = PciAddress.parse(target)
        links[peer] = links.get(peer, 0) + int(nv.get("count", "1"))
    return tuple(NvLink(peer=p, links=n) for p, n in sorted(links.items()))


def _name_kind(name: str, hint: NicKind | None) -> tuple[NicKind, bool]:
    """Kind and RDMA flag from the PCI hint and the ``<net name>``.

    An mlx5/mlx4 device on an Ethernet-class function is RoCE; without any class,
    an mlx/ib name is taken as InfiniBand (NCCL's IB transport lists both).
    """
    rdma_name = name.startswith(("mlx5_", "mlx4_", "ib", "irdma", "bnxt_re", "rdmap", "efa"))
    if hint == "efa" or name.startswith(("efa", "rdmap")):
        return "efa", True
    if hint == "ethernet":
        return ("roce", True) if rdma_name else ("ethernet", False)
    if hint is not None:
        return hint, True
    if rdma_name:
        return "infiniband", True
    if name.startswith(("eth", "en")):
        return "ethernet", False
    return "other", False


def _nics_from(nic: ET.Element | None, info: PciInfo | None, kind_hint: NicKind | None) -> list[Nic]:
    """One Nic per distinct ``<net name>``; each ``<net>`` is one port (state unknown)."""
    if nic is None:
        return []
    ports: dict[str, list[NicPort]] = {}
    for net in nic.iter("net"):
        name = net.get("name")
        if not name:
            continue
        speed = net.get("speed")
        mbps = decimal(speed or "", limit=9)
        rate = mbps / 1000.0 if mbps else None
        port_text = net.get("port", "")
        number = decimal(port_text, limit=3)
        number = 1 if number is None else number
        # NCCL's port attribute is 0 for sockets and 1-based for IB ports; keep it as given.
        ports.setdefault(name, []).append(NicPort(number=number, rate_gbps=rate))
    out = []
    for name, plist in ports.items():
        kind, rdma = _name_kind(name, kind_hint)
        out.append(Nic(name=name, kind=kind, rdma=rdma, pci=info, ports=tuple(plist)))
    return out
