"""Property tests: the planner's placement rules hold on random valid nodes (tests/strategies.py)."""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from nic_rule import gpu_nics, objective_problems
from nodes import build_node
from strategies import layouts, nodes

from pinctl.cpuset import parse_list
from pinctl.distance import level_order as level_rank
from pinctl.errors import UsageError
from pinctl.model import Node
from pinctl.plan.flow import assign
from pinctl.plan.make import make_plan
from pinctl.plan.request import PlanRequest
from pinctl.planfile.allowlist import WRITTEN, env_key_allowed
from pinctl.planfile.types import Plan
from pinctl.render.export import plan_to_json

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "pinctl" / "schemas" / "plan-v2.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def requests(draw: st.DrawFn, node: Node) -> PlanRequest:
    cpus = sorted(node.cpus)
    reserve = frozenset(draw(st.sets(st.sampled_from(cpus), max_size=3))) if draw(st.booleans()) else frozenset()
    return PlanRequest(
        procs_per_gpu=draw(st.integers(1, 3)),
        reserve=reserve,
        reserve_per_numa=draw(st.integers(0, 1)),
        smt=draw(st.sampled_from(["all", "one-per-core"])),
        mem_policy=draw(st.sampled_from(["bind", "preferred", "interleave", "local", "none"])),
        nic_link_layer=draw(st.sampled_from(["ib", "eth", "any"])),
        nics_per_gpu=draw(st.integers(0, 2)),
        local_rails=draw(st.booleans()),
        isolate_gpus=draw(st.booleans()),
        helpers=draw(st.booleans()),
    )


@st.composite
def planned(draw: st.DrawFn) -> tuple[Node, PlanRequest, Plan]:
    node = draw(nodes())
    request = draw(requests(node))
    try:
        plan = make_plan(node, request)
    except UsageError as exc:
        # the only refusals for a valid request: too many ranks, or one thread per core without SMT facts
        assert "usable core" in str(exc) or (not node.smt_known and request.smt == "one-per-core"), exc
        assume(False)
        raise
    return node, request, plan


def reserved_cpus(node: Node, request: PlanRequest) -> set[int]:
    """Independent statement of the reservation rule: --reserve plus the N lowest-numbered cores per node."""
    out = set(request.reserve)
    by_numa: dict[int | None, list[tuple[int, ...]]] = defaultdict(list)
    for core in node.cores:
        if node.allowed_cpus.intersection(core.pus):
            by_numa[core.numa_node].append(core.pus)
    if not node.smt_known:  # siblings unknown: the first N allowed CPUs of each run of consecutive CPUs
        for pus_list in by_numa.values():
            allowed = sorted(p for pus in pus_list for p in pus if p in node.allowed_cpus)
            for i, cpu in enumerate(allowed):
                start = i
                while start > 0 and allowed[start - 1] == allowed[start] - 1:
                    start -= 1
                if i - start < request.reserve_per_numa:
                    out.add(cpu)
        return out
    for pus_list in by_numa.values():
        for pus in sorted(pus_list, key=min)[: request.reserve_per_numa]:
            out.update(pus)
    return out


def usable_pus(node: Node, request: PlanRequest) -> set[int]:
    return set(node.allowed_cpus) - reserved_cpus(node, request)


def core_of(node: Node) -> dict[int, tuple[int, ...]]:
    return {pu: core.pus for core in node.cores for pu in core.pus}


def usable_cores_by_numa(node: Node, request: PlanRequest) -> dict[int | None, int]:
    usable = usable_pus(node, request)
    out: Counter[int | None] = Counter()
    for core in node.cores:
        if usable.intersection(core.pus):
            out[core.numa_node] += 1
    return dict(out)


@FAST
@given(planned())
def test_cpu_sets_disjoint_nonempty_and_allowed(case: tuple[Node, PlanRequest, Plan]) -> None:
    node, request, plan = case
    usable = usable_pus(node, request)
    seen: set[int] = set()
    for r in plan.ranks:
        assert r.cpus, f"rank {r.local_rank} has no CPUs"
        assert set(r.cpus) <= usable
        assert not seen & set(r.cpus), f"rank {r.local_rank} overlaps an earlier rank"
        seen |= set(r.cpus)


@FAST
@given(planned())
def test_whole_cores_and_smt_mode(case: tuple[Node, PlanRequest, Plan]) -> None:
    node, request, plan = case
    usable = usable_pus(node, request)
    cores = core_of(node)
    for r in plan.ranks:
        touched = {cores[pu] for pu in r.cpus}
        assert len(touched) == len(r.cores) == int(dict(r.env)["OMP_NUM_THREADS"])
        for pus in touched:
            mine = [p for p in pus if p in r.cpus]
            avail = [p for p in pus if p in usable]
            if request.smt == "all":
                assert mine == avail, f"rank {r.local_rank} has part of core {pus}"
            else:
                assert mine == avail[:1], f"rank {r.local_rank} must hold only the lowest PU of {pus}"


@FAST
@given(planned())
def test_rank_cpus_in_one_cpu_numa_node(case: tuple[Node, PlanRequest, Plan]) -> None:
    node, _, plan = case
    for r in plan.ranks:
        assert r.numa_node is not None
        numa = node.numa(r.numa_node)
        assert numa is not None and not numa.cpuless, "a CPU-less node is never a CPU domain"
        assert set(r.cpus) <= numa.cpus
        for m in r.mems:
            mem_node = node.numa(m)
            assert mem_node is not None and not mem_node.cpuless


@FAST
@given(planned())
def test_local_numa_whenever_room(case: tuple[Node, PlanRequest, Plan]) -> None:
    """Each node hosts as many of its own GPUs' ranks as it has usable cores (all of them if room)."""
    node, request, plan = case
    capacity = usable_cores_by_numa(node, request)
    wanted: Counter[int] = Counter()
    local: Counter[int] = Counter()
    for r in plan.ranks:
        assert r.gpu is not None
        home = next(g for g in node.gpus if g.index == r.gpu.index).numa_node
        if home is None or capacity.get(home, 0) == 0:
            continue
        wanted[home] += 1
        local[home] += r.numa_node == home
    for home, n in wanted.items():
        assert local[home] == min(n, capacity[home]), f"node {home}: {local[home]} of {n} ranks local"
    for home, n in wanted.items():
        if capacity[home] < n:  # the warning names the node and every rank that left it
            (line,) = [w for w in plan.warnings if w.startswith(f"NUMA node {home} is full")]
            left = {r.local_rank for r in plan.ranks if r.gpu is not None and r.numa_node != home
                    and next(g for g in node.gpus if g.index == r.gpu.index).numa_node == home}  # fmt: skip
            named = set()
            for part in line.split(": ", 1)[1].split(", the nearest")[0].split(", "):
                named |= set(parse_list(part.split(" ")[1]))
            assert left <= named


@FAST
@given(planned())
def test_spilled_ranks_no_wider_than_home(case: tuple[Node, PlanRequest, Plan]) -> None:
    """A GPU's rank moved off its node (the node full) gets no more cores than its siblings at home."""
    _, request, plan = case
    if request.procs_per_gpu < 2:
        return
    by_gpu: dict[int, list[int]] = defaultdict(list)
    for r in plan.ranks:
        assert r.gpu is not None
        by_gpu[r.gpu.index].append(r.local_rank)
    for members in by_gpu.values():
        ranks = [plan.ranks[i] for i in members]
        home = ranks[0].numa_node
        widest = max(len(r.cores) for r in ranks if r.numa_node == home)
        assert all(len(r.cores) <= widest for r in ranks if r.numa_node != home)


@FAST
@given(planned())
def test_balanced_within_a_node(case: tuple[Node, PlanRequest, Plan]) -> None:
    node, _, plan = case
    if not node.smt_known:
        return  # CPUs, not cores: test_unknown_smt_even_share_of_every_range
    sizes: dict[int | None, list[int]] = defaultdict(list)
    for r in plan.ranks:
        sizes[r.numa_node].append(len(r.cores))
    for node_sizes in sizes.values():
        assert max(node_sizes) - min(node_sizes) <= 1


@FAST
@given(planned())
def test_unknown_smt_even_share_of_every_range(case: tuple[Node, PlanRequest, Plan]) -> None:
    """Siblings unknown (NCCL files): every contiguous CPU range of a node is shared out evenly, so
    whichever CPUs are siblings (n and n+N, or 2n and 2n+1) no two ranks split a core."""
    node, _, plan = case
    if node.smt_known:
        assert not any("SMT siblings are unknown" in w for w in plan.warnings)
        return
    assert sum("SMT siblings are unknown" in w for w in plan.warnings) == 1
    by_node: dict[int | None, list[frozenset[int]]] = defaultdict(list)
    for r in plan.ranks:
        by_node[r.numa_node].append(r.cpus)
    for sets in by_node.values():
        cpus = sorted(set().union(*sets))
        ranges = [[cpus[0]]]
        for c in cpus[1:]:
            if c == ranges[-1][-1] + 1:
                ranges[-1].append(c)
            else:
                ranges.append([c])
        by_length: dict[int, list[int]] = {}
        if len(cpus) < len(sets):
            continue  # more ranks than CPUs here: not split this way (the plan refuses or moves ranks)
        for rng in ranges:
            shares = [len(s & set(rng)) for s in sets]
            assert max(shares) - min(shares) <= 1, (rng, shares)
            # ranges of one length are split alike, so siblings n and n+N stay in one rank
            # (unless some range is shorter than the rank count: every rank must get a CPU somewhere)
            if all(len(r) >= len(sets) for r in ranges):
                assert by_length.setdefault(len(rng), shares) == shares
            if len(rng) % len(sets) == 0:  # divides evenly: equal pieces, each a contiguous run
                assert len(set(shares)) == 1
                for s in sets:
                    mine = sorted(s & set(rng))
                    assert mine == list(range(mine[0], mine[0] + len(mine))) if mine else True


@FAST
@given(planned())
def test_no_l3_straddle_when_counts_allow(case: tuple[Node, PlanRequest, Plan]) -> None:
    node, request, plan = case
    usable = usable_pus(node, request)
    core_l3 = {core.pus: core.l3 for core in node.cores}
    cores = core_of(node)
    per_l3: dict[int | None, Counter[int | None]] = defaultdict(Counter)
    for core in node.cores:
        if usable.intersection(core.pus):
            per_l3[core.numa_node][core.l3] += 1
    by_numa: dict[int | None, list[set[int | None]]] = defaultdict(list)
    for r in plan.ranks:
        by_numa[r.numa_node].append({core_l3[cores[pu]] for pu in r.cpus})
    for numa, groups_of_ranks in by_numa.items():
        counts = per_l3[numa]
        k, g = len(groups_of_ranks), len(counts)
        if len(set(counts.values())) != 1 or not (g % k == 0 or k % g == 0):
            continue
        for rank_groups in groups_of_ranks:
            if len(rank_groups) > 1:
                # a rank over several groups must hold them whole
                held = sum(counts[x] for x in rank_groups)
                assert held == (g // k) * next(iter(counts.values()))


@FAST
@given(planned())
def test_never_a_down_port_and_nic_distinct(case: tuple[Node, PlanRequest, Plan]) -> None:
    node, request, plan = case
    by_name = {n.name: n for n in node.nics}
    for r in plan.ranks:
        names = [n.name for n in r.nics]
        assert len(names) == len(set(names))
        assert len(names) <= request.nics_per_gpu
        for use in r.nics:
            nic = by_name[use.name]
            assert nic.rdma
            if use.port is not None:
                port = next(p for p in nic.ports if p.number == use.port)
                assert port.active or port.state is None, f"{use.name} port {use.port} is {port.state}"
            else:
                assert not nic.ports
        hca = dict(r.env).get("NCCL_IB_HCA")
        if hca is not None:
            assert hca.startswith("=")
        if request.local_rails:  # an extra rail never crosses the CPU interconnect
            assert all(use.distance != "SYS" for use in r.nics[1:])
        elif r.nics and r.nics[0].distance != "SYS" and any(u.distance == "SYS" for u in r.nics[1:]):
            assert r.gpu is not None
            named = [w for w in plan.warnings if w.startswith("extra rails at SYS")]
            assert len(named) == 1 and f"GPU {r.gpu.index}: " in named[0]


def usable_rdma(node: Node) -> list[str]:
    out = []
    for nic in node.nics:
        if nic.rdma and (not nic.ports or any(p.active or p.state is None for p in nic.ports)):
            out.append(nic.name)
    return out


@FAST
@given(nodes(), st.integers(1, 2), st.integers(1, 2))
def test_nics_nearest_first_then_balanced(node: Node, k: int, procs: int) -> None:
    try:
        plan = make_plan(node, PlanRequest(nic_link_layer="any", nics_per_gpu=k, procs_per_gpu=procs))
    except UsageError:
        assume(False)
        raise
    cands = usable_rdma(node)
    chosen = gpu_nics(plan)  # also: the ranks of one GPU share its NICs
    if not cands:
        assert all(not v for v in chosen.values())
        return
    assert all(len(v) == min(k, len(cands)) for v in chosen.values())
    assert objective_problems(node, plan) == []


LEVELS = ["PIX", "PXB", "PHB", "NODE", "SYS"]


def objective(levels: list[list[str]], paths: list[list[int]], choice: list[list[int]]) -> tuple[int, int, int]:
    """(total distance, load cost, bridges): the lexicographic objective, names aside."""
    load = Counter(j for row in choice for j in row)
    return (
        sum(level_rank(levels[i][j]) for i, row in enumerate(choice) for j in row),
        sum(c * (c - 1) // 2 for c in load.values()),  # the u-th consumer of a supplier costs u
        sum(paths[i][j] for i, row in enumerate(choice) for j in row),
    )


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 2), st.data())
def test_assignment_is_optimal(g: int, n: int, k: int, data: st.DataObject) -> None:
    k = min(k, n)
    levels = [[data.draw(st.sampled_from(LEVELS)) for _ in range(n)] for _ in range(g)]
    paths = [[data.draw(st.integers(0, 4)) for _ in range(n)] for _ in range(g)]
    chosen = assign(levels, k, paths)
    assert all(len(row) == k == len(set(row)) for row in chosen)
    best = min(objective(levels, paths, [list(c) for c in choice])
               for choice in itertools.product(itertools.combinations(range(n), k), repeat=g))  # fmt: skip
    assert objective(levels, paths, chosen) == best


@FAST
@given(planned())
def test_deterministic_and_schema_valid(case: tuple[Node, PlanRequest, Plan]) -> None:
    node, request, plan = case
    text = plan_to_json(plan)
    assert plan_to_json(make_plan(node, request)) == text
    obj = json.loads(text)
    VALIDATOR.validate(obj)
    assert Plan.from_dict(obj) == plan  # launch/pin's validator accepts what the planner writes, unchanged
    assert text == json.dumps(plan.to_dict(), indent=2, sort_keys=True) + "\n"


@FAST
@given(planned())
def test_independent_of_input_order(case: tuple[Node, PlanRequest, Plan]) -> None:
    """Cores, NUMA nodes and NICs listed in another order give the same plan (topology order, not input)."""
    node, request, plan = case
    from dataclasses import replace

    shuffled = replace(
        node,
        cores=tuple(reversed(node.cores)),
        numa_nodes=tuple(reversed(node.numa_nodes)),
        nics=tuple(reversed(node.nics)),
        storage=tuple(reversed(node.storage)),
        l3_groups=tuple(reversed(node.l3_groups)),
    )
    assert plan_to_json(make_plan(shuffled, request)) == plan_to_json(plan)


@FAST
@given(planned())
def test_memory_policy(case: tuple[Node, PlanRequest, Plan]) -> None:
    node, request, plan = case
    for r in plan.ranks:
        assert r.mem_policy == request.mem_policy
        if request.mem_policy in ("bind", "preferred"):
            assert r.mems == {r.numa_node}
        elif request.mem_policy == "interleave":
            assert r.numa_node in r.mems
            pkgs = {node.numa(m).package for m in r.mems}  # type: ignore[union-attr]
            assert len(pkgs) == 1
        else:
            assert r.mems == frozenset()


@FAST
@given(planned())
def test_env_keys_and_isolation(case: tuple[Node, PlanRequest, Plan]) -> None:
    _, request, plan = case
    for r in plan.ranks:
        env = dict(r.env)
        assert env["LOCAL_RANK"] == str(r.local_rank)
        assert env["OMP_PLACES"] == "cores" and env["OMP_PROC_BIND"] == "close"
        for key in env:
            assert key in WRITTEN and env_key_allowed(key), key
        vendor = r.gpu.vendor if r.gpu else None
        # each vendor's own selector, never a CUDA variable for a non-NVIDIA GPU
        assert ("CUDA_VISIBLE_DEVICES" in env) == (request.isolate_gpus and vendor == "nvidia")
        assert ("ZE_AFFINITY_MASK" in env) == (request.isolate_gpus and vendor == "intel")
        if request.isolate_gpus and vendor == "amd":
            assert r.gpu is not None
            want = f"GPU-{int(r.gpu.uuid, 16):016X}" if r.gpu.uuid else str(r.gpu.index)  # rsmiN = index here
            assert env["ROCR_VISIBLE_DEVICES"] == want
        else:
            assert "ROCR_VISIBLE_DEVICES" not in env
        if "CUDA_VISIBLE_DEVICES" in env:
            assert r.gpu is not None and env["CUDA_VISIBLE_DEVICES"] in (r.gpu.uuid, str(r.gpu.index))
        efa = [n.name for n in r.nics if n.kind == "efa"]
        if efa and "FI_EFA_IFACE" not in env:  # withheld: it would hide an idle EFA as near; said so
            assert any("FI_EFA_IFACE is not set" in w for w in plan.warnings)
        else:
            assert env.get("FI_EFA_IFACE") == (",".join(efa) if efa else None)


@FAST
@given(layouts(with_gpus=False), st.integers(1, 40))
def test_cpu_only_ranks_spread_over_nodes(layout: object, n: int) -> None:
    node = build_node(layout)  # type: ignore[arg-type]
    request = PlanRequest(ranks=n)
    capacity = usable_cores_by_numa(node, request)
    if n > sum(capacity.values()):
        with pytest.raises(UsageError, match="usable core"):
            make_plan(node, request)
        return
    plan = make_plan(node, request)
    assert [r.local_rank for r in plan.ranks] == list(range(n))
    per_node = Counter(r.numa_node for r in plan.ranks)
    for numa, count in per_node.items():
        assert count <= capacity[numa]
    # proportional to capacity: no node is more than one rank above its share of a package's ranks
    total = sum(capacity.values())
    if len({node.numa(x).package for x in capacity}) == 1:  # type: ignore[union-attr]
        for numa, cap in capacity.items():
            assert abs(per_node.get(numa, 0) - n * cap / total) < 1 + 1e-9


@FAST
@given(layouts(max_gpus=6))
def test_unknown_locality_round_robin(layout: object) -> None:
    from dataclasses import replace

    lay = replace(layout, gpus=tuple(None for _ in layout.gpus), disallowed=frozenset())  # type: ignore[type-var]
    node = build_node(lay)
    try:
        plan = make_plan(node, PlanRequest())
    except UsageError:
        assume(False)
        raise
    per_node = Counter(r.numa_node for r in plan.ranks)
    cpu_nodes = [n.os_index for n in node.numa_nodes if n.cpus]
    counts = [per_node.get(x, 0) for x in cpu_nodes]
    if len(plan.ranks) <= min(usable_cores_by_numa(node, PlanRequest()).values()):
        assert max(counts) - min(counts) <= 1
    assert any("unknown" in w for w in plan.warnings)
