"""PCI devices from an hwloc tree: where each sits, and the GPUs, NICs and disks among them.

Locality: a device's CPUs are those of its nearest non-I/O ancestor. hwloc hangs
a device whose locality the kernel did not report (numa_node -1 and a full
local_cpus) from the machine root; on a multi-NUMA machine that means unknown
(numa_node None), never a guess.

Switches: walking up from the device, bridges pair into switches as
:func:`pinctl.model.pcie_switches` says (the same rule as for sysfs paths).

Link: hwloc's ``linkspeed`` is the total bandwidth in GB/s, which cannot be
split into GT/s and width (15.8 GB/s is x16 Gen3 or x8 Gen4), so PciLink stays
empty here; the sysfs enrichment fills it on a live system.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from pyhwloc.hwobject import Bridge, ObjBridgeType, Object, ObjType, OsDevice, PciDevice

from pinctl.discovery.hwloc.nics import nics_of
from pinctl.discovery.kinds import gpu_vendor
from pinctl.model import Gpu, GpuVendor, Nic, NvLink, Package, PciAddress, PciInfo, PciLink, Storage, pcie_switches

if TYPE_CHECKING:
    from pyhwloc.bitmap import Bitmap
    from pyhwloc.distances import Distances
    from pyhwloc.topology import Topology

# VGA chips of BMCs and virtual machines: never compute GPUs.
_DISPLAY_ONLY_VENDORS = frozenset({0x1A03, 0x102B, 0x1B36, 0x1234, 0x15AD, 0x1013, 0x1AF4})
# AMD server VGA chips (ATI ES1000) on BMC-less boards: display only.
_DISPLAY_ONLY_DEVICES = frozenset({(0x1002, 0x515E), (0x1002, 0x5969)})
# OS devices of compute runtimes (DRM card*/renderD* do not make a GPU).
_COMPUTE_OSDEV = re.compile(r"^(cuda|nvml|rsmi|opencl|ze)\d")
_GPU_MODEL_INFOS = ("GPUModel", "LevelZeroModel")  # LevelZeroModel: hwloc levelzero writes no GPUModel
_GPU_MEMORY_INFOS = ("CUDAGlobalMemorySize", "RSMIVRAMSize", "LevelZeroHBMSize", "OpenCLGlobalMemorySize")
_UUID_INFOS = ("NVIDIAUUID", "AMDUUID", "LevelZeroUUID")
# NVLink bandwidth per link in MB/s as hwloc's NVML backend writes it (NVLink 2+: 25 GB/s, NVLink 1: 20 GB/s).
_NVLINK_UNITS = (25000, 20000)
_OPTICAL = re.compile(r"^sr\d+$")
_SIZE = re.compile(r"^\s*(\d+)\s*([kKmMgG]i?B)?\s*$")
_SIZE_UNITS = {"": 1024, "k": 1024, "m": 1024**2, "g": 1024**3}


def ints(bitmap: Bitmap | None) -> frozenset[int]:
    """A hwloc bitmap as OS indexes."""
    return frozenset(bitmap) if bitmap is not None else frozenset()


@dataclass
class _Dev:
    """One PCI function while the topology is alive."""

    obj: PciDevice
    info: PciInfo
    osdevs: list[OsDevice]
    at_root: bool  # attached to the machine root


@dataclass
class IoFacts:
    gpus: tuple[Gpu, ...] = ()
    nics: tuple[Nic, ...] = ()
    storage: tuple[Storage, ...] = ()
    notes: list[str] = field(default_factory=list)


def collect_io(
    topo: Topology,
    dists: Sequence[Distances],
    *,
    cpu_numa: Mapping[int, frozenset[int]],
    packages: Sequence[Package],
    gpu_memory: Mapping[PciAddress, int],
) -> IoFacts:
    """GPUs, NICs and storage with their PCI placement, plus notes on what hwloc could not tell."""
    locality = _Locality(cpu_numa, packages)
    devs = [_device(pci, locality) for pci in topo.iter_pci_devices()]
    devs.sort(key=lambda d: d.info.address)
    facts = IoFacts()
    if not devs and not any(True for _ in topo.iter_os_devices()):
        facts.notes.append("no I/O devices in the topology (no PCI devices or OS devices)")
        return facts
    at_root = sum(1 for d in devs if d.info.numa_node is None and d.at_root)
    spread = sum(1 for d in devs if d.info.numa_node is None and not d.at_root)
    if at_root:
        facts.notes.append(f"locality unknown for {_plural(at_root, 'PCI device')} (attached to the machine root)")
    if spread:
        facts.notes.append(f"locality unknown for {_plural(spread, 'PCI device')} (local to several NUMA nodes)")
    facts.gpus = _gpus(devs, dists, gpu_memory)
    facts.nics = tuple(nic for d in devs for nic in nics_of(d.info, d.osdevs))
    facts.storage = _storage(topo, devs)
    return facts


def _plural(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"


# --- placement --------------------------------------------------------------------------------


class _Locality:
    """NUMA node, CPUs and package of a non-I/O object, cached per object."""

    def __init__(self, cpu_numa: Mapping[int, frozenset[int]], packages: Sequence[Package]) -> None:
        self.cpu_numa = cpu_numa
        self.packages = packages
        self.cache: dict[int, tuple[int | None, frozenset[int], int | None]] = {}

    def of(self, anc: Object) -> tuple[int | None, frozenset[int], int | None]:
        key = anc.gp_index
        if key not in self.cache:
            cpus = ints(anc.cpuset)
            self.cache[key] = (self._numa(anc, cpus), cpus, self._package(cpus))
        return self.cache[key]

    def _numa(self, anc: Object, cpus: frozenset[int]) -> int | None:
        if len(self.cpu_numa) == 1:
            return next(iter(self.cpu_numa))
        nodes = ints(anc.nodeset) & self.cpu_numa.keys()
        if len(nodes) == 1:
            return next(iter(nodes))
        inside = [n for n, ncpus in self.cpu_numa.items() if cpus and cpus <= ncpus]
        return inside[0] if len(inside) == 1 else None

    def _package(self, cpus: frozenset[int]) -> int | None:
        inside = [p.os_index for p in self.packages if cpus and cpus <= p.cpus]
        return inside[0] if len(inside) == 1 else None


def _address(attr: Any) -> PciAddress:
    """The address in a ctypes PCI attribute struct (a device's, or a bridge's upstream side)."""
    return PciAddress(int(attr.domain), int(attr.bus), int(attr.dev), int(attr.func))


def _bandwidth(attr: Any) -> float | None:
    """hwloc's link speed in GB/s; 0 (or absent) means hwloc did not know it."""
    value = float(getattr(attr, "linkspeed", 0.0) or 0.0)
    return round(value, 2) if value > 0 else None


def _device(pci: PciDevice, locality: _Locality) -> _Dev:
    attr = pci.attr
    bridges: list[PciAddress] = []
    host: str | None = None
    p = pci.parent
    while p is not None and p.is_io():
        if isinstance(p, Bridge):
            battr = p.attr
            if battr.upstream_type == ObjBridgeType.HOST:
                down = battr.downstream.pci
                host = f"hostbridge:{down.domain:04x}:{down.secondary_bus:02x}-{down.subordinate_bus:02x}"
            else:
                bridges.append(_address(battr.upstream.pci))
        p = p.parent
    numa, cpus, package = locality.of(p) if p is not None else (None, frozenset[int](), None)
    info = PciInfo(
        address=_address(attr),
        class_id=int(attr.class_id),
        vendor_id=int(attr.vendor_id),
        device_id=int(attr.device_id),
        link=PciLink(bandwidth_gbs=_bandwidth(attr)),
        bridges=tuple(bridges),
        switches=pcie_switches(bridges),
        host_bridge=host,
        numa_node=numa,
        local_cpus=cpus,
        package=package,
    )
    osdevs = [c for c in pci.iter_io_children() if isinstance(c, OsDevice)]
    return _Dev(pci, info, osdevs, at_root=p is not None and p.type == ObjType.MACHINE)


# --- GPUs -------------------------------------------------------------------------------------


def _is_compute_osdev(o: OsDevice) -> bool:
    return bool(o.is_gpu() or o.is_coproc()) and _COMPUTE_OSDEV.match(o.name or "") is not None


def _is_gpu(d: _Dev, gpu_memory: Mapping[PciAddress, int]) -> bool:
    info = d.info
    if info.vendor_id in _DISPLAY_ONLY_VENDORS or (info.vendor_id, info.device_id) in _DISPLAY_ONLY_DEVICES:
        return False
    if d.obj.subtype == "NVSwitch":
        return False
    if info.vendor_id == 0x10DE and info.class_id == 0x0680:  # NVSwitch
        return False
    if info.address in gpu_memory or any(_is_compute_osdev(o) for o in d.osdevs):
        return True
    base = info.class_id >> 8
    if base == 0x12:  # processing accelerator
        return True
    if base == 0x03 and info.vendor_id in (0x10DE, 0x1002):
        return True
    return info.vendor_id == 0x8086 and info.class_id in (0x0380, 0x0302)


def _first_info(objs: Iterable[Object], names: Sequence[str]) -> str | None:
    for o in objs:
        infos = o.info
        for name in names:
            value = str(infos.get(name, "")).strip()  # str(): pyhwloc's types are Any where it is absent
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
    # hwloc makes GPU-memory NUMA nodes only for NVIDIA GPUs (HWLOC_KEEP_NVIDIA_GPU_NUMA_NODES).
    return "nvidia" if memory_node else "other"


def _gpus(devs: Sequence[_Dev], dists: Sequence[Distances], gpu_memory: Mapping[PciAddress, int]) -> tuple[Gpu, ...]:
    links = _nvlinks(dists)
    out: list[Gpu] = []
    for d in devs:  # already in PCI address order
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


def _pci_of(o: Object) -> PciAddress | None:
    """The PCI address of a distances object: a PCI device, or the PCI device above an OS device."""
    p: Object | None = o
    while p is not None and p.type == ObjType.OS_DEVICE:
        p = p.parent
    if p is None or p.type != ObjType.PCI_DEVICE:
        return None
    return _address(p.attr)


def _nvlinks(dists: Sequence[Distances]) -> dict[PciAddress, list[NvLink]]:
    """NVLinks from hwloc's NVLinkBandwidth matrix (MB/s between GPUs, NVSwitches and CPUs).

    Link counts are bandwidth / per-link bandwidth when every value is a multiple
    of one NVLink generation's rate, else 1 per connected pair. CPU peers
    (POWER8/9 NVLink to the socket) have no PCI address and are left out.
    """
    out: dict[PciAddress, list[NvLink]] = {}
    for d in dists:
        if d.name != "NVLinkBandwidth":
            continue
        objs = d.objects
        addrs = [_pci_of(o) for o in objs]
        n = len(objs)
        values = [[int(d[i, j]) for j in range(n)] for i in range(n)]
        nonzero = [values[i][j] for i in range(n) for j in range(n) if i != j and values[i][j]]
        unit = next((u for u in _NVLINK_UNITS if nonzero and all(v % u == 0 for v in nonzero)), None)
        for i, a in enumerate(addrs):
            if a is None:
                continue
            for j, b in enumerate(addrs):
                v = values[i][j]
                if i != j and v and b is not None:
                    out.setdefault(a, []).append(NvLink(b, v // unit if unit else 1))
    return out


# --- storage ----------------------------------------------------------------------------------


def _storage(topo: Topology, devs: Sequence[_Dev]) -> tuple[Storage, ...]:
    """Block devices on PCI (NVMe namespaces, SCSI disks) and NVMe controllers that show no block device.

    Block devices without a PCI parent (pmem, network-backed disks) are left out.
    """
    by_gp = {d.obj.gp_index: d for d in devs}
    out: list[Storage] = []
    with_block: set[int] = set()
    for o in topo.iter_os_devices():
        if not o.is_storage() or not o.name or _OPTICAL.match(o.name):
            continue
        parent = o.parent
        dev = by_gp.get(parent.gp_index) if parent is not None and parent.type == ObjType.PCI_DEVICE else None
        if dev is None:
            continue
        with_block.add(dev.obj.gp_index)
        infos = o.info
        model = " ".join(infos.get("Model", "").split()) or None
        out.append(Storage(o.name, dev.info, model, parse_size(infos.get("Size"))))
    for d in devs:
        if d.info.class_id == 0x0108 and d.obj.gp_index not in with_block:
            out.append(Storage(f"nvme@{d.info.address}", d.info, _first_info([d.obj], ("PCIDevice",))))
    return tuple(out)
