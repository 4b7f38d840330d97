"""PCI function facts from /sys/bus/pci/devices: ids, link state, locality, place in the tree, IRQs.

Files follow Documentation/ABI/testing/sysfs-bus-pci (``numa_node``, ``local_cpulist``,
``current_link_speed`` "16.0 GT/s PCIe", ``*_link_width``, ``msi_irqs/``). Devices are
named by parsed addresses (:class:`~pinctl.model.PciAddress`), never by strings.
"""

from __future__ import annotations

import re

from pinctl.cpuset import decimal, parse_list
from pinctl.errors import UsageError
from pinctl.kernel.files import KernelFiles
from pinctl.model import PciAddress, PciLink, pcie_switches

DEVICES_DIR = "/sys/bus/pci/devices"
_SPEED_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*GT/s")
_LINK_FILES = ("current_link_speed", "max_link_speed", "current_link_width", "max_link_width")


def device_file(address: PciAddress | str, name: str = "") -> str:
    """The path of a function's directory or one of its files, for evidence lines."""
    return f"{DEVICES_DIR}/{address}" + (f"/{name}" if name else "")


def parse_link_speed(text: str | None) -> float | None:
    """``16.0 GT/s PCIe`` / ``8 GT/s`` -> GT/s per lane; ``Unknown`` or junk -> None."""
    m = _SPEED_RE.match(text or "")
    return float(m.group(1)) if m else None


def _width(text: str | None) -> int | None:
    width = decimal(text or "", limit=3)
    return width if width else None


def _link_of(values: dict[str, str | None]) -> PciLink:
    return PciLink(
        speed_gts=parse_link_speed(values["current_link_speed"]),
        width=_width(values["current_link_width"]),
        max_speed_gts=parse_link_speed(values["max_link_speed"]),
        max_width=_width(values["max_link_width"]),
    )


def link(files: KernelFiles, address: PciAddress) -> PciLink:
    """The link as trained now and its maximum (fields None where the files are absent)."""
    return _link_of({name: files.read(device_file(address, name)) for name in _LINK_FILES})


def link_fact(files: KernelFiles, address: PciAddress) -> tuple[PciLink, tuple[str, ...]] | None:
    """The link with its evidence lines; None when no link file exists. Unreadable raises NeedsRoot."""
    values = {name: files.read(device_file(address, name), strict_perm=True) for name in _LINK_FILES}
    if all(v is None for v in values.values()):
        return None
    evidence = tuple(f"{device_file(address, n)} = {v}" for n, v in values.items() if v is not None)
    return _link_of(values), evidence


def exists(files: KernelFiles, address: PciAddress) -> bool:
    return files.exists(device_file(address))


def has_devices(files: KernelFiles) -> bool:
    return files.exists(DEVICES_DIR)


def functions(files: KernelFiles) -> list[str]:
    """Every PCI function's address as sysfs names it (``0000:3b:00.0``)."""
    return files.listdir(DEVICES_DIR)


def ids(files: KernelFiles, address: PciAddress | str) -> tuple[int, int, int]:
    """(class code, vendor, device) ids; 0 for what is unreadable. The class code is sysfs's
    24 bits (base class, subclass, programming interface: 0x030200)."""
    base = device_file(address)
    return (
        files.read_int(f"{base}/class", 16) or 0,
        files.read_int(f"{base}/vendor", 16) or 0,
        files.read_int(f"{base}/device", 16) or 0,
    )


def driver(files: KernelFiles, address: PciAddress | str) -> str | None:
    return files.link_name(device_file(address, "driver"))


def numa_node(files: KernelFiles, address: PciAddress) -> int | None:
    """The function's NUMA node; None when the firmware gave none (-1) or the file is absent."""
    value = files.read_int(device_file(address, "numa_node"))
    return value if value is not None and value >= 0 else None


def local_cpus(files: KernelFiles, address: PciAddress) -> frozenset[int]:
    """CPUs local to the function (``local_cpulist``); empty when unknown."""
    text = files.read(device_file(address, "local_cpulist"))
    if not text:
        return frozenset()
    try:
        return parse_list(text, what="local_cpulist")
    except UsageError:
        return frozenset()


def msi_irqs(files: KernelFiles, address: PciAddress) -> list[str]:
    """The function's MSI/MSI-X interrupt numbers (names under ``msi_irqs/``)."""
    return files.listdir(device_file(address, "msi_irqs"))


def address_of(files: KernelFiles, rel: str) -> PciAddress | None:
    """The PCI function a class device link (``.../device``) resolves to, or None (virtual, VMBus)."""
    real = files.resolve(rel)
    if real is None:
        return None
    last = real.rstrip("/").rsplit("/", 1)[-1]
    addr = PciAddress.parse_or_none(last)
    if addr is None:  # virtio-net: device -> .../0000:00:03.0/virtio0
        addr = PciAddress.parse_or_none(real.rstrip("/").rsplit("/", 2)[-2])
    return addr


def place(files: KernelFiles, address: PciAddress) -> tuple[tuple[PciAddress, ...], tuple[str, ...], str | None] | None:
    """Bridges (nearest first), switches and host bridge name from the function's resolved path."""
    real = files.resolve(device_file(address))
    return None if real is None else path_topology(real)


def path_topology(real: str) -> tuple[tuple[PciAddress, ...], tuple[str, ...], str | None]:
    """Bridges, switches and host bridge from a resolved ``/sys/devices/pciDDDD:BB/...`` path.

    Bridges pair into switches as :func:`pinctl.model.pcie_switches` says.
    """
    parts = real.strip("/").split("/")
    host = next((p for p in parts if p.startswith("pci") and ":" in p), None)
    chain = [a for a in (PciAddress.parse_or_none(p) for p in parts) if a is not None]
    bridges = tuple(reversed(chain[:-1]))
    return bridges, pcie_switches(bridges), host
