"""CPU placement: which cores each rank gets (pure; the planner's CPU half).

Cores are ordered by topology (package, NUMA node, L3 group, first PU), never by
CPU number, so socket-interleaved numbering (0,2,4... on socket 0) splits the
same way as contiguous numbering. A rank's CPUs always lie in one CPU NUMA
domain; ranks sharing a domain get contiguous runs of that order whose sizes
differ by at most one core, chosen so that as few ranks as possible straddle
an L3 group (a small dynamic programme over run boundaries).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pinctl.model import Node

# A NUMA domain id; None only for a node whose source had no NUMA objects at all.
Domain = int | None


@dataclass(frozen=True)
class CoreSlot:
    """One physical core as the planner sees it.

    ``index`` is the core's position in the node's topology order over all cores
    (hwloc's logical core index, which Slurm's gres.conf ``Cores=`` uses);
    ``usable`` its PUs a rank may run on (allowed, not reserved), sorted.
    """

    index: int
    pus: tuple[int, ...]
    usable: tuple[int, ...]
    package: int | None
    numa: int | None
    l3: int | None


def _lookup(cpus_of: Iterable[tuple[int, frozenset[int]]], pu: int) -> int | None:
    for key, cpus in cpus_of:
        if pu in cpus:
            return key
    return None


def ordered_cores(node: Node) -> list[CoreSlot]:
    """All cores in topology order, with package/NUMA/L3 filled from the node where missing."""
    pkgs = [(p.os_index, p.cpus) for p in node.packages]
    numas = [(n.os_index, n.cpus) for n in node.numa_nodes if n.cpus]
    l3s = [(g.index, g.cpus) for g in node.l3_groups]
    numa_pkg = {n.os_index: n.package for n in node.numa_nodes}
    raw = []
    for core in node.cores:
        if not core.pus:
            continue
        pus = tuple(sorted(core.pus))
        numa = core.numa_node if core.numa_node is not None else _lookup(numas, pus[0])
        pkg = core.package if core.package is not None else _lookup(pkgs, pus[0])
        if pkg is None and numa is not None:
            pkg = numa_pkg.get(numa)
        l3 = core.l3 if core.l3 is not None else _lookup(l3s, pus[0])
        raw.append((pus, pkg, numa, l3))

    def key(item: tuple[tuple[int, ...], int | None, int | None, int | None]) -> tuple[int, ...]:
        pus, pkg, numa, l3 = item
        return (-1 if pkg is None else pkg, 1 << 20 if numa is None else numa, -1 if l3 is None else l3, pus[0])

    raw.sort(key=key)
    return [CoreSlot(i, pus, (), pkg, numa, l3) for i, (pus, pkg, numa, l3) in enumerate(raw)]


def reserved_per_numa(cores: Sequence[CoreSlot], allowed: frozenset[int], per_numa: int) -> frozenset[int]:
    """The PUs of the first *per_numa* cores (lowest-numbered, with an allowed PU) of each NUMA node."""
    if per_numa <= 0:
        return frozenset()
    by_numa: dict[Domain, list[CoreSlot]] = {}
    for c in cores:
        if allowed.intersection(c.pus):
            by_numa.setdefault(c.numa, []).append(c)
    out: set[int] = set()
    for members in by_numa.values():
        for c in sorted(members, key=lambda c: c.pus[0])[:per_numa]:
            out.update(c.pus)
    return frozenset(out)


def reserved_per_range(cores: Sequence[CoreSlot], allowed: frozenset[int], per_numa: int) -> frozenset[int]:
    """SMT unknown: the first *per_numa* allowed CPUs of each contiguous CPU range of each NUMA node.

    Siblings numbered n and n+N then lose whole cores (CPU 0 and CPU N together), as
    --reserve-per-numa means; reserving only the lowest CPUs would split them.
    """
    if per_numa <= 0:
        return frozenset()
    by_numa: dict[Domain, list[int]] = {}
    for c in cores:
        by_numa.setdefault(c.numa, []).extend(p for p in c.pus if p in allowed)
    out: set[int] = set()
    for cpus in by_numa.values():
        run: list[int] = []
        for cpu in [*sorted(cpus), -2]:
            if run and cpu != run[-1] + 1:
                out.update(run[:per_numa])
                run = []
            run.append(cpu)
    return frozenset(out)


def usable_cores(cores: Sequence[CoreSlot], usable: frozenset[int], smt: str) -> list[CoreSlot]:
    """Cores with at least one usable PU; with ``one-per-core`` only the lowest usable PU is kept."""
    out = []
    for c in cores:
        pus = tuple(p for p in c.pus if p in usable)
        if not pus:
            continue
        if smt == "one-per-core":
            pus = pus[:1]
        out.append(CoreSlot(c.index, c.pus, pus, c.package, c.numa, c.l3))
    return out


def split_even(total: int, weights: Sequence[int]) -> list[int]:
    """Split *total* proportionally to *weights* (largest remainder; ties to the earlier one).

    Never gives a part more than its weight when ``total <= sum(weights)``.
    """
    s = sum(weights)
    if s == 0:
        return [0] * len(weights)
    base = [total * w // s for w in weights]
    rema = [(total * w % s, -i) for i, w in enumerate(weights)]
    left = total - sum(base)
    for _, neg_i in sorted(rema, reverse=True)[:left]:
        base[-neg_i] += 1
    return base


def split_domain(cores: Sequence[CoreSlot], k: int) -> list[list[CoreSlot]]:
    """Split a domain's cores (topology order) into *k* contiguous balanced runs.

    Sizes are ``q`` or ``q+1`` (q = len // k). Among all such splits the one with
    the fewest ranks straddling an L3 group is taken (a run may cover one group's
    part or whole groups); on ties, larger runs come first.
    """
    n = len(cores)
    if k <= 0:
        return []
    q, r = divmod(n, k)
    groups = [c.l3 for c in cores]
    boundary = [p == 0 or p == n or groups[p] != groups[p - 1] for p in range(n + 1)]
    run_id = [0] * n  # which maximal same-L3 run each position is in
    for p in range(1, n):
        run_id[p] = run_id[p - 1] + (1 if boundary[p] else 0)

    def cost(a: int, b: int) -> int:
        if b <= a or run_id[a] == run_id[b - 1]:
            return 0
        return 0 if boundary[a] and boundary[b] else 1

    inf = 1 << 30
    # f[t][e]: least straddles to finish when t runs are placed, e of them of size q+1.
    f = [[inf] * (r + 1) for _ in range(k + 1)]
    f[k][r] = 0
    for t in range(k - 1, -1, -1):
        for e in range(min(t, r) + 1):
            p = t * q + e
            best = inf
            if e < r:
                best = min(best, cost(p, p + q + 1) + f[t + 1][e + 1])
            best = min(best, cost(p, p + q) + f[t + 1][e])
            f[t][e] = best
    runs: list[list[CoreSlot]] = []
    e = 0
    for t in range(k):
        p = t * q + e
        if e < r and cost(p, p + q + 1) + f[t + 1][e + 1] == f[t][e]:
            runs.append(list(cores[p : p + q + 1]))
            e += 1
        else:
            runs.append(list(cores[p : p + q]))
    return runs


def split_ranges(cores: Sequence[CoreSlot], k: int) -> list[list[CoreSlot]] | None:
    """Split a domain's CPUs among *k* ranks when SMT siblings are unknown (one CPU per slot).

    Each maximal range of consecutive usable CPU numbers is split evenly, leftover CPUs
    to the first ranks, and rank i takes the i-th piece of every range. Ranges of one
    length are split alike, so where siblings are numbered n and n+N (Linux on x86, and
    AWS's and Azure's files) a rank's share of one range has its siblings in the other,
    and no core is split even when the counts do not divide; where they are 2n and
    2n+1, pieces of even length keep pairs whole. A rank may then hold up to one CPU
    per range more than another: one core, under n and n+N. When some rank would get
    nothing that way (ranges shorter than the rank count), leftovers go round the ranks
    instead; None when even that leaves a rank empty.
    """
    if k <= 0:
        return []
    ordered = sorted(cores, key=lambda c: c.usable[0])
    ranges: list[list[CoreSlot]] = []
    for c in ordered:
        if ranges and ranges[-1][-1].usable[-1] + 1 == c.usable[0]:
            ranges[-1].append(c)
        else:
            ranges.append([c])
    for rotate in (False, True):  # ranges shorter than the rank count: leftovers go round instead
        runs: list[list[CoreSlot]] = [[] for _ in range(k)]
        turn = 0
        for rng in ranges:
            q, extra = divmod(len(rng), k)
            start = 0
            for i in range(k):
                n = q + (1 if (i - turn) % k < extra else 0)
                runs[i].extend(rng[start : start + n])
                start += n
            turn = (turn + extra) % k if rotate else 0
        if all(runs):
            return runs
    return None
