"""RDMA device facts from /sys/class/infiniband (verbs) and /sys/class/cxi (Slingshot).

Files follow Documentation/ABI/stable/sysfs-class-infiniband: ``ports/N/state`` reads
"4: ACTIVE", ``phys_state`` "5: LinkUp", ``link_layer`` InfiniBand or Ethernet,
``rate`` "400 Gb/sec (4X NDR)", and ``gid_attrs/ndevs/0`` the netdev of a RoCE port.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pinctl.cpuset import decimal
from pinctl.kernel import pci
from pinctl.kernel.files import KernelFiles
from pinctl.model import PciAddress

IB_DIR = "/sys/class/infiniband"
CXI_DIR = "/sys/class/cxi"
_RATE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*Gb/sec")


@dataclass(frozen=True)
class IbPort:
    """One port of a verbs device; ``*_text`` are the files' raw contents, for evidence lines."""

    path: str
    number: int
    state_text: str | None
    phys_text: str | None
    link_layer: str | None = None
    rate_gbps: float | None = None
    ndev: str | None = None

    @property
    def state(self) -> str | None:
        return state_name(self.state_text)

    @property
    def phys_state(self) -> str | None:
        return state_name(self.phys_text)


def state_name(text: str | None) -> str | None:
    """``4: ACTIVE`` -> ``ACTIVE``; ``5: LinkUp`` -> ``LinkUp``."""
    if not text:
        return None
    return (text.partition(":")[2] if ":" in text else text).strip() or None


def parse_rate(text: str | None) -> float | None:
    """``400 Gb/sec (4X NDR)`` -> 400.0."""
    m = _RATE_RE.match(text or "")
    return float(m.group(1)) if m else None


def devices(files: KernelFiles) -> list[str]:
    """Verbs devices (mlx5_0, efa_0, irdma0, ...)."""
    return files.listdir(IB_DIR)


def cxi_devices(files: KernelFiles) -> list[str]:
    """Slingshot (Cassini) devices: RDMA without a verbs device."""
    return files.listdir(CXI_DIR)


def ports(files: KernelFiles, dev: str, *, strict: bool = False) -> list[IbPort]:
    """The ports of a verbs device in port order. With *strict*, an unreadable state raises NeedsRoot."""
    out = []
    names = sorted((p for p in files.listdir(f"{IB_DIR}/{dev}/ports") if decimal(p, limit=3) is not None), key=int)
    for name in names:
        base = f"{IB_DIR}/{dev}/ports/{name}"
        out.append(
            IbPort(
                path=base,
                number=int(name),
                state_text=files.read(f"{base}/state", strict_perm=strict),
                phys_text=files.read(f"{base}/phys_state", strict_perm=strict),
                link_layer=files.read(f"{base}/link_layer") or None,
                rate_gbps=parse_rate(files.read(f"{base}/rate")),
                ndev=files.read(f"{base}/gid_attrs/ndevs/0") or None,
            )
        )
    return out


def _device_dir(dev: str, cxi: bool) -> str:
    return f"{CXI_DIR if cxi else IB_DIR}/{dev}"


def device_address(files: KernelFiles, dev: str, *, cxi: bool = False) -> PciAddress | None:
    return pci.address_of(files, f"{_device_dir(dev, cxi)}/device")


def device_driver(files: KernelFiles, dev: str, *, cxi: bool = False) -> str | None:
    return files.link_name(f"{_device_dir(dev, cxi)}/device/driver")


def device_netdevs(files: KernelFiles, dev: str, *, cxi: bool = False) -> tuple[str, ...]:
    """Network interfaces of the device's PCI function (``device/net``)."""
    return tuple(files.listdir(f"{_device_dir(dev, cxi)}/device/net"))


# Error counters of a port (Documentation/ABI/stable/sysfs-class-infiniband, ports/N/counters/):
# above zero they mean a link that went down and retrained, or bits lost on the wire.
ERROR_COUNTERS = ("link_downed", "link_error_recovery", "symbol_error", "port_rcv_errors")


def error_counters(files: KernelFiles, port_path: str) -> dict[str, int]:
    """The port's error counters that exist (``port_path`` as :attr:`IbPort.path`); raises NeedsRoot."""
    out = {}
    for name in ERROR_COUNTERS:
        text = files.read(f"{port_path}/counters/{name}", strict_perm=True)
        value = decimal(text or "", limit=20)
        if value is not None:
            out[name] = value
    return out


MELLANOX = 0x15B3  # PCI vendor id of Mellanox, now NVIDIA Networking (ConnectX, BlueField)


def mlx5_without_rdma(files: KernelFiles) -> list[PciAddress]:
    """ConnectX functions bound to mlx5_core that no verbs device sits on.

    mlx5_core is the Ethernet/PCI driver; the verbs device (``mlx5_N`` in /sys/class/infiniband)
    comes from mlx5_ib on top of ib_core. Without them (the RDMA stack not loaded, or rdma-core /
    MLNX_OFED not installed) the HCA is on the bus but NCCL and MPI cannot use it for RDMA.
    """
    owned = {a for dev in devices(files) if (a := device_address(files, dev)) is not None}
    out = []
    for name in files.listdir(pci.DEVICES_DIR):
        address = PciAddress.parse_or_none(name)
        if address is None or address in owned:
            continue
        base = pci.device_file(address)
        if files.link_name(f"{base}/driver") != "mlx5_core" or pci.ids(files, address)[1] != MELLANOX:
            continue
        if files.listdir(f"{base}/infiniband"):
            continue
        out.append(address)
    return sorted(out)
