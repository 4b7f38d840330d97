"""What kind of device a PCI function is, from the facts every source can give.

One set of rules for hwloc, sysfs and NCCL files, so a device is the same kind
whichever source described it: the GPU vendor by PCI vendor id, and the fabric a
NIC serves. For NICs, order matters: the vendor fabrics (EFA, Slingshot) are told
by their PCI ids or driver before the port's link layer is asked, because their
verbs devices report no InfiniBand/Ethernet link layer of their own. Class ids are
16-bit (base class, subclass), as hwloc and :class:`~pinctl.model.PciInfo` keep them.
"""

from __future__ import annotations

from collections.abc import Sequence

from pinctl.model import GpuVendor, NicKind, NicPort, PciInfo

AMAZON = 0x1D0F  # EFA devices are 1d0f:efa0, efa1, efa2, ...
HPE_CRAY = 0x17DB  # Slingshot (Cassini, cxi driver)
IB_CLASSES = frozenset({0x0C06, 0x0207})  # serial-bus InfiniBand, network InfiniBand controller
ETHERNET_CLASS = 0x0200
GPU_VENDORS: dict[int, GpuVendor] = {0x10DE: "nvidia", 0x1002: "amd", 0x8086: "intel"}


def gpu_vendor(vendor_id: int) -> GpuVendor | None:
    """The GPU vendor a PCI vendor id names, or None."""
    return GPU_VENDORS.get(vendor_id)


def is_efa(vendor_id: int, device_id: int) -> bool:
    return vendor_id == AMAZON and device_id >> 4 == 0xEFA


def pci_nic_kind(class_id: int | None, vendor: int, device: int) -> NicKind | None:
    """What the PCI ids alone prove: EFA (1d0f:efa*), InfiniBand or Ethernet by class, else None."""
    if is_efa(vendor, device):
        return "efa"
    if class_id in IB_CLASSES:
        return "infiniband"
    if class_id == ETHERNET_CLASS:
        return "ethernet"
    return None


def rdma_kind(info: PciInfo | None, ports: Sequence[NicPort], driver: str | None = None) -> NicKind:
    """EFA, Slingshot, else the ports' link layer (InfiniBand or RoCE), else the PCI class."""
    vendor, device, cls = (info.vendor_id, info.device_id, info.class_id) if info is not None else (0, 0, 0)
    if driver == "efa" or is_efa(vendor, device):
        return "efa"
    if (driver is not None and driver.startswith("cxi")) or vendor == HPE_CRAY:
        return "slingshot"
    layer = next((p.link_layer for p in ports if p.link_layer), None)
    if layer == "InfiniBand":
        return "infiniband"
    if layer == "Ethernet":
        return "roce"
    return "infiniband" if cls in IB_CLASSES else "other"
