"""The plan on every topology that has GPUs and RDMA NICs: NICs checked against the PCIe tree.

For every fixture and every real capture in ../shared/topologies (when present) with GPUs and
RDMA NICs: each GPU's NIC is usable, its recorded distance is the PCIe-tree level, and no
strictly nearer usable NIC had room left (otherwise swapping would shorten the total).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

from pinctl.discovery import discover
from pinctl.distance import level_order, pci_level
from pinctl.errors import UsageError
from pinctl.plan.make import make_plan
from pinctl.plan.request import PlanRequest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "topologies"
FILES = sorted((ROOT / "fixtures" / "hwloc").glob("*.xml")) + (
    sorted(p for p in SHARED.glob("*.xml") if not p.name.endswith(".hwloc1.xml")) if SHARED.is_dir() else []
)


def usable(nic) -> bool:  # type: ignore[no-untyped-def]
    ok = [p.state in (None, "ACTIVE") and p.phys_state in (None, "LinkUp") for p in nic.ports]
    return bool(nic.rdma and (not ok or any(ok)))  # no port facts (NCCL files): usable, as the planner says


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_nics_follow_the_pcie_tree(path: Path) -> None:
    node = discover(topology=str(path), nvml=False)
    nics = {n.name: n for n in node.nics if usable(n) and n.pci is not None}
    if not node.gpus or not nics:
        pytest.skip("no GPUs or no usable RDMA NIC with PCI facts")
    try:
        plan = make_plan(node, PlanRequest(nic_link_layer="any"))
    except UsageError as exc:
        assert "usable cores" in str(exc)  # e.g. the DGX-2 capture trimmed to 4 CPUs for 16 GPUs
        return
    gpus = {g.index: g for g in node.gpus}
    load = Counter(r.nics[0].name for r in plan.ranks if r.nics)
    cap = math.ceil(len(plan.ranks) / len(nics))
    seen: set[int] = set()
    for r in plan.ranks:
        assert r.gpu is not None and r.nics, f"rank {r.local_rank} got no NIC"
        assert not seen & set(r.cpus)
        seen |= set(r.cpus)
        gpu, nic = gpus[r.gpu.index], nics.get(r.nics[0].name)
        assert nic is not None, f"{r.nics[0].name} is not a usable RDMA NIC"
        assert nic.pci is not None
        level = pci_level(gpu.pci, nic.pci)
        assert r.nics[0].distance == level
        for other in nics.values():
            assert other.pci is not None
            if level_order(pci_level(gpu.pci, other.pci)) < level_order(level):
                assert load[other.name] >= cap, f"GPU {gpu.index}: {other.name} is nearer and had room"
        home = node.numa(gpu.numa_node) if gpu.numa_node is not None else None
        if home is not None and home.cpus & node.allowed_cpus and len(node.gpus) <= len(home.cpus):
            assert set(r.cpus) <= home.cpus or any("usable cores" in w for w in plan.warnings)
