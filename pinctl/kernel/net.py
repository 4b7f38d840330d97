"""Network interfaces backed by a device, from /sys/class/net (Documentation/ABI/testing/sysfs-class-net)."""

from __future__ import annotations

from dataclasses import dataclass

from pinctl.kernel import pci
from pinctl.kernel.files import KernelFiles
from pinctl.model import PciAddress

NET_DIR = "/sys/class/net"
ARPHRD_INFINIBAND = 32  # include/uapi/linux/if_arp.h: the ``type`` of an IPoIB interface


@dataclass(frozen=True)
class NetIf:
    """One interface; ``speed_mbps`` None when the link is down (the kernel writes -1)."""

    name: str
    address: PciAddress | None
    operstate: str | None
    speed_mbps: int | None
    infiniband: bool


def interfaces(files: KernelFiles) -> list[NetIf]:
    """Interfaces with a device behind them (not lo, bridges or veth)."""
    out = []
    for name in files.listdir(NET_DIR):
        base = f"{NET_DIR}/{name}"
        if not files.exists(f"{base}/device"):
            continue
        speed = files.read_int(f"{base}/speed")
        out.append(
            NetIf(
                name=name,
                address=pci.address_of(files, f"{base}/device"),
                operstate=files.read(f"{base}/operstate"),
                speed_mbps=speed if speed is not None and speed > 0 else None,
                infiniband=files.read_int(f"{base}/type") == ARPHRD_INFINIBAND,
            )
        )
    return out
