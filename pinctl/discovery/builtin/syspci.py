"""PCI devices and OS devices of the live system or a gathered tree, as hwloc's Linux I/O discovery finds them.

Every function in /sys/bus/pci/devices; a PCI-to-PCI bridge (class 0x0604, header type 1)
holds the functions whose bus lies in its secondary..subordinate range, read from the
configuration header; functions left at the top group into host bridges by domain and
bus, each placed at the object holding the ``local_cpus`` of its first function (the
machine root when that is every CPU or unknown). The link bandwidth comes from the PCI
Express capability (readable by root). OS devices (disks, network interfaces, verbs
devices, DRM nodes, DMA channels) hang from the PCI function in their resolved path.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pinctl.cpuset import decimal
from pinctl.discovery.builtin.tree import (
    OSDEV_DMA,
    OSDEV_GPU,
    OSDEV_NETWORK,
    OSDEV_OPENFABRICS,
    OSDEV_STORAGE,
    Obj,
    Tree,
)
from pinctl.kernel import hwtopo, pci
from pinctl.kernel.files import KernelFiles
from pinctl.model import PciAddress

# GT/s per lane and line-code efficiency per PCIe generation (link status speed field 1..6).
_LANE_GBITS = {1: 2.5 * 0.8, 2: 5 * 0.8, 3: 8 * 128 / 130, 4: 16 * 128 / 130, 5: 32 * 128 / 130, 6: 64 * 242 / 256}
_BRIDGE_CLASSES = (0x0604, 0x0609)
_PCIE_CAP = 0x10
_DEV_NUMBERS = re.compile(r"^\d{1,10}:\d{1,10}$")  # a block device's major:minor, the key of its udev entry
_HEX = re.compile(r"^(0x)?[0-9a-fA-F]{1,8}$")

Insert = Callable[[Obj, Obj], Obj]


def _link_gbs(config: bytes) -> float:
    """hwloc's link speed in GB/s from the PCIe capability's link status; 0 when unreadable."""
    if len(config) < 0x40 or not config[0x06] & 0x10:
        return 0.0
    ptr, seen = config[0x34] & ~3, 0
    while ptr and ptr + 0x14 <= len(config) and seen < 48:
        if config[ptr] == _PCIE_CAP:
            status = int.from_bytes(config[ptr + 0x12 : ptr + 0x14], "little")
            speed, width = status & 0xF, (status >> 4) & 0x3F
            return _LANE_GBITS.get(speed, 0.0) * width / 8
        ptr, seen = config[ptr + 1] & ~3, seen + 1
    return 0.0


def _sysfs_gbs(files: KernelFiles, address: PciAddress) -> float:
    """GB/s from ``current_link_speed`` and ``current_link_width`` (8b/10b below 8 GT/s, 128b/130b up
    to 32 GT/s, 242/256 FLIT at 64 GT/s), as hwloc computes it; 0 when the files are absent."""
    link = pci.link(files, address)
    gts, width = link.speed_gts, link.width
    if not gts or not width:
        return 0.0
    code = 0.8 if gts < 8 else 128 / 130 if gts < 64 else 242 / 256
    return gts * code * width / 8


def _function(files: KernelFiles, address: PciAddress) -> tuple[Obj, tuple[int, int] | None]:
    """A PCIDev or Bridge object for *address*, and a bridge's (secondary, subordinate) buses."""
    config = hwtopo.pci_config(files, address)
    if len(config) >= 0x40:
        vendor, device = int.from_bytes(config[0:2], "little"), int.from_bytes(config[2:4], "little")
        class_id, header = int.from_bytes(config[0x0A:0x0C], "little"), config[0x0E] & 0x7F
        revision = config[0x08]
        subsystem = config[0x2C:0x30] if header == 0 else bytes(4)
    else:
        code, vendor, device = pci.ids(files, address)
        class_id, header, revision, subsystem = code >> 8, 0, 0, bytes(4)
    sub_vendor, sub_device = int.from_bytes(subsystem[0:2], "little"), int.from_bytes(subsystem[2:4], "little")
    kind = f"{class_id:04x} [{vendor:04x}:{device:04x}] [{sub_vendor:04x}:{sub_device:04x}] {revision:02x}"
    attrs = {"pci_busid": str(address), "pci_type": kind}
    speed = _sysfs_gbs(files, address) or _link_gbs(config)
    if speed:
        attrs["pci_link_speed"] = f"{speed:f}"
    udev = hwtopo.udev_entry(files, f"+pci:{address}")
    infos = {
        k: udev[v]
        for k, v in (("PCIVendor", "ID_VENDOR_FROM_DATABASE"), ("PCIDevice", "ID_MODEL_FROM_DATABASE"))
        if v in udev
    }
    if class_id in _BRIDGE_CLASSES and header == 1 and len(config) >= 0x1B:
        secondary, subordinate = config[0x19], config[0x1A]
        if 0 < secondary <= subordinate:
            attrs["bridge_type"] = "1-1"
            attrs["bridge_pci"] = f"{address.domain:04x}:[{secondary:02x}-{subordinate:02x}]"
            return Obj("Bridge", attrs=attrs, infos=infos), (secondary, subordinate)
    return Obj("PCIDev", attrs=attrs, infos=infos), None


def add_pci(files: KernelFiles, tree: Tree, *, insert: Insert) -> None:
    """Every PCI function and OS device under *tree*'s objects."""
    functions = hwtopo.pci_functions(files)
    made = {a: _function(files, a) for a in functions}
    by_address: dict[PciAddress, Obj] = {a: o for a, (o, _) in made.items()}
    top: list[PciAddress] = []
    for a in functions:
        holders = [
            (rng[0], b)
            for b, (_, rng) in made.items()
            if rng is not None and b != a and b.domain == a.domain and rng[0] <= a.bus <= rng[1]
        ]
        if holders:
            by_address[max(holders)[1]].add(by_address[a])
        else:
            top.append(a)
    i = 0
    while i < len(top):
        first = top[i]
        group = [a for a in top[i:] if (a.domain, a.bus) == (first.domain, first.bus)]
        i += len(group)
        subordinate = max([first.bus] + [rng[1] for a in group if (rng := made[a][1]) is not None])
        host = Obj(
            "Bridge",
            attrs={"bridge_type": "0-1", "bridge_pci": f"{first.domain:04x}:[{first.bus:02x}-{subordinate:02x}]"},
        )
        for a in group:
            host.add(by_address[a])
        _place(files, tree, insert, host, first)
    for node, gpu in tree.pending_memory:
        parent = by_address.get(gpu)
        anchor = _non_io(parent) if parent is not None else tree.root
        anchor.add(node)
    _osdevs(files, by_address)


def _non_io(o: Obj) -> Obj:
    p: Obj | None = o
    while p is not None and p.is_io:
        p = p.parent
    return p if p is not None else o


def _place(files: KernelFiles, tree: Tree, insert: Insert, host: Obj, first: PciAddress) -> None:
    local = hwtopo.pci_local_cpus(files, first)
    cpus = (local or frozenset()) & tree.root.cpuset
    parent = tree.root if not cpus or cpus == tree.root.cpuset else insert(tree.root, Obj("Group", cpuset=cpus))
    parent.add(host)


def _pci_parent(real: str, by_address: dict[PciAddress, Obj]) -> Obj | None:
    """The PCI function nearest the end of a resolved class-device path."""
    for part in reversed(real.strip("/").split("/")):
        address = PciAddress.parse_or_none(part)
        if address is not None:
            return by_address.get(address)
    return None


def _osdevs(files: KernelFiles, by_address: dict[PciAddress, Obj]) -> None:
    for kind in ("block", "net", "infiniband", "drm", "dma"):
        for name, real in hwtopo.class_devices(files, kind):
            parent = _pci_parent(real, by_address)
            if parent is None:
                continue
            obj = _osdev(files, kind, name)
            if obj is not None:
                parent.add(obj)


def _osdev(files: KernelFiles, kind: str, name: str) -> Obj | None:
    if kind == "block":
        if hwtopo.class_file(files, kind, name, "partition") is not None:
            return None
        obj = Obj("OSDev", name=name, osdev_types=OSDEV_STORAGE)
        sectors = decimal(hwtopo.class_file(files, kind, name, "size") or "")
        if sectors is not None:
            obj.infos["Size"] = str(sectors * 512 // 1024)
        dev = hwtopo.class_file(files, kind, name, "dev") or ""
        udev = hwtopo.udev_entry(files, f"b{dev}") if _DEV_NUMBERS.match(dev) else {}
        model = udev.get("ID_MODEL")
        if model:
            obj.infos["Model"] = model
        return obj
    if kind == "net":
        obj = Obj("OSDev", name=name, osdev_types=OSDEV_NETWORK)
        if hwtopo.class_file(files, kind, name, "type") == "32":
            number = decimal(hwtopo.class_file(files, kind, name, "dev_port") or "")
            if number is None:
                dev_id = hwtopo.class_file(files, kind, name, "dev_id") or "0"
                number = int(dev_id, 16) if _HEX.match(dev_id) else 0
            obj.infos["Port"] = str(number + 1)
        return obj
    if kind == "infiniband":
        obj = Obj("OSDev", name=name, osdev_types=OSDEV_NETWORK | OSDEV_OPENFABRICS)
        for port in hwtopo.class_entries(files, kind, name, "ports"):
            state = hwtopo.class_file(files, kind, name, f"ports/{port}/state")
            lid = hwtopo.class_file(files, kind, name, f"ports/{port}/lid")
            if state:
                obj.infos[f"Port{port}State"] = state.split(":")[0].strip()
            if lid:
                obj.infos[f"Port{port}LID"] = lid
        return obj
    if kind == "drm":
        return None if "-" in name else Obj("OSDev", name=name, osdev_types=OSDEV_GPU)
    return Obj("OSDev", name=name, osdev_types=OSDEV_DMA)
