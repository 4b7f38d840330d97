"""The plan on every topology that has GPUs and RDMA NICs, healthy and with any one NIC failed.

For every fixture and every real capture in ../shared/topologies (when present) with GPUs and
RDMA NICs: each GPU's NIC is usable, its recorded distance is the PCIe-tree level, and the NIC
objective holds (nearest first, no NIC shared while an equally near one idles; tests/nic_rule.py).
Then each NIC in turn is taken away (removed, or its ports DOWN): the objective still holds, and
the failure costs only the GPUs that used that NIC and whoever now shares a NIC with them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from functools import cache
from pathlib import Path

import pytest
from nic_rule import gpu_nics, objective_problems, usable

from pinctl.discovery import discover
from pinctl.distance import level_order, pci_level
from pinctl.errors import TopologyError, UsageError
from pinctl.model import Nic, NicPort, Node
from pinctl.plan.make import make_plan
from pinctl.plan.request import PlanRequest
from pinctl.planfile.types import Plan

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "topologies"
FILES = (
    sorted((ROOT / "fixtures" / "hwloc").glob("*.xml"))
    + sorted((ROOT / "fixtures" / "nccl").glob("*.xml"))
    + (sorted(p for p in SHARED.glob("*.xml") if not p.name.endswith(".hwloc1.xml")) if SHARED.is_dir() else [])
)


@cache
def node_of(path: Path) -> Node:
    return discover(topology=str(path), nvml=False)


def plan_of(node: Node) -> Plan | None:
    try:
        return make_plan(node, PlanRequest(nic_link_layer="any"))
    except UsageError as exc:
        assert "usable core" in str(exc)  # e.g. the DGX-2 capture trimmed to 4 CPUs for 16 GPUs
        return None


def with_gpus_and_nics(path: Path) -> Node:
    try:
        node = node_of(path)
    except TopologyError as exc:  # AWS's bus-id skeletons: nothing to plan from
        pytest.skip(str(exc))
    if not node.gpus or not any(usable(n) and n.pci is not None for n in node.nics):
        pytest.skip("no GPUs or no usable RDMA NIC with PCI facts")
    return node


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_nics_follow_the_pcie_tree(path: Path) -> None:
    node = with_gpus_and_nics(path)
    plan = plan_of(node)
    if plan is None:
        return
    gpus = {g.index: g for g in node.gpus}
    nics = {n.name: n for n in node.nics if usable(n)}
    seen: set[int] = set()
    for r in plan.ranks:
        assert r.gpu is not None and r.nics, f"rank {r.local_rank} got no NIC"
        assert not seen & set(r.cpus)
        seen |= set(r.cpus)
        gpu, nic = gpus[r.gpu.index], nics.get(r.nics[0].name)
        assert nic is not None, f"{r.nics[0].name} is not a usable RDMA NIC"
        assert r.nics[0].distance == ("SYS" if nic.pci is None else pci_level(gpu.pci, nic.pci))
        home = node.numa(gpu.numa_node) if gpu.numa_node is not None else None
        if home is not None and home.cpus & node.allowed_cpus and len(node.gpus) <= len(home.cpus):
            assert set(r.cpus) <= home.cpus or any("usable core" in w for w in plan.warnings)
    assert objective_problems(node, plan) == []


def _without(node: Node, name: str, how: str) -> Node:
    if how == "removed":
        return replace(node, nics=tuple(n for n in node.nics if n.name != name))

    def dead(nic: Nic) -> Nic:
        # a NIC that reported no ports (NCCL files, Slingshot) fails as one whose one port is DOWN
        ports = nic.ports or (NicPort(1),)
        return replace(nic, ports=tuple(replace(p, state="DOWN", phys_state="Disabled") for p in ports))

    return replace(node, nics=tuple(dead(n) if n.name == name else n for n in node.nics))


def _quality(node: Node, plan: Plan) -> dict[int, tuple[int, int]]:
    """Per GPU: (its worst NIC level, how many GPUs share its busiest NIC)."""
    gpus = {g.index: g for g in node.gpus}
    nics = {n.name: n for n in node.nics}
    chosen = gpu_nics(plan)
    load = Counter(name for names in chosen.values() for name in names)
    return {
        i: (max((level_order("SYS" if nics[n].pci is None else pci_level(gpus[i].pci, nics[n].pci))
                 for n in names), default=99), max((load[n] for n in names), default=0))
        for i, names in chosen.items()
    }  # fmt: skip


@pytest.mark.parametrize("how", ["removed", "ports down"])
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_any_one_failed_nic_costs_only_the_gpus_that_used_it(path: Path, how: str) -> None:
    node = with_gpus_and_nics(path)
    before = plan_of(node)
    if before is None:
        return
    if len([n for n in node.nics if usable(n)]) < 2:
        pytest.skip("one usable NIC: taking it away leaves none to judge")
    old = _quality(node, before)
    used = gpu_nics(before)
    for nic in [n for n in node.nics if usable(n)]:
        failed = _without(node, nic.name, how)
        after = plan_of(failed)
        assert after is not None
        assert objective_problems(failed, after) == [], nic.name
        hit = {i for i, names in used.items() if nic.name in names}
        now = gpu_nics(after)
        sharing_with_hit = {i for i, names in now.items() for j in hit if set(names) & set(now.get(j, ()))}
        new = _quality(failed, after)
        worse = {i for i in old if new[i] > old[i]}
        assert worse <= hit | sharing_with_hit, f"{nic.name} {how}: GPUs {sorted(worse - hit)} paid for it"
