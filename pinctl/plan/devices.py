"""Which NICs and which storage each GPU (or CPU-only rank) uses, and why a nearer one was not.

Usable NICs are RDMA devices with an active port (or one whose state nobody
reports), filtered by link layer. GPUs get theirs from the exact balanced
assignment of :mod:`pinctl.plan.flow` over ``nvidia-smi topo -m`` levels;
CPU-only ranks, many and alike, take the nearest tier round-robin. The doctor's
NIC-balance check judges a node with this same assignment
(:func:`choose_gpu_nics`), so plan and diagnosis never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pinctl.cpuset import format_list
from pinctl.distance import bridges_between, level_between, level_order
from pinctl.model import Gpu, Nic, NicPort, Node, natural_key
from pinctl.plan.cores import Domain
from pinctl.plan.flow import assign, spread
from pinctl.plan.nicnotes import name_list, nic_notes, unknown_port_notes
from pinctl.planfile.uses import NicUse, StorageUse
from pinctl.words import count

# Link-layer classes: "ib" (InfiniBand, plus EFA and Slingshot, RDMA fabrics of their own),
# "eth" (RoCE) and "other" (unknown link layer on an unknown kind).
_FABRIC_KINDS = ("efa", "slingshot")


@dataclass(frozen=True)
class NicCandidate:
    """A usable RDMA NIC and the port a plan would use (None: the NIC reported no ports)."""

    nic: Nic
    port: NicPort | None


def port_class(nic: Nic, port: NicPort | None) -> str:
    """The link-layer class of a NIC port: ib, eth or other."""
    if nic.kind in _FABRIC_KINDS:
        return "ib"
    layer = (port.link_layer or "").lower() if port else ""
    if layer == "infiniband":
        return "ib"
    if layer == "ethernet":
        return "eth"
    return {"infiniband": "ib", "roce": "eth"}.get(nic.kind, "other")


def _port_choices(nic: Nic) -> list[tuple[NicPort | None, bool]]:
    """Usable ports, active ones first: (port, state_known). Down ports never appear."""
    if not nic.ports:
        return [(None, False)]
    active: list[tuple[NicPort | None, bool]] = [(p, True) for p in nic.ports if p.active]
    unknown: list[tuple[NicPort | None, bool]] = [(p, False) for p in nic.ports if p.state is None]
    return active + unknown


def usable_nics(nics: Sequence[Nic], link_layer: str) -> tuple[list[NicCandidate], list[str]]:
    """RDMA NICs with a usable port, filtered by *link_layer* (ib, eth, any); warnings alongside."""
    warnings: list[str] = []
    rdma = sorted((n for n in nics if n.rdma), key=lambda n: natural_key(n.name))

    def pick(allowed: tuple[str, ...]) -> list[tuple[NicCandidate, bool]]:
        out = []
        for nic in rdma:
            for port, known in _port_choices(nic):
                if port_class(nic, port) in allowed:
                    out.append((NicCandidate(nic, port), known))
                    break
        return out

    wanted = {"ib": ("ib",), "eth": ("eth",), "any": ("ib", "eth", "other")}[link_layer]
    chosen = pick(wanted)
    if not chosen and link_layer == "ib":
        chosen = pick(("ib", "eth", "other"))
        if chosen:
            warnings.append("no usable InfiniBand NIC: falling back to the other RDMA NICs (RoCE or unknown)")
    if not chosen and rdma:
        what = {"ib": "RDMA", "eth": "RoCE", "any": "RDMA"}[link_layer]
        warnings.append(f"no usable {what} NIC (every port down or filtered by --nic-link-layer): no NIC assigned")
    warnings.extend(unknown_port_notes([c.nic for c, known in chosen if not known]))
    return [c for c, _ in chosen], warnings


@dataclass(frozen=True)
class NicChoice:
    """The balanced NIC assignment for a set of GPUs: per GPU, the chosen candidates' indexes.

    ``levels[i][j]`` is the distance from GPU i to candidate j; ``chosen[i]`` is
    sorted nearest first. ``warnings`` say which NICs were not usable and why;
    ``short_rails`` maps a GPU index to the rails --local-rails left it.
    """

    candidates: tuple[NicCandidate, ...]
    levels: tuple[tuple[str, ...], ...]
    chosen: tuple[tuple[int, ...], ...]
    warnings: tuple[str, ...] = ()
    short_rails: tuple[tuple[int, int], ...] = ()


def choose_gpu_nics(
    node: Node, gpus: Sequence[Gpu], per_gpu: int = 1, link_layer: str = "ib", local_rails: bool = False
) -> NicChoice:
    """Each GPU's *per_gpu* usable NICs by the objective of pinctl.plan.flow (nearest, then spread).

    With *local_rails*, a rail after the first is dropped where it is SYS: it would
    carry the GPU's traffic across the CPU interconnect.
    """
    cands, warnings = usable_nics(node.nics, link_layer) if per_gpu > 0 else ([], [])
    levels = [[level_between(g.pci, c.nic.pci) for c in cands] for g in gpus]
    paths = [[bridges_between(g.pci, c.nic.pci) for c in cands] for g in gpus]
    chosen = assign(levels, per_gpu, paths) if cands else [[] for _ in gpus]
    short: list[tuple[int, int]] = []
    if local_rails:
        for i, gpu in enumerate(gpus):
            kept = chosen[i][:1] + [j for j in chosen[i][1:] if levels[i][j] != "SYS"]
            if len(kept) < len(chosen[i]):
                short.append((gpu.index, len(kept)))
            chosen[i] = kept
    return NicChoice(
        tuple(cands),
        tuple(tuple(row) for row in levels),
        tuple(tuple(c) for c in chosen),
        tuple(warnings),
        tuple(short),
    )


def assign_devices(
    node: Node,
    *,
    nics_per_gpu: int,
    link_layer: str,
    local_rails: bool = False,
    gpus: Sequence[Gpu],
    rank_domains: Sequence[Domain],
    warnings: list[str],
) -> tuple[dict[int, tuple[NicUse, ...]], dict[int, tuple[StorageUse, ...]], frozenset[int]]:
    """NICs and storage per consumer: per GPU (keyed by GPU index) or, without GPUs, per rank
    (keyed by rank index, *rank_domains* giving each rank's NUMA node); and the consumers whose
    EFA selector is withheld (:func:`_efa_withheld`)."""
    nic_map: dict[int, tuple[NicUse, ...]] = {}
    storage_map: dict[int, tuple[StorageUse, ...]] = {}
    disks = sorted(node.storage, key=lambda s: natural_key(s.name))
    if gpus:
        keys = [g.index for g in gpus]
        choice = choose_gpu_nics(node, gpus, nics_per_gpu, link_layer, local_rails)
        cands = list(choice.candidates)
        nic_levels = [list(row) for row in choice.levels]
        nic_chosen = [list(c) for c in choice.chosen]
        warnings.extend(choice.warnings)
        disk_levels = [[level_between(g.pci, d.pci) for d in disks] for g in gpus]
        disk_paths: list[list[int]] | None = [[bridges_between(g.pci, d.pci) for d in disks] for g in gpus]
    else:
        keys = list(range(len(rank_domains)))
        cands, w = usable_nics(node.nics, link_layer) if nics_per_gpu > 0 else ([], [])
        warnings.extend(w)
        nic_levels = [[_numa_level(dom, c.nic.numa_node) for c in cands] for dom in rank_domains]
        # CPU-only ranks (many, alike): round-robin per tier, linear where the flow would be quadratic.
        nic_chosen = spread(nic_levels, nics_per_gpu) if cands else []
        disk_levels = [[_numa_level(dom, d.numa_node) for d in disks] for dom in rank_domains]
        disk_paths = None
    if cands and nics_per_gpu > len(cands):
        warnings.append(f"--nics-per-gpu {nics_per_gpu} but only {count(len(cands), 'usable NIC')}")
    if cands:
        for key, levels, chosen in zip(keys, nic_levels, nic_chosen, strict=True):
            nic_map[key] = tuple(_nic_use(cands[j], levels[j]) for j in chosen)
        if gpus:
            names = frozenset(c.nic.name for c in cands)
            warnings.extend(nic_notes(node.nics, gpus, nic_map, names, dict(choice.short_rails), nics_per_gpu))
        warnings.extend(_unnamed_notes(nic_map))
    withheld = _efa_withheld(keys, cands, nic_levels, nic_chosen, warnings, "GPU" if gpus else "rank")
    if disks:
        # The NIC rule (pinctl.plan.flow): nearest level first, spread only among equally near disks.
        picked = assign(disk_levels, 1, disk_paths) if gpus else spread(disk_levels, 1)
        for key, levels, chosen in zip(keys, disk_levels, picked, strict=True):
            storage_map[key] = tuple(StorageUse(disks[j].name, _bus(disks[j].pci), levels[j]) for j in chosen)
        warnings.extend(_far_storage_notes(storage_map, "GPU" if gpus else "rank"))
    return nic_map, storage_map, withheld


def _far_storage_notes(storage_map: dict[int, tuple[StorageUse, ...]], what: str) -> list[str]:
    """Consumers whose nearest storage is across the CPU interconnect (SYS): every read crosses it."""
    far: dict[str, list[int]] = {}
    for key, uses in sorted(storage_map.items()):
        for u in uses:
            if u.distance == "SYS":
                far.setdefault(u.name, []).append(key)
    return [
        f"{what}{'s' if len(keys) > 1 else ''} {format_list(keys)}: storage {name}, the nearest there is, is SYS "
        "(across the CPU interconnect): every read crosses the socket link"
        for name, keys in far.items()
    ]


def _efa_withheld(
    keys: Sequence[int],
    cands: Sequence[NicCandidate],
    levels: Sequence[Sequence[str]],
    chosen: Sequence[Sequence[int]],
    warnings: list[str],
    what: str,
) -> frozenset[int]:
    """Consumers that would lose bandwidth to FI_EFA_IFACE: an EFA no one uses is as near as theirs.

    FI_EFA_IFACE hides every EFA it does not list. On AWS p5 each GPU has four EFAs under
    its switch; a plan naming one of them must not hide the other three, so the variable
    is left out there (libfabric keeps every EFA visible) and the plan says why.
    """
    if not cands:
        return frozenset()
    used = {j for row in chosen for j in row}
    idle = [j for j, c in enumerate(cands) if c.nic.kind == "efa" and j not in used]
    out: dict[int, int] = {}
    for key, row, mine in zip(keys, levels, chosen, strict=True):
        if mine and cands[mine[0]].nic.kind == "efa":
            near = [j for j in idle if level_order(row[j]) <= level_order(row[mine[0]])]
            if near:
                out[key] = len(near)
    if out:
        by_count: dict[int, list[int]] = {}
        for key, n in out.items():
            by_count.setdefault(n, []).append(key)
        for n, group in by_count.items():
            label = f"{what} {group[0]}" if len(group) == 1 else f"{what}s {format_list(group)}"
            warnings.append(
                f"{label}: {n} more EFA{'s' if n > 1 else ''} as near as the one{'s' if len(group) > 1 else ''} "
                f"planned and used by no rank, so FI_EFA_IFACE is not set (libfabric keeps every EFA "
                f"visible); --nics-per-gpu {len(chosen[0]) + n} names them"
            )
    return frozenset(out)


def _unnamed_notes(nic_map: dict[int, tuple[NicUse, ...]]) -> list[str]:
    """NICs pinctl had to name itself (rdm@ADDR): the variables that would name them are left out."""
    unnamed: dict[str, set[str]] = {}
    for uses in nic_map.values():
        for u in uses:
            if "@" in u.name and u.kind != "slingshot":  # Slingshot sets nothing anyway (fabric_notes)
                what = "FI_EFA_IFACE is" if u.kind == "efa" else "NCCL_IB_HCA and UCX_NET_DEVICES are"
                unnamed.setdefault(what, set()).add(u.name)
    return [
        f"{name_list(sorted(names, key=natural_key))}: the topology gives no device name, so {what} "
        f"not set for {'it' if len(names) == 1 else 'them'} (plan on the node itself to get the names)"
        for what, names in unnamed.items()
    ]


def _numa_level(dom: Domain, numa: int | None) -> str:
    return "NODE" if dom is not None and dom == numa else "SYS"


def _bus(pci: object) -> str | None:
    address = getattr(pci, "address", None)
    return str(address) if address is not None else None


def _nic_use(cand: NicCandidate, level: str) -> NicUse:
    port = cand.port
    netdev = port.netdev if port and port.netdev else (cand.nic.netdevs[0] if cand.nic.netdevs else None)
    return NicUse(cand.nic.name, port.number if port else None, netdev, _bus(cand.nic.pci), level, cand.nic.kind)
