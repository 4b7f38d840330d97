"""The choice of suppliers (NICs, disks) for consumers (GPUs): nearest first, then balanced. Pure.

The objective, in this order (docs/plan.md):

1. the nearest level (X, PIX, ... SYS) each consumer can have;
2. no supplier serves two consumers while one at the same or a nearer level serves none
   (a dead HCA then costs only the GPUs next to it, not half the node's bandwidth);
3. the shorter PCIe path (fewer bridges) among equals;
4. names, as people count them: GPU 0 gets the lowest-named supplier it can, then GPU 1.

It is solved exactly as a min-cost flow (successive shortest paths, Dijkstra with
potentials) in which each supplier's n-th consumer costs more than its (n-1)-th, so the
load is convex and spreads; the weights keep every criterion below the one before it.
Fast at 16 GPUs x 16 NICs.
"""

from __future__ import annotations

from collections.abc import Sequence

from pinctl.distance import level_order


def assign(
    levels: Sequence[Sequence[str]], per_consumer: int, paths: Sequence[Sequence[int]] | None = None
) -> list[list[int]]:
    """Choose *per_consumer* distinct suppliers for each consumer by the objective above.

    *levels[i][j]* is the distance level from consumer i to supplier j; *paths[i][j]*
    the number of PCIe bridges between them (None: all equal); suppliers are given in
    tie-break order (by name). Returns, per consumer, the chosen supplier indexes
    sorted by (distance, index).
    """
    g = len(levels)
    n = len(levels[0]) if g else 0
    k = min(per_consumer, n)
    if g == 0 or n == 0 or k <= 0:
        return [[] for _ in range(g)]
    units = k * g  # supplier-consumer pairs chosen in all
    base = k * n + 1
    weight = [base ** (g - 1 - i) for i in range(g)]
    names = base**g  # > any sum of name weights
    longest = max((max(row) for row in paths), default=0) if paths else 0
    bridges = names  # one bridge outweighs every name tie
    load = bridges * (units * (longest + 1) + 1)  # one unit of load outweighs every bridge
    level = load * (units * units + 1)  # one level step outweighs every load
    cost = [
        [level_order(levels[i][j]) * level + (paths[i][j] if paths else 0) * bridges + j * weight[i] for j in range(n)]
        for i in range(g)
    ]
    chosen = _min_cost_flow(cost, k, [u * load for u in range(g)])
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


def _min_cost_flow(cost: list[list[int]], demand: int, unit_costs: list[int]) -> list[list[int]]:
    """Successive shortest paths on source -> consumers -> suppliers -> sink (dense, small).

    Each supplier reaches the sink through one unit edge per consumer it may serve, the
    u-th costing *unit_costs[u]* (increasing: the load is convex, so the cheap ones fill first).
    """
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
        for unit in unit_costs:
            edge(1 + g + j, sink, 1, unit)

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
            break  # cannot happen: every supplier can take every consumer
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
