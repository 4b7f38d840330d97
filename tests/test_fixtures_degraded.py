"""pinctl on the DGX A100 (healthy and with a dead HCA), dual-port HCA and Intel GPU fixtures.

The machines are described in fixtures/gen_hwloc_degraded.py and fixtures/gen_hwloc_intel.py;
tests/test_fixtures_hwloc.py checks them through hwloc. Here: what discovery makes of them,
and the plan's NIC and GPU-isolation choices the fixtures exist to exercise.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pinctl.discovery import discover
from pinctl.model import Node
from pinctl.plan.make import make_plan
from pinctl.plan.request import PlanRequest
from pinctl.planfile.types import Plan

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hwloc"
# The two compute HCAs each GPU pair of a DGX A100 reaches at PXB (nvidia-smi topo -m).
A100_PAIR_HCAS = [("mlx5_0", "mlx5_1"), ("mlx5_2", "mlx5_3"), ("mlx5_6", "mlx5_7"), ("mlx5_8", "mlx5_9")]


@cache
def node(name: str) -> Node:
    return discover(topology=str(FIXTURES / name), nvml=False)


def plan(name: str, *, isolate_gpus: bool = False) -> Plan:
    return make_plan(node(name), PlanRequest(nic_link_layer="any", isolate_gpus=isolate_gpus))


def nic_per_gpu(p: Plan) -> list[str]:
    ranks = sorted(p.ranks, key=lambda r: r.gpu.index if r.gpu else -1)
    return [r.nics[0].name for r in ranks]


def test_dgx_a100_each_gpu_gets_its_own_hca_of_its_pair() -> None:
    chosen = nic_per_gpu(plan("dgx-a100.xml"))
    for k, hcas in enumerate(A100_PAIR_HCAS):
        assert sorted(chosen[2 * k : 2 * k + 2]) == sorted(hcas)
    assert [n.kind for n in node("dgx-a100.xml").nics].count("roce") == 4  # the storage NIC ports


def test_dgx_a100_dead_hca_only_gpu2_and_gpu3_share() -> None:
    healthy = nic_per_gpu(plan("dgx-a100.xml"))
    dead = nic_per_gpu(plan("dgx-a100-dead-hca.xml"))
    assert "mlx5_2" not in {n.name for n in node("dgx-a100-dead-hca.xml").nics}
    assert dead[2] == dead[3] == "mlx5_3"
    assert [n for i, n in enumerate(dead) if i not in (2, 3)] == [n for i, n in enumerate(healthy) if i not in (2, 3)]
    assert len(set(dead)) == 7


def test_dual_port_functions_are_separate_nics_one_per_gpu() -> None:
    n = node("dual-port-4gpu.xml")
    rdma = [x for x in n.nics if x.rdma]
    assert [x.name for x in rdma] == ["mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3"]
    assert all(x.kind == "infiniband" and len(x.ports) == 1 and x.ports[0].active for x in rdma)
    assert {x.numa_node for x in rdma} == {0, 8} and [x.numa_node for x in n.gpus] == [0, 0, 8, 8]
    chosen = nic_per_gpu(plan("dual-port-4gpu.xml"))
    assert sorted(chosen[:2]) == ["mlx5_0", "mlx5_1"] and sorted(chosen[2:]) == ["mlx5_2", "mlx5_3"]


def test_intel_gpus_and_slingshot_nics_are_discovered() -> None:
    n = node("intel-gpu.xml")
    assert [g.vendor for g in n.gpus] == ["intel"] * 6
    assert all(f"renderD{128 + g.index}" in g.os_names and f"ze{g.index}" in g.os_names for g in n.gpus)
    assert {g.name for g in n.gpus} == {"Intel(R) Data Center GPU Max 1550"}
    assert all(g.memory_bytes == 128 * 2**30 for g in n.gpus)
    assert [g.numa_node for g in n.gpus] == [0, 0, 0, 1, 1, 1]
    assert [(x.name, x.kind, x.rdma) for x in n.nics] == [(f"hsn{i}", "slingshot", True) for i in range(8)]
    assert [x.numa_node for x in n.nics] == [0] * 4 + [1] * 4
    assert {m.os_index: (m.kind, m.cpuless) for m in n.numa_nodes} == {
        0: ("dram", False),
        1: ("dram", False),
        2: ("hbm", True),
        3: ("hbm", True),
    }


def test_intel_isolation_uses_level_zero_not_cuda() -> None:
    p = plan("intel-gpu.xml", isolate_gpus=True)
    assert len(p.ranks) == 6
    for r in p.ranks:
        env = dict(r.env)
        assert r.gpu is not None and env["ZE_AFFINITY_MASK"] == str(r.gpu.index)
        assert "CUDA_VISIBLE_DEVICES" not in env and "ROCR_VISIBLE_DEVICES" not in env
        assert r.nics and r.nics[0].name.startswith("hsn")
