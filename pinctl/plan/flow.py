"""Balanced minimum-distance choice of suppliers (NICs, disks) for consumers (GPUs, ranks). Pure.

Nearest-first per GPU overloads one HCA when several GPUs tie on it (two GPUs
on a switch with one NIC, or every GPU at SYS on a VM). So this is solved as a
transportation problem: minimum total PCIe distance, each consumer taking K
distinct devices, each device serving at most ceil(K * consumers / devices).
It is a small min-cost flow (successive shortest paths, Dijkstra with
potentials): exact, and fast at 16 GPUs x 16 NICs. Ties are broken
deterministically: among all optimal assignments, GPU 0 gets the lowest-named
devices it can (natural order: mlx5_2 before mlx5_10), then GPU 1, and so on
(the tie costs are weighted so that they never outweigh a distance step).
"""

from __future__ import annotations

from collections.abc import Sequence

from pinctl.distance import level_order


def assign(levels: Sequence[Sequence[str]], per_consumer: int) -> list[list[int]]:
    """Choose *per_consumer* distinct suppliers for each consumer: minimum total distance, balanced.

    *levels[i][j]* is the distance level (X, PIX, ... SYS) from consumer i to
    supplier j; suppliers are given in tie-break order (by name). Each supplier
    serves at most ceil(per_consumer * consumers / suppliers). Returns, per
    consumer, the chosen supplier indexes sorted by (distance, index).
    """
    g = len(levels)
    n = len(levels[0]) if g else 0
    k = min(per_consumer, n)
    if g == 0 or n == 0 or k <= 0:
        return [[] for _ in range(g)]
    cap = -(-k * g // n)
    base = k * n + 1
    weight = [base ** (g - 1 - i) for i in range(g)]
    scale = base**g
    cost = [[level_order(levels[i][j]) * scale + j * weight[i] for j in range(n)] for i in range(g)]
    chosen = _min_cost_flow(cost, k, cap)
    return [sorted(row, key=lambda j: (level_order(levels[i][j]), j)) for i, row in enumerate(chosen)]


def spread(levels: Sequence[Sequence[str]], per_consumer: int) -> list[list[int]]:
    """Cheap balanced choice for many alike consumers (CPU-only ranks): nearest tier, round-robin.

    Consumers with the same nearest suppliers take them in turn, so N ranks on a
    NUMA node with two local NICs alternate between them; the rest fill up from
    the next nearest. Linear time where :func:`assign`'s flow would be quadratic.
    """
    turn: dict[tuple[int, ...], int] = {}
    out: list[list[int]] = []
    for row in levels:
        order = sorted(range(len(row)), key=lambda j: (level_order(row[j]), j))
        k = min(per_consumer, len(order))
        if k <= 0:
            out.append([])
            continue
        best = level_order(row[order[0]])
        tier = tuple(j for j in order if level_order(row[j]) == best)
        start = turn.get(tier, 0)
        turn[tier] = start + k
        rotated = [tier[(start + x) % len(tier)] for x in range(len(tier))]
        picked = (rotated + [j for j in order if j not in tier])[:k]
        out.append(sorted(picked, key=lambda j: (level_order(row[j]), j)))
    return out


def _min_cost_flow(cost: list[list[int]], demand: int, cap: int) -> list[list[int]]:
    """Successive shortest paths on source -> consumers -> suppliers -> sink (dense, small)."""
    g, n = len(cost), len(cost[0])
    size = g + n + 2
    src, sink = 0, g + n + 1
    # Residual graph as adjacency lists of edge ids; edge arrays hold to, capacity, cost.
    to: list[int] = []
    capa: list[int] = []
    ecost: list[int] = []
    adj: list[list[int]] = [[] for _ in range(size)]

    def edge(u: int, v: int, c: int, w: int) -> None:
        adj[u].append(len(to))
        to.append(v)
        capa.append(c)
        ecost.append(w)
        adj[v].append(len(to))
        to.append(u)
        capa.append(0)
        ecost.append(-w)

    for i in range(g):
        edge(src, 1 + i, demand, 0)
    pair_edge: dict[tuple[int, int], int] = {}
    for i in range(g):
        for j in range(n):
            pair_edge[(i, j)] = len(to)
            edge(1 + i, 1 + g + j, 1, cost[i][j])
    for j in range(n):
        edge(1 + g + j, sink, cap, 0)

    potential = [0] * size
    for _ in range(g * demand):
        dist: list[int | None] = [None] * size
        prev_edge = [-1] * size
        dist[src] = 0
        done = [False] * size
        while True:
            u, best = -1, None
            for v in range(size):
                dv = dist[v]
                if not done[v] and dv is not None and (best is None or dv < best):
                    u, best = v, dv
            if u < 0 or best is None:
                break
            done[u] = True
            for e in adj[u]:
                if capa[e] <= 0:
                    continue
                v = to[e]
                nd = best + ecost[e] + potential[u] - potential[v]
                dv = dist[v]
                if dv is None or nd < dv:
                    dist[v] = nd
                    prev_edge[v] = e
        d_sink = dist[sink]
        if d_sink is None:
            break  # cannot happen with cap * suppliers >= demand * consumers
        for v in range(size):
            dv = dist[v]
            if dv is not None:
                potential[v] += dv
        v = sink
        while v != src:
            e = prev_edge[v]
            capa[e] -= 1
            capa[e ^ 1] += 1
            v = to[e ^ 1]
    return [[j for j in range(n) if capa[pair_edge[(i, j)]] == 0] for i in range(g)]
