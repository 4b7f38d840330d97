"""The rest of the node: helper CPUs for each rank's data loaders, and the CPU classes. Pure.

Helpers (--helpers) come from the idle cores: each rank in turn takes the nearest idle
core left (its GPU's NUMA node first, then by NUMA distance, whole idle cores before a
rank core's spare siblings, then topology order), so the idle cores are shared out
evenly (counts differ by at most one) and every rank's helpers lie as near its GPU as
the others' turns allow. They never touch a rank's CPUs or housekeeping.
"""

from __future__ import annotations

from collections.abc import Sequence

from pinctl.cpuset import format_list
from pinctl.model import Node, natural_key
from pinctl.plan.cores import CoreSlot, Domain
from pinctl.planfile.cpuclasses import CpuClasses


def numa_gap(node: Node, a: Domain, b: Domain) -> int:
    """How far NUMA node *b* is from *a*: the SLIT distance, else 10 local, 20 same package, 30 other."""
    if a is None or b is None:
        return 10 if a == b else 30
    d = node.distance(a, b)
    if d is not None:
        return d
    if a == b:
        return 10
    pa, pb = node.numa(a), node.numa(b)
    same = pa is not None and pb is not None and pa.package is not None and pa.package == pb.package
    return 20 if same else 30


def helper_sets(
    node: Node,
    cores: Sequence[CoreSlot],
    idle: frozenset[int],
    rank_cpus: frozenset[int],
    anchors: Sequence[Domain],
) -> list[frozenset[int]]:
    """Each rank's helper CPUs: the idle cores shared out, nearest to the rank's *anchors* NUMA node first."""
    slots = [(c, tuple(p for p in c.pus if p in idle)) for c in cores]
    slots = [(c, pus) for c, pus in slots if pus]
    if not anchors or not slots:
        return [frozenset() for _ in anchors]
    orders: dict[Domain, list[int]] = {}
    for anchor in dict.fromkeys(anchors):
        orders[anchor] = sorted(
            range(len(slots)),
            key=lambda k: (
                numa_gap(node, anchor, slots[k][0].numa),
                bool(rank_cpus.intersection(slots[k][0].pus)),
                slots[k][0].index,
            ),
        )
    taken = [False] * len(slots)
    cursor = [0] * len(anchors)
    picks: list[list[int]] = [[] for _ in anchors]
    left = len(slots)
    while left:
        for i, anchor in enumerate(anchors):
            order = orders[anchor]
            while cursor[i] < len(order) and taken[order[cursor[i]]]:
                cursor[i] += 1
            if cursor[i] == len(order):
                continue
            k = order[cursor[i]]
            taken[k] = True
            left -= 1
            picks[i].append(k)
            if not left:
                break
    # The turns decide how many cores each rank takes from each NUMA node; within a node the
    # ranks then take contiguous runs in topology order (shared L3, tidy lists), counts kept.
    by_numa: dict[Domain, list[tuple[int, int]]] = {}
    for i, row in enumerate(picks):
        for k in row:
            by_numa.setdefault(slots[k][0].numa, []).append((i, k))
    out: list[set[int]] = [set() for _ in anchors]
    for pairs in by_numa.values():
        owners = sorted(i for i, _ in pairs)
        for i, k in zip(owners, sorted(k for _, k in pairs), strict=True):
            out[i].update(slots[k][1])
    return [frozenset(s) for s in out]


def cpu_classes(node: Node, cores: Sequence[CoreSlot], reserved: frozenset[int], used: frozenset[int]) -> CpuClasses:
    """The node's CPUs no rank or helper uses (*used*), by class; see :class:`CpuClasses`."""
    allowed = node.allowed_cpus & node.cpus
    housekeeping = (reserved & allowed) - used
    threads = max((len(c.pus) for c in cores), default=1) if node.smt_known else None
    return CpuClasses(
        housekeeping=housekeeping,
        idle=allowed - housekeeping - used,
        not_allowed=node.cpus - allowed,
        housekeeping_cores=tuple(c.index for c in cores if housekeeping.intersection(c.pus)),
        threads_per_core=threads,
    )


def idle_note(node: Node, cores: Sequence[CoreSlot], classes: CpuClasses, rank_cpus: frozenset[int]) -> str | None:
    """A note naming whole cores no rank uses, per NUMA node (a rank core's spare siblings are not news)."""
    spare = [c for c in cores if classes.idle.issuperset(c.pus) and not rank_cpus.intersection(c.pus)]
    if not spare:
        return None
    by_numa: dict[Domain, list[int]] = {}
    for c in spare:
        by_numa.setdefault(c.numa, []).extend(c.pus)
    parts = []
    for numa, cpus in sorted(by_numa.items(), key=lambda kv: -1 if kv[0] is None else kv[0]):
        n = None if numa is None else node.numa(numa)
        whole = n is not None and (n.cpus & node.allowed_cpus) <= set(cpus)
        where = "" if numa is None else f" ({'all of ' if whole else ''}NUMA node {numa})"
        parts.append(format_list(cpus) + where)
    what = "core" if len(spare) == 1 else "cores"
    return (
        f"{len(spare)} {what} used by no rank: CPUs {', '.join(parts)}; --helpers gives them to the ranks' data loaders"
    )


def housekeeping_note(node: Node, classes: CpuClasses) -> str | None:
    """NUMA nodes holding devices but no housekeeping CPU: their IRQs would go to another node's."""
    if not classes.housekeeping:
        return None
    devices: dict[int, list[str]] = {}
    # in a fixed order (GPU index, then names as people count them), whatever the source's order
    named = [(f"GPU {g.index}", g.numa_node) for g in sorted(node.gpus, key=lambda g: g.index)]
    named += [(n.name, n.numa_node) for n in sorted(node.nics, key=lambda n: natural_key(n.name)) if n.rdma]
    named += [(s.name, s.numa_node) for s in sorted(node.storage, key=lambda s: natural_key(s.name))]
    for name, numa in named:
        if numa is not None:
            devices.setdefault(numa, []).append(name)
    bare = [
        (numa, names)
        for numa, names in sorted(devices.items())
        if (n := node.numa(numa)) is not None and n.cpus and not n.cpus & classes.housekeeping
    ]
    if not bare:
        return None
    where = "; ".join(f"NUMA node {numa} ({', '.join(names)})" for numa, names in bare)
    return (
        f"no housekeeping CPU on {where}: irqbalance would serve those devices' IRQs across the CPU "
        "interconnect (--reserve-per-numa reserves on every node)"
    )
