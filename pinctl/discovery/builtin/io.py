"""PCI devices of an object tree: where each sits, and the GPUs, NICs and disks among them.

The rules of :mod:`pinctl.discovery.hwloc.io` (locality from the nearest non-I/O ancestor,
unknown at the machine root of a multi-NUMA machine; bridges paired into switches; link
bandwidth kept as hwloc's GB/s) on the built-in tree, with the PCI attributes as hwloc
XML spells them: ``pci_busid``, ``pci_type`` (``CCCC [VVVV:DDDD] ...``), ``pci_link_speed``,
``bridge_type`` (``0-1``: upstream host) and ``bridge_pci`` (``DDDD:[SS-EE]``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

from pinctl.discovery.builtin.nics import nics_of
from pinctl.discovery.builtin.tree import OSDEV_COPROC, OSDEV_GPU, OSDEV_STORAGE, Obj, Tree
from pinctl.discovery.kinds import gpu_vendor
from pinctl.model import Gpu, GpuVendor, Nic, NvLink, Package, PciAddress, PciInfo, PciLink, Storage, pcie_switches

_DISPLAY_ONLY_VENDORS = frozenset({0x1A03, 0x102B, 0x1B36, 0x1234, 0x15AD, 0x1013, 0x1AF4})
_DISPLAY_ONLY_DEVICES = frozenset({(0x1002, 0x515E), (0x1002, 0x5969)})
_COMPUTE_OSDEV = re.compile(r"^(cuda|nvml|rsmi|opencl|ze)\d")
_GPU_MODEL_INFOS = ("GPUModel", "LevelZeroModel")
_GPU_MEMORY_INFOS = ("CUDAGlobalMemorySize", "RSMIVRAMSize", "LevelZeroHBMSize", "OpenCLGlobalMemorySize")
_UUID_INFOS = ("NVIDIAUUID", "AMDUUID", "LevelZeroUUID")
_NVLINK_UNITS = (25000, 20000)
_OPTICAL = re.compile(r"^sr\d+$")
_SIZE = re.compile(r"^\s*(\d+)\s*([kKmMgG]i?B)?\s*$")
_SIZE_UNITS = {"": 1024, "k": 1024, "m": 1024**2, "g": 1024**3}
_PCI_TYPE = re.compile(r"^\s*([0-9a-fA-F]{4})\s*\[([0-9a-fA-F]{4}):([0-9a-fA-F]{4})\]")
_BRIDGE_PCI = re.compile(r"^\s*([0-9a-fA-F]+):\[([0-9a-fA-F]+)-([0-9a-fA-F]+)\]")


@dataclass
class _Dev:
    obj: Obj
    info: PciInfo
    osdevs: list[Obj]
    at_root: bool


@dataclass
class IoFacts:
    gpus: tuple[Gpu, ...] = ()
    nics: tuple[Nic, ...] = ()
    storage: tuple[Storage, ...] = ()
    notes: list[str] = field(default_factory=list)


def pci_address(obj: Obj) -> PciAddress | None:
    return PciAddress.parse_or_none(obj.attrs.get("pci_busid", ""))


def pci_ids(obj: Obj) -> tuple[int, int, int]:
    """(16-bit class, vendor, device) from ``pci_type``; zeros when it is absent or odd."""
    m = _PCI_TYPE.match(obj.attrs.get("pci_type", ""))
    return (int(m.group(1), 16), int(m.group(2), 16), int(m.group(3), 16)) if m else (0, 0, 0)


def collect_io(
    tree: Tree,
    *,
    cpu_numa: Mapping[int, frozenset[int]],
    packages: Sequence[Package],
    gpu_memory: Mapping[PciAddress, int],
) -> IoFacts:
    """GPUs, NICs and storage with their PCI placement, plus notes on what the tree could not tell."""
    locality = _Locality(cpu_numa, packages)
    devs = [d for pci in tree.of_type("PCIDev") if (d := _device(pci, locality)) is not None]
    devs.sort(key=lambda d: d.info.address)
    facts = IoFacts()
    if not devs and not tree.of_type("OSDev"):
        facts.notes.append("no I/O devices in the topology (no PCI devices or OS devices)")
        return facts
    at_root = sum(1 for d in devs if d.info.numa_node is None and d.at_root)
    spread = sum(1 for d in devs if d.info.numa_node is None and not d.at_root)
    if at_root:
        facts.notes.append(f"locality unknown for {_plural(at_root, 'PCI device')} (attached to the machine root)")
    if spread:
        facts.notes.append(f"locality unknown for {_plural(spread, 'PCI device')} (local to several NUMA nodes)")
    facts.gpus = _gpus(devs, tree, gpu_memory)
    facts.nics = tuple(nic for d in devs for nic in nics_of(d.info, d.osdevs))
    facts.storage = _storage(tree, devs)
    return facts


def _plural(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"


class _Locality:
    """NUMA node, CPUs and package of a non-I/O object, cached per object."""

    def __init__(self, cpu_numa: Mapping[int, frozenset[int]], packages: Sequence[Package]) -> None:
        self.cpu_numa = cpu_numa
        self.packages = packages
        self.cache: dict[int, tuple[int | None, frozenset[int], int | None]] = {}

    def of(self, anc: Obj) -> tuple[int | None, frozenset[int], int | None]:
        key = id(anc)
        if key not in self.cache:
            self.cache[key] = (self._numa(anc), anc.cpuset, self._package(anc.cpuset))
        return self.cache[key]

    def _numa(self, anc: Obj) -> int | None:
        if len(self.cpu_numa) == 1:
            return next(iter(self.cpu_numa))
        nodes = anc.nodeset & self.cpu_numa.keys()
        if len(nodes) == 1:
            return next(iter(nodes))
        inside = [n for n, ncpus in self.cpu_numa.items() if anc.cpuset and anc.cpuset <= ncpus]
        return inside[0] if len(inside) == 1 else None

    def _package(self, cpus: frozenset[int]) -> int | None:
        inside = [p.os_index for p in self.packages if cpus and cpus <= p.cpus]
        return inside[0] if len(inside) == 1 else None


def _bandwidth(obj: Obj) -> float | None:
    try:
        value = float(obj.attrs.get("pci_link_speed", "0") or 0)
    except ValueError:
        return None
    return round(value, 2) if value > 0 else None


def _device(pci: Obj, locality: _Locality) -> _Dev | None:
    address = pci_address(pci)
    if address is None:
        return None
    bridges: list[PciAddress] = []
    host: str | None = None
    p = pci.parent
    while p is not None and p.is_io:
        if p.type == "Bridge":
            if p.attrs.get("bridge_type", "").startswith("0"):
                m = _BRIDGE_PCI.match(p.attrs.get("bridge_pci", ""))
                if m:
                    dom, sec, sub = (int(g, 16) for g in m.groups())
                    host = f"hostbridge:{dom:04x}:{sec:02x}-{sub:02x}"
            elif (up := pci_address(p)) is not None:
                bridges.append(up)
        p = p.parent
    numa, cpus, package = locality.of(p) if p is not None else (None, frozenset[int](), None)
    class_id, vendor, device = pci_ids(pci)
    info = PciInfo(
        address=address,
        class_id=class_id,
        vendor_id=vendor,
        device_id=device,
        link=PciLink(bandwidth_gbs=_bandwidth(pci)),
        bridges=tuple(bridges),
        switches=pcie_switches(bridges),
        host_bridge=host,
        numa_node=numa,
        local_cpus=cpus,
        package=package,
    )
    osdevs = [c for c in pci.children if c.type == "OSDev"]
    return _Dev(pci, info, osdevs, at_root=p is not None and p.type == "Machine")


def _is_compute_osdev(o: Obj) -> bool:
    return o.has_osdev(OSDEV_GPU | OSDEV_COPROC) and _COMPUTE_OSDEV.match(o.name or "") is not None


def _is_gpu(d: _Dev, gpu_memory: Mapping[PciAddress, int]) -> bool:
    info = d.info
    if info.vendor_id in _DISPLAY_ONLY_VENDORS or (info.vendor_id, info.device_id) in _DISPLAY_ONLY_DEVICES:
        return False
    if d.obj.subtype == "NVSwitch":
        return False
    if info.vendor_id == 0x10DE and info.class_id == 0x0680:
        return False
    if info.address in gpu_memory or any(_is_compute_osdev(o) for o in d.osdevs):
        return True
    base = info.class_id >> 8
    if base == 0x12:
        return True
    if base == 0x03 and info.vendor_id in (0x10DE, 0x1002):
        return True
    return info.vendor_id == 0x8086 and info.class_id in (0x0380, 0x0302)


def _first_info(objs: Iterable[Obj], names: Sequence[str]) -> str | None:
    for o in objs:
        for name in names:
            value = o.infos.get(name, "").strip()
            if value:
                return value
    return None


def parse_size(text: str | None) -> int | None:
    """hwloc sizes: ``15472384KiB`` (hwloc 2.x+) or a bare number of kB (older)."""
    if not text:
        return None
    m = _SIZE.match(text)
    if m is None:
        return None
    unit = (m.group(2) or "")[:1].lower()
    return int(m.group(1)) * _SIZE_UNITS.get(unit, 1024)


def _gpu_vendor(d: _Dev, memory_node: bool) -> GpuVendor:
    vendor = gpu_vendor(d.info.vendor_id)
    if vendor:
        return vendor
    text = (_first_info(d.osdevs, ("GPUVendor",)) or "").lower()
    for key, name in (("nvidia", "nvidia"), ("amd", "amd"), ("advanced micro", "amd"), ("intel", "intel")):
        if key in text:
            return cast(GpuVendor, name)
    return "nvidia" if memory_node else "other"


def _gpus(devs: Sequence[_Dev], tree: Tree, gpu_memory: Mapping[PciAddress, int]) -> tuple[Gpu, ...]:
    links = _nvlinks(tree)
    out: list[Gpu] = []
    for d in devs:
        if not _is_gpu(d, gpu_memory):
            continue
        addr = d.info.address
        out.append(
            Gpu(
                index=len(out),
                pci=d.info,
                vendor=_gpu_vendor(d, addr in gpu_memory),
                name=_first_info(d.osdevs, _GPU_MODEL_INFOS) or _first_info([d.obj], ("PCIDevice",)),
                uuid=_first_info(d.osdevs, _UUID_INFOS),
                memory_bytes=parse_size(_first_info(d.osdevs, _GPU_MEMORY_INFOS)),
                nvlinks=tuple(links.get(addr, ())),
                memory_numa_node=gpu_memory.get(addr),
                os_names=tuple(o.name for o in d.osdevs if o.name),
            )
        )
    return tuple(out)


def _pci_of(o: Obj) -> PciAddress | None:
    p: Obj | None = o
    while p is not None and p.type == "OSDev":
        p = p.parent
    if p is None or p.type != "PCIDev":
        return None
    return pci_address(p)


def _nvlinks(tree: Tree) -> dict[PciAddress, list[NvLink]]:
    """NVLinks from the NVLinkBandwidth matrix (MB/s), counted as pinctl.discovery.hwloc.io counts them."""
    out: dict[PciAddress, list[NvLink]] = {}
    for d in tree.distances:
        if d.name != "NVLinkBandwidth":
            continue
        addrs = [_pci_of(o) for o in d.objects]
        n = len(addrs)
        nonzero = [d.value(i, j) for i in range(n) for j in range(n) if i != j and d.value(i, j)]
        unit = next((u for u in _NVLINK_UNITS if nonzero and all(v % u == 0 for v in nonzero)), None)
        for i, a in enumerate(addrs):
            if a is None:
                continue
            for j, b in enumerate(addrs):
                v = d.value(i, j)
                if i != j and v and b is not None:
                    out.setdefault(a, []).append(NvLink(b, v // unit if unit else 1))
    return out


def _storage(tree: Tree, devs: Sequence[_Dev]) -> tuple[Storage, ...]:
    """Block devices on PCI and NVMe controllers that show no block device."""
    by_obj = {id(d.obj): d for d in devs}
    out: list[Storage] = []
    with_block: set[int] = set()
    for o in tree.of_type("OSDev"):
        if not o.has_osdev(OSDEV_STORAGE) or not o.name or _OPTICAL.match(o.name):
            continue
        dev = by_obj.get(id(o.parent)) if o.parent is not None and o.parent.type == "PCIDev" else None
        if dev is None:
            continue
        with_block.add(id(dev.obj))
        model = " ".join(o.infos.get("Model", "").split()) or None
        out.append(Storage(o.name, dev.info, model, parse_size(o.infos.get("Size"))))
    for d in devs:
        if d.info.class_id == 0x0108 and id(d.obj) not in with_block:
            out.append(Storage(f"nvme@{d.info.address}", d.info, _first_info([d.obj], ("PCIDevice",))))
    return tuple(out)
