"""NICs from hwloc's OS devices: RDMA HCAs (verbs), Slingshot, IPoIB and plain Ethernet.

hwloc 2.x writes port facts as ``Port<N>State`` (the verbs state number) and
``Port<N>LID``, and no link layer; the link layer is then inferred from facts
that only one of InfiniBand and Ethernet has (see :func:`_guess_link_layer`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pyhwloc.hwobject import ObjOsdevType, OsDevice

from pinctl.discovery.kinds import HPE_CRAY, IB_CLASSES, rdma_kind
from pinctl.model import Nic, NicPort, PciInfo

# Verbs port states (ibv_port_state); hwloc writes the number.
_PORT_STATES = {"0": "NOP", "1": "DOWN", "2": "INIT", "3": "ARMED", "4": "ACTIVE", "5": "ACTIVE_DEFER"}
_PORT_INFO = re.compile(r"^Port(\d+)(State|LID|LinkLayer)$")


def _is_openfabrics(o: OsDevice) -> bool:
    return bool(o.is_osdev_type(ObjOsdevType.OPENFABRICS))


def _is_netdev(o: OsDevice) -> bool:
    return bool(o.is_osdev_type(ObjOsdevType.NETWORK)) and not _is_openfabrics(o)


def nics_of(info: PciInfo, osdevs: Sequence[OsDevice]) -> list[Nic]:
    """The NICs of one PCI function from its OS devices.

    One Nic per OpenFabrics (verbs) device, with the function's netdevs; without
    one, a Slingshot function (RDMA through cxi, no verbs device), an
    InfiniBand-class function with only IPoIB netdevs, or a plain Ethernet NIC.
    """
    fabrics = [o for o in osdevs if _is_openfabrics(o)]
    nets = [o for o in osdevs if _is_netdev(o)]
    netnames = tuple(o.name for o in nets if o.name)
    if fabrics:
        out = []
        for f in fabrics:
            ports = _rdma_ports(f, nets, info.class_id)
            out.append(Nic(f.name or f"rdma@{info.address}", rdma_kind(info, ports), True, info, ports, netnames))
        return out
    base = info.class_id >> 8
    if info.vendor_id == HPE_CRAY and base == 0x02:  # HPE Slingshot (cxi): RDMA without a verbs device
        name = netnames[0] if netnames else f"slingshot@{info.address}"
        return [Nic(name, "slingshot", True, info, _plain_ports(nets, None), netnames)]
    if not nets:
        return []
    if info.class_id in IB_CLASSES:
        return [Nic(netnames[0], "infiniband", True, info, _plain_ports(nets, "InfiniBand"), netnames)]
    if base == 0x02:
        return [Nic(netnames[0], "ethernet", False, info, _plain_ports(nets, "Ethernet"), netnames)]
    return []


def _plain_ports(nets: Sequence[OsDevice], link_layer: str | None) -> tuple[NicPort, ...]:
    return tuple(NicPort(i + 1, link_layer=link_layer, netdev=o.name) for i, o in enumerate(nets))


def _rdma_ports(dev: OsDevice, nets: Sequence[OsDevice], class_id: int) -> tuple[NicPort, ...]:
    """Ports from hwloc's Port<N>State / Port<N>LID / Port<N>LinkLayer infos."""
    facts: dict[int, dict[str, str]] = {}
    for key, value in dev.info.items():
        m = _PORT_INFO.match(key)
        if m:
            facts.setdefault(int(m.group(1)), {})[m.group(2)] = value.strip()
    by_port = {o.info.get("Port", "").strip(): o.name for o in nets}
    ports = []
    for number in sorted(facts):
        f = facts[number]
        state = f.get("State")
        netdev = by_port.get(str(number)) or (nets[0].name if len(nets) == 1 and len(facts) == 1 else None)
        ports.append(
            NicPort(
                number,
                state=_PORT_STATES.get(state, state.upper()) if state else None,
                link_layer=f.get("LinkLayer") or _guess_link_layer(f.get("LID"), netdev, nets, class_id),
                netdev=netdev,
            )
        )
    return tuple(ports)


def _guess_link_layer(lid: str | None, netdev: str | None, nets: Sequence[OsDevice], class_id: int) -> str | None:
    """InfiniBand or Ethernet when hwloc did not say (it writes no link layer before hwloc 3).

    A nonzero LID exists only on InfiniBand; an ``ib*`` netdev is IPoIB; an
    InfiniBand-class function is IB; an Ethernet netdev with LID 0 is RoCE.
    """
    try:
        lid_value = int(lid, 0) if lid else None
    except ValueError:
        lid_value = None
    names = [netdev] if netdev else [o.name for o in nets if o.name]
    if lid_value:
        return "InfiniBand"
    if any(n.startswith("ib") for n in names if n):
        return "InfiniBand"
    if class_id in IB_CLASSES:
        return "InfiniBand"
    if names and (class_id == 0x0200 or lid_value == 0):
        return "Ethernet"
    return None
