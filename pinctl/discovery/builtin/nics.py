"""NICs of the built-in tree from its OS devices, by the rules of :mod:`pinctl.discovery.hwloc.nics`.

One Nic per OpenFabrics (verbs) device with the function's netdevs; without one, a
Slingshot function, an InfiniBand-class function with IPoIB netdevs, or plain Ethernet.
Port facts come from ``Port<N>State`` / ``Port<N>LID`` / ``Port<N>LinkLayer`` infos.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pinctl.discovery.builtin.tree import OSDEV_NETWORK, OSDEV_OPENFABRICS, Obj
from pinctl.discovery.kinds import HPE_CRAY, IB_CLASSES, rdma_kind
from pinctl.model import Nic, NicPort, PciInfo

_PORT_STATES = {"0": "NOP", "1": "DOWN", "2": "INIT", "3": "ARMED", "4": "ACTIVE", "5": "ACTIVE_DEFER"}
_PORT_INFO = re.compile(r"^Port(\d+)(State|LID|LinkLayer)$")


def nics_of(info: PciInfo, osdevs: Sequence[Obj]) -> list[Nic]:
    """The NICs of one PCI function from its OS devices."""
    fabrics = [o for o in osdevs if o.has_osdev(OSDEV_OPENFABRICS)]
    nets = [o for o in osdevs if o.has_osdev(OSDEV_NETWORK) and not o.has_osdev(OSDEV_OPENFABRICS)]
    netnames = tuple(o.name for o in nets if o.name)
    if fabrics:
        out = []
        for f in fabrics:
            ports = _rdma_ports(f, nets, info.class_id)
            out.append(Nic(f.name or f"rdma@{info.address}", rdma_kind(info, ports), True, info, ports, netnames))
        return out
    base = info.class_id >> 8
    if info.vendor_id == HPE_CRAY and base == 0x02:
        name = netnames[0] if netnames else f"slingshot@{info.address}"
        return [Nic(name, "slingshot", True, info, _plain_ports(nets, None), netnames)]
    if not nets:
        return []
    if info.class_id in IB_CLASSES:
        return [Nic(netnames[0], "infiniband", True, info, _plain_ports(nets, "InfiniBand"), netnames)]
    if base == 0x02:
        return [Nic(netnames[0], "ethernet", False, info, _plain_ports(nets, "Ethernet"), netnames)]
    return []


def _plain_ports(nets: Sequence[Obj], link_layer: str | None) -> tuple[NicPort, ...]:
    return tuple(NicPort(i + 1, link_layer=link_layer, netdev=o.name) for i, o in enumerate(nets))


def _rdma_ports(dev: Obj, nets: Sequence[Obj], class_id: int) -> tuple[NicPort, ...]:
    facts: dict[int, dict[str, str]] = {}
    for key, value in dev.infos.items():
        m = _PORT_INFO.match(key)
        if m:
            facts.setdefault(int(m.group(1)), {})[m.group(2)] = value.strip()
    by_port = {o.infos.get("Port", "").strip(): o.name for o in nets}
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


def _guess_link_layer(lid: str | None, netdev: str | None, nets: Sequence[Obj], class_id: int) -> str | None:
    """InfiniBand or Ethernet when the tree does not say (hwloc 2 writes no link layer)."""
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
