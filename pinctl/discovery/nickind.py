"""Which RDMA fabric a NIC serves, from the facts every source can give.

One rule for hwloc, sysfs and NCCL files, so a NIC is the same kind whichever
source described it. Order matters: the vendor fabrics (EFA, Slingshot) are
told by their PCI ids or driver before the port's link layer is asked, because
their verbs devices report no InfiniBand/Ethernet link layer of their own.
"""

from __future__ import annotations

from collections.abc import Sequence

from pinctl.model import NicKind, NicPort, PciInfo

AMAZON = 0x1D0F  # EFA devices are 1d0f:efa0, efa1, efa2, ...
HPE_CRAY = 0x17DB  # Slingshot (Cassini, cxi driver)
IB_CLASSES = frozenset({0x0C06, 0x0207})  # serial-bus InfiniBand, network InfiniBand controller


def is_efa(vendor_id: int, device_id: int) -> bool:
    return vendor_id == AMAZON and device_id >> 4 == 0xEFA


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
