"""Property tests (issue 22 items 4-6, 8): on random valid nodes (tests/strategies.py) with some NUMA nodes made
memory-less, some memory nodes outside the cgroup, and some CPUs taken out of every NUMA node, no rank's memory is
ever bound to a node without memory, outside the cgroup, or to GPU memory unless asked; and no rank's CPUs span
two packages."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from strategies import nodes

from pinctl.errors import UsageError
from pinctl.model import Core, Node
from pinctl.plan.make import make_plan
from pinctl.plan.request import REQUEST_MEM_POLICIES, PlanRequest

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def odd_nodes(draw: st.DrawFn) -> Node:
    node = draw(nodes())
    ids = [n.os_index for n in node.numa_nodes]
    assume(ids)
    empty = set(draw(st.lists(st.sampled_from(ids), max_size=len(ids) - 1, unique=True))) if len(ids) > 1 else set()
    numa = tuple(replace(n, memory_bytes=0 if n.os_index in empty else 64 << 30) for n in node.numa_nodes)
    mems = None
    if draw(st.booleans()):
        mems = frozenset(draw(st.lists(st.sampled_from(ids), min_size=1, unique=True)))
    out = replace(node, numa_nodes=numa, allowed_mems=mems)
    if draw(st.booleans()) and len(node.cores) > 1:  # CPUs of some cores in no node's cpulist
        stray = set(draw(st.lists(st.integers(0, len(node.cores) - 1), max_size=len(node.cores) // 2, unique=True)))
        cores = tuple(replace(c, numa_node=None) if i in stray else c for i, c in enumerate(node.cores))
        gone = {p for i, c in enumerate(node.cores) if i in stray for p in c.pus}
        numa = tuple(replace(n, cpus=n.cpus - gone) for n in out.numa_nodes)
        out = replace(out, cores=cores, numa_nodes=numa)
    return out


def _package(node: Node, cpu: int) -> int | None:
    core: Core | None = next((c for c in node.cores if cpu in c.pus), None)
    return None if core is None else core.package


@FAST
@given(odd_nodes(), st.sampled_from(REQUEST_MEM_POLICIES), st.booleans())
def test_memory_goes_only_where_it_may(node: Node, policy: str, cpu_only: bool) -> None:
    ranks = min(3, len(node.cores)) if cpu_only or not node.gpus else None
    try:
        plan = make_plan(node, PlanRequest(mem_policy=policy, ranks=ranks))
    except UsageError:
        event("refused (more ranks than cores)")
        return
    event("planned")
    hbm = {g.memory_numa_node for g in node.gpus if g.memory_numa_node is not None}
    for r in plan.ranks:
        for m in r.mems:
            n = node.numa(m)
            assert n is not None and n.memory_bytes != 0, (m, r)
            assert node.mem_allowed(m), (m, node.allowed_mems)
            if m in hbm:
                assert policy.endswith("+gpu") and r.gpu is not None
        packages = {_package(node, c) for c in r.cpus}
        assert len(packages) == 1, sorted(r.cpus)
