"""PCIe facts that live in config space or the IOMMU: ACS redirect on switch ports, DMA translation.

Config space (``/sys/bus/pci/devices/X/config``) shows its first 64 bytes to anyone and the
extended capabilities (from offset 0x100, where ACS lives) to root only: a short read is
reported as "needs root". ACS is extended capability 0x000D; its control register (offset
+6) has P2P Request Redirect (bit 2) and P2P Completion Redirect (bit 3), which send peer
traffic up to the root complex (PCIe base spec 7.7.8; NCCL's troubleshooting guide).
An IOMMU group's ``type`` reads ``identity`` (passthrough), ``DMA`` or ``DMA-FQ`` (translated).
"""

from __future__ import annotations

from pinctl.kernel import pci
from pinctl.kernel.files import KernelFiles, NeedsRoot
from pinctl.model import PciAddress

ACS_CAP_ID = 0x000D
ACS_REDIRECT = {0x4: "P2P request redirect", 0x8: "P2P completion redirect"}
IOMMU_CLASS = "/sys/class/iommu"
IOMMU_GROUPS = "/sys/kernel/iommu_groups"
CMDLINE = "/proc/cmdline"


def acs_control(files: KernelFiles, address: PciAddress) -> int | None:
    """The ACS control register of a port; None when it has no ACS capability or no config file.

    Raises NeedsRoot when the extended config space is hidden (a non-root read stops at 64 bytes).
    """
    rel = pci.device_file(address, "config")
    data = files.read_bytes(rel)
    if data is None:
        return None
    if len(data) <= 0x100:
        raise NeedsRoot(rel)
    offset, seen = 0x100, 0
    while 0x100 <= offset <= len(data) - 8 and seen < 128:
        header = int.from_bytes(data[offset : offset + 4], "little")
        if header & 0xFFFF == ACS_CAP_ID:
            return int.from_bytes(data[offset + 6 : offset + 8], "little")
        offset, seen = header >> 20, seen + 1
        if offset == 0:
            break
    return None


def iommu_units(files: KernelFiles) -> list[str]:
    """IOMMU hardware units the kernel drives (dmar0, ivhd0, ...): empty when the IOMMU is off."""
    return files.listdir(IOMMU_CLASS)


def iommu_group_type(files: KernelFiles, address: PciAddress) -> tuple[str | None, str | None]:
    """``(group, type)`` of a device: group None when it has none (IOMMU off for it); type None if unknown."""
    group = files.link_name(pci.device_file(address, "iommu_group"))
    if group is None:
        return None, None
    return group, files.read(f"{IOMMU_GROUPS}/{group}/type")


def cmdline_iommu(files: KernelFiles) -> list[str]:
    """The boot parameters that set the IOMMU's mode (iommu=pt, intel_iommu=on, amd_iommu=off, ...)."""
    words = (files.read(CMDLINE) or "").split()
    return [w for w in words if w.split("=", 1)[0] in ("iommu", "intel_iommu", "amd_iommu", "iommu.passthrough")]
