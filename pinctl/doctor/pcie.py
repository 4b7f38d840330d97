"""PCIe links trained below capability, for GPUs, RDMA NICs, NVMe and the bridges above them.

A link that came up narrower (x8 instead of x16) or slower (Gen3 instead of
Gen5) after a bad reseat, a dirty connector or a BIOS setting halves the
bandwidth silently. The capability of a link is the smaller of both ends'
maxima (a Gen5 GPU in a Gen4 slot is not degraded), as lspci's "(downgraded)"
mark does; the partner of a function is one of its chain neighbours, so the
smallest neighbour maximum is used (never a false alarm, may miss a few).
GPUs lower their link *speed* when idle to save power, so a GPU link that is
only slower (not narrower) is noted, not warned about.
"""

from __future__ import annotations

from pinctl.doctor.finding import DoctorContext, Finding, no_node, ok, skipped
from pinctl.kernel import pci as kpci
from pinctl.model import PciAddress, PciInfo
from pinctl.words import count

CHECK = "pcie.link-degraded"


class _Link:
    def __init__(
        self,
        speed: float | None,
        max_speed: float | None,
        width: int | None,
        max_width: int | None,
        evidence: tuple[str, ...],
    ) -> None:
        self.speed, self.max_speed, self.width, self.max_width = speed, max_speed, width, max_width
        self.evidence = evidence


def _read(ctx: DoctorContext, addr: PciAddress) -> _Link | None:
    fact = kpci.link_fact(ctx.files, addr)
    if fact is None:
        return None
    lk, evidence = fact
    return _Link(lk.speed_gts, lk.max_speed_gts, lk.width, lk.max_width, evidence)


# PCIe generation -> GT/s per lane (PCI-SIG).
_GEN_GTS = {1: 2.5, 2: 5.0, 3: 8.0, 4: 16.0, 5: 32.0, 6: 64.0}


def _from_nvml(ctx: DoctorContext, addr: PciAddress) -> _Link | None:
    """NVML's current and maximum generation and width of a GPU's link (where sysfs has no link files)."""
    g = next((g for g in ctx.health.gpus if g.pci_bus_id == addr), None) if ctx.health else None
    p = g.pcie if g is not None else None
    if g is None or p is None or (p.gen is None and p.width is None):
        return None
    ev = (
        f"nvmlDeviceGetCurrPcieLinkGeneration/Width(GPU {g.index}) = Gen{p.gen} x{p.width}",
        f"nvmlDeviceGetMaxPcieLinkGeneration/Width(GPU {g.index}) = Gen{p.max_gen} x{p.max_width}",
    )
    return _Link(_GEN_GTS.get(p.gen or 0), _GEN_GTS.get(p.max_gen or 0), p.width, p.max_width, ev)


def _from_model(pci: PciInfo) -> _Link | None:
    lk = pci.link
    if lk.speed_gts is None and lk.width is None:
        return None
    ev = (f"{pci.address} (topology): {lk.speed_gts} GT/s x{lk.width}, max {lk.max_speed_gts} GT/s x{lk.max_width}",)
    return _Link(lk.speed_gts, lk.max_speed_gts, lk.width, lk.max_width, ev)


def _cap(own: float | int | None, partners: list[float | int | None]) -> float | int | None:
    known = [p for p in partners if p is not None]
    if own is None:
        return None
    return min([own, *known]) if known else own


def link_degraded(ctx: DoctorContext) -> list[Finding]:
    if ctx.node is None:
        return [no_node(ctx, CHECK)]
    node = ctx.node
    devices: list[tuple[str, PciInfo, bool]] = []
    devices += [(f"GPU {g.index}", g.pci, True) for g in node.gpus]
    devices += [(f"NIC {n.name}", n.pci, False) for n in node.nics if n.rdma and n.pci]
    devices += [(f"NVMe {s.name}", s.pci, False) for s in node.storage if s.pci]
    if not devices:
        return [skipped(CHECK, "no GPUs, RDMA NICs or NVMe in the topology")]
    out: list[Finding] = []
    seen: set[PciAddress] = set()
    checked = 0
    for label, pci, is_gpu in devices:
        chain = [pci.address, *pci.bridges]
        links = [_read(ctx, a) for a in chain]
        if links[0] is None and is_gpu:
            links[0] = _from_nvml(ctx, pci.address)
        if links[0] is None:
            links[0] = _from_model(pci)
        for i, addr in enumerate(chain):
            link = links[i]
            if link is None or addr in seen:
                continue
            seen.add(addr)
            checked += 1
            neighbours = [links[j] for j in (i - 1, i + 1) if 0 <= j < len(links)]
            partners = [n for n in neighbours if n is not None]
            cap_speed = _cap(link.max_speed, [p.max_speed for p in partners])
            cap_width = _cap(link.max_width, [p.max_width for p in partners])
            slow = link.speed is not None and cap_speed is not None and link.speed < cap_speed
            narrow = link.width is not None and cap_width is not None and link.width < cap_width
            subject = f"{label} ({addr})" if i == 0 else f"bridge {addr} above {label}"
            idle_gpu_link = is_gpu and i <= 1
            if narrow or (slow and not idle_gpu_link):
                what = " and ".join(
                    w
                    for w, bad in (
                        (f"x{link.width} of x{cap_width}", narrow),
                        (f"{link.speed:g} of {cap_speed:g} GT/s" if slow else "", slow),
                    )
                    if bad
                )
                out.append(
                    Finding(
                        CHECK,
                        "warn",
                        subject,
                        f"link trained at {what}",
                        link.evidence,
                        "reseat the card/cable or check the slot and BIOS PCIe settings; "
                        "compare with `lspci -vv` LnkCap/LnkSta",
                    )
                )
            elif slow:
                out.append(
                    ok(
                        CHECK,
                        subject,
                        f"link at {link.speed:g} of {cap_speed:g} GT/s: GPUs lower link speed "
                        "when idle; recheck under load",
                        *link.evidence,
                    )
                )
    if checked == 0:
        return [skipped(CHECK, "no PCIe link files (current_link_speed/width) or NVML link facts for these devices")]
    if not out:
        out.append(ok(CHECK, "node", f"{count(checked, 'PCIe link')} at full speed and width"))
    return out
