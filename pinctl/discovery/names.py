"""Names a topology file gives its devices, checked before anything uses them.

A --topology file is untrusted: a NIC named ``mlx5_0`` + newline + ``[Manager]`` went as it was
into the plan table (a line that is not the plan's), into NCCL_IB_HCA and UCX_NET_DEVICES (a
comma or colon there names other HCAs or ports: ``mlx5_0,mlx5_9``). The kernel never names a
device so. A NIC or interface name is letters, digits, ``_``, ``.`` and ``-`` (what every
capture in fixtures/ and shared/topologies holds), or pinctl's own ``rdma@ADDR`` for an unnamed
one; a storage or GPU OS name may also hold hwloc's ``@`` and ``:`` (``nvme@0000:01:00.0``).
Free text (a GPU model, a port state) may hold anything printable but no control character, so
no view gains a line. Refused in one line.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

from pinctl.errors import TopologyError
from pinctl.model import Node

_PLACEHOLDER = r"[a-z]+@[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]"  # pinctl's own: rdma@0000:10:1b.0
_NIC = re.compile(rf"(?:[A-Za-z0-9_.-]{{1,64}}|{_PLACEHOLDER})\Z")
_OS_NAME = re.compile(r"[A-Za-z0-9_.:@-]{1,64}\Z")
MAX_TEXT = 256


def check_names(node: Node) -> None:
    """Raise TopologyError naming the first device name outside its grammar."""
    for what, value, pattern in _names(node):
        if pattern is not None and not pattern.match(value):
            _refuse(node, what, value, "a device name is letters, digits, '_', '.' and '-'")
        if pattern is None and (len(value) > MAX_TEXT or any(_control(c) for c in value)):
            _refuse(node, what, value, f"control characters or over {MAX_TEXT} characters")


def _names(node: Node) -> Iterator[tuple[str, str, re.Pattern[str] | None]]:
    for nic in node.nics:
        yield "NIC name", nic.name, _NIC
        for netdev in nic.netdevs:
            yield f"NIC {nic.name} interface", netdev, _NIC
        for port in nic.ports:
            if port.netdev is not None:
                yield f"NIC {nic.name} port {port.number} interface", port.netdev, _NIC
            for text in (port.state, port.phys_state, port.link_layer):
                if text is not None:
                    yield f"NIC {nic.name} port {port.number}", text, None
    for disk in node.storage:
        yield "storage name", disk.name, _OS_NAME
        if disk.model is not None:
            yield f"storage {disk.name} model", disk.model, None
    for gpu in node.gpus:
        for name in gpu.os_names:
            yield f"GPU {gpu.pci.address} OS name", name, _OS_NAME
        for text in (gpu.name, gpu.uuid, *(m.uuid for m in gpu.mig), *(m.name for m in gpu.mig)):
            if text is not None:
                yield f"GPU {gpu.pci.address}", text, None


def _control(c: str) -> bool:
    return unicodedata.category(c) in ("Cc", "Zl", "Zp")


def _refuse(node: Node, what: str, value: str, rule: str) -> None:
    raise TopologyError(f"{node.source}: {what} {value[:80]!r} is not one a machine has ({rule})")
