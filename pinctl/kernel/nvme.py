"""NVMe controllers and namespaces from /sys/class/nvme and /sys/block.

Documentation/ABI/stable/sysfs-nvme (``model``, ``address``) and sysfs-block (``size``
counts 512-byte sectors whatever the logical block size). With native multipath the
controller lists ``nvme<subsys>c<ctrl>n<ns>`` and the block device ``nvme<subsys>n<ns>``
lives in /sys/block, so the size is read there first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pinctl.kernel import pci
from pinctl.kernel.files import KernelFiles
from pinctl.model import PciAddress

NVME_DIR = "/sys/class/nvme"
_NS_RE = re.compile(r"^nvme(\d+)(?:c\d+)?n(\d+)$")
_SECTOR = 512


@dataclass(frozen=True)
class NvmeController:
    """A controller: its model, PCI function and namespaces as (block device name, bytes or None)."""

    name: str
    model: str | None
    address: PciAddress | None
    namespaces: tuple[tuple[str, int | None], ...]


def controllers(files: KernelFiles) -> list[NvmeController]:
    out = []
    for ctrl in files.listdir(NVME_DIR):
        base = f"{NVME_DIR}/{ctrl}"
        address = PciAddress.parse_or_none(files.read(f"{base}/address") or "")
        address = address or pci.address_of(files, f"{base}/device")
        namespaces: list[tuple[str, int | None]] = []
        for entry in files.listdir(base):
            m = _NS_RE.match(entry)
            if m is None:
                continue
            name = f"nvme{m.group(1)}n{m.group(2)}"
            sectors = files.read_int(f"/sys/block/{name}/size")
            if sectors is None:
                sectors = files.read_int(f"{base}/{entry}/size")
            namespaces.append((name, sectors * _SECTOR if sectors is not None else None))
        out.append(NvmeController(ctrl, files.read(f"{base}/model") or None, address, tuple(namespaces)))
    return out
