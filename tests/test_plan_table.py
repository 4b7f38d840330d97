"""Planner examples: hand-built nodes, the hwloc fixtures and real captures, and naive choices compared."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from nodes import Layout, NicSpec, build_node

from pinctl.distance import level_order as level_rank
from pinctl.distance import pci_level
from pinctl.errors import UsageError
from pinctl.model import Node
from pinctl.plan.make import fingerprint, make_plan
from pinctl.plan.request import PlanRequest, parse_visible_devices, select_gpus
from pinctl.planfile.types import Plan

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures" / "hwloc"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "topologies"

# Two sockets, 2 L3 groups of 4 cores each per socket, SMT 2, socket-interleaved numbering;
# GPUs 0,1 on socket 0 switches, 2,3 on socket 1; an HCA on GPU0's and GPU2's switch, a RoCE port on GPU1's.
IB = (("ACTIVE", "InfiniBand"),)
ROCE = (("ACTIVE", "Ethernet"),)
BASE = Layout(
    packages=2,
    l3_per_numa=2,
    cores_per_l3=4,
    smt=2,
    interleaved=True,
    gpus=((0, 0, 0), (0, 0, 1), (1, 0, 0), (1, 0, 1)),
    nics=(NicSpec((0, 0, 0), IB), NicSpec((0, 0, 1), ROCE, kind="roce"), NicSpec((1, 0, 0), IB)),
    storage=((0, 0, 0),),
)


def plan(layout: Layout = BASE, **kw: object) -> Plan:
    return make_plan(build_node(layout), PlanRequest(**kw))  # type: ignore[arg-type]


def nics(p: Plan) -> list[list[str]]:
    return [[n.name for n in r.nics] for r in p.ranks]


# --- CPUs ---------------------------------------------------------------------------------------


def test_interleaved_numbering_follows_topology() -> None:
    p = plan()
    node = build_node(BASE)
    socket0 = node.packages[0].cpus
    assert all(c % 2 == 0 for c in socket0)  # the layout really is interleaved
    assert set(p.ranks[0].cpus) | set(p.ranks[1].cpus) <= socket0
    assert set(p.ranks[2].cpus) | set(p.ranks[3].cpus) <= node.packages[1].cpus
    # one L3 group (4 cores, 8 PUs) per rank
    l3_of = {pu: core.l3 for core in node.cores for pu in core.pus}
    for r in p.ranks:
        assert len(r.cpus) == 8 and len({l3_of[c] for c in r.cpus}) == 1


def test_reserve_per_numa_takes_lowest_cores() -> None:
    p = plan(reserve_per_numa=1)
    used = {c for r in p.ranks for c in r.cpus}
    # lowest-numbered core of socket 0 is CPU 0 (+ sibling 16), of socket 1 CPU 1 (+17)
    assert not used & {0, 16, 1, 17}
    assert sorted(len(r.cores) for r in p.ranks) == [3, 3, 4, 4]


def test_reserve_list_and_unknown_cpu_warning() -> None:
    p = plan(reserve=frozenset({0, 16, 999}))
    assert not {0, 16} & {c for r in p.ranks for c in r.cpus}
    assert any("999" in w for w in p.warnings)


def test_smt_one_per_core_keeps_lowest_thread() -> None:
    p = plan(smt="one-per-core")
    for r in p.ranks:
        assert len(r.cpus) == len(r.cores) == 4
        assert all(c < 16 for c in r.cpus)


def test_procs_per_gpu_split_l3_groups() -> None:
    p = plan(procs_per_gpu=2)
    assert len(p.ranks) == 8
    assert [r.gpu.index for r in p.ranks if r.gpu] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert all(len(r.cores) == 2 for r in p.ranks)
    assert nics(p)[0] == nics(p)[1]  # procs of one GPU share its NIC
    assert any("LOCAL_RANK" in w for w in p.warnings)


def test_gpu_on_cpuless_node_uses_nearest_cpu_node() -> None:
    layout = replace(BASE, cpuless=2, gpu_on_cpuless=frozenset({3}))
    node = build_node(layout)
    assert node.gpus[3].numa_node is not None and node.numa(node.gpus[3].numa_node).cpuless  # type: ignore[union-attr]
    p = make_plan(node, PlanRequest())
    r = p.ranks[3]
    assert r.numa_node in (0, 1) and r.mems == {r.numa_node}
    assert any("CPU-less" in w for w in p.warnings)


def test_too_few_local_cores_moves_to_nearest_node() -> None:
    # socket 0 keeps 2 allowed cores; 4 GPUs on socket 0
    node = build_node(replace(BASE, gpus=((0, 0, 0),) * 4))
    socket0_cores = [c for c in node.cores if c.package == 0]
    keep = {pu for c in socket0_cores[:2] for pu in c.pus}
    node = replace(node, allowed_cpus=node.allowed_cpus - (node.packages[0].cpus - keep))
    p = make_plan(node, PlanRequest())
    assert [r.numa_node for r in p.ranks] == [0, 0, 1, 1]
    assert "NUMA node 0 is full (2 usable cores for 4 ranks): ranks 2-3 to node 1, the nearest with room" in p.warnings


def test_unknown_locality_round_robin_with_warning() -> None:
    p = plan(replace(BASE, gpus=(None,) * 4))
    assert [r.numa_node for r in p.ranks] == [0, 1, 0, 1]
    assert any("unknown" in w for w in p.warnings)


def test_cpu_only_ranks() -> None:
    p = plan(replace(BASE, gpus=()), ranks=4)
    assert [r.numa_node for r in p.ranks] == [0, 0, 1, 1]
    assert all(r.gpu is None and len(r.cores) == 4 for r in p.ranks)
    assert [n for r in p.ranks for n in (x.name for x in r.nics)] == ["mlx5_0", "mlx5_0", "mlx5_2", "mlx5_2"]


# --- NICs ---------------------------------------------------------------------------------------


def test_infiniband_preferred_over_nearer_roce() -> None:
    # GPU1 shares a switch with the RoCE port, but ib mode takes the IB HCA on its host bridge
    assert nics(plan()) == [["mlx5_0"], ["mlx5_0"], ["mlx5_2"], ["mlx5_2"]]
    assert nics(plan(nic_link_layer="any"))[1] == ["mlx5_1"]
    assert nics(plan(nic_link_layer="eth")) == [["mlx5_1"]] * 4


def test_ib_falls_back_to_roce_with_warning() -> None:
    layout = replace(BASE, nics=(NicSpec((0, 0, 1), ROCE, kind="roce"),))
    p = plan(layout)
    assert nics(p) == [["mlx5_0"]] * 4
    assert any("falling back" in w for w in p.warnings)


def test_down_port_never_used_and_unknown_warns() -> None:
    layout = replace(
        BASE,
        nics=(NicSpec((0, 0, 0), (("DOWN", "InfiniBand"),)), NicSpec((1, 0, 0), ((None, "InfiniBand"),))),
    )
    p = plan(layout)
    assert nics(p) == [["mlx5_1"]] * 4
    assert any("unknown" in w and "mlx5_1" in w for w in p.warnings)


def test_multi_rail() -> None:
    p = plan(nic_link_layer="any", nics_per_gpu=2)
    assert all(len(set(n)) == 2 for n in nics(p))
    load = Counter(x for n in nics(p) for x in n)
    assert max(load.values()) <= 3  # ceil(2 * 4 / 3)
    env = dict(p.ranks[0].env)
    assert env["NCCL_IB_HCA"] == "=" + ",".join(f"{n}:1" for n in nics(p)[0])
    assert env["UCX_NET_DEVICES"] == ",".join(f"{n}:1" for n in nics(p)[0])


def test_env_isolation_uses_uuid() -> None:
    p = plan(isolate_gpus=True)
    env = dict(p.ranks[2].env)
    assert env["CUDA_VISIBLE_DEVICES"] == "GPU-00000002-0000"
    assert env["OMP_NUM_THREADS"] == "4" and env["LOCAL_RANK"] == "2"
    assert env["NCCL_IB_HCA"] == "=mlx5_2:1"
    assert "CUDA_VISIBLE_DEVICES" not in dict(plan().ranks[0].env)


# --- selection and errors -----------------------------------------------------------------------


def test_select_gpus_by_index_and_bus_id() -> None:
    node = build_node(BASE)
    assert select_gpus(node, "all") is None
    assert select_gpus(node, "0,2-3") == (0, 2, 3)
    bus = str(node.gpus[1].pci.address)
    assert select_gpus(node, f"{bus},3") == (1, 3)
    with pytest.raises(UsageError, match="PCI address"):
        select_gpus(node, "0000:ee:00.0")
    with pytest.raises(UsageError, match="malformed"):
        select_gpus(node, "zero")


def test_visible_devices() -> None:
    node = build_node(BASE)
    assert parse_visible_devices("1, GPU-00000003") == (1, "GPU-00000003")
    p = make_plan(node, PlanRequest(visible_devices=(1, "GPU-00000003", "GPU-dead")))
    assert [r.gpu.index for r in p.ranks if r.gpu] == [1, 3]
    assert any("GPU-dead" in w for w in p.warnings)
    with pytest.raises(UsageError, match="CUDA_VISIBLE_DEVICES"):
        make_plan(node, PlanRequest(visible_devices=()))


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"gpus": (7,)}, "no GPU 7"),
        ({"gpus": ()}, "empty"),
        ({"procs_per_gpu": 0}, "at least 1"),
        ({"procs_per_gpu": 5}, "usable cores"),
        ({"ranks": 3, "gpus": (0,)}, "cannot be combined"),
        ({"ranks": 0}, "at least 1"),
        ({"mem_policy": "spread"}, "--mem-policy"),
    ],
)
def test_bad_requests_are_usage_errors(kw: dict[str, object], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        plan(**kw)


def test_no_gpus_needs_ranks() -> None:
    with pytest.raises(UsageError, match="--ranks"):
        plan(replace(BASE, gpus=()))


def test_fingerprint_ignores_cgroup_but_not_layout() -> None:
    node = build_node(BASE)
    assert fingerprint(node) == fingerprint(replace(node, allowed_cpus=frozenset({0, 1})))
    assert fingerprint(node) != fingerprint(build_node(replace(BASE, nics=BASE.nics[:2])))
    assert len(fingerprint(node)) == 16


def test_memory_policies() -> None:
    two_per_socket = replace(BASE, numa_per_package=2, l3_per_numa=1)
    r = plan(two_per_socket, mem_policy="interleave").ranks[0]
    assert r.mems == {0, 1}
    assert plan(mem_policy="local").ranks[0].mems == frozenset()
    assert plan(mem_policy="preferred").ranks[2].mems == {1}


# --- fixtures and real captures -----------------------------------------------------------------


def _discover(path: Path) -> Node:
    if importlib.util.find_spec("pinctl.discovery") is None:
        pytest.skip("discovery (pinctl.discovery) is not available")
    if not path.exists():
        pytest.skip(f"{path.name} not present")
    from pinctl.discovery import discover

    return discover(topology=str(path), nvml=False)


def _dgx_slices() -> tuple[list[tuple[int, int, str, str, int]], str]:
    """The NIC per GPU as the fixture generator documents it (DGX H100 user guide tables)."""
    sys.path.insert(0, str(REPO / "fixtures"))
    try:
        import gen_hwloc
    finally:
        sys.path.pop(0)
    return gen_hwloc.DGX_SLICES, gen_hwloc.DGX_DOWN_PORT


def _nic_level(node: Node, gpu_index: int, nic_name: str) -> str:
    gpu = next(g for g in node.gpus if g.index == gpu_index)
    nic = next(n for n in node.nics if n.name == nic_name)
    assert nic.pci is not None
    return pci_level(gpu.pci, nic.pci)


def test_dgx_h100_each_gpu_gets_its_pix_hca() -> None:
    node = _discover(FIXTURES / "dgx-h100.xml")
    slices, _ = _dgx_slices()
    p = make_plan(node, PlanRequest())
    assert nics(p) == [[s[2]] for s in slices]
    for r in p.ranks:
        assert r.gpu is not None
        assert _nic_level(node, r.gpu.index, r.nics[0].name) == "PIX" == r.nics[0].distance
        assert dict(r.env)["NCCL_IB_HCA"] == f"={r.nics[0].name}:1"
    assert [r.numa_node for r in p.ranks] == [g.numa_node for g in sorted(node.gpus, key=lambda g: g.index)]


def test_dgx_h100_down_port_avoided() -> None:
    node = _discover(FIXTURES / "dgx-h100-portdown.xml")
    slices, down = _dgx_slices()
    p = make_plan(node, PlanRequest())
    used = [n for names in nics(p) for n in names]
    assert down not in used
    assert max(Counter(used).values()) <= 2  # ceil(8 GPUs / 7 usable HCAs)
    for r, s in zip(p.ranks, slices, strict=True):
        if s[2] != down:
            assert r.nics[0].name == s[2]
    # The GPU that lost its PIX HCA is told why it got a farther one; the others are not.
    (victim,) = [i for i, s in enumerate(slices) if s[2] == down]
    about = [w for w in p.warnings if w.startswith("GPU")]
    assert about == [f"GPU {victim}: the nearer NIC {down} has port 1 DOWN (see ibstat), so a farther one is used"]
    assert not [
        w for w in make_plan(_discover(FIXTURES / "dgx-h100.xml"), PlanRequest()).warnings if w.startswith("GPU ")
    ]


def test_cloud_vm_spreads_and_warns() -> None:
    node = _discover(FIXTURES / "cloud-vm-nolocality.xml")
    p = make_plan(node, PlanRequest())
    counts = Counter(r.numa_node for r in p.ranks)
    assert max(counts.values()) - min(counts.values()) <= 1
    assert len({n for names in nics(p) for n in names}) == len(p.ranks)  # balanced despite all-SYS ties
    assert any("unknown" in w for w in p.warnings)


def test_cgroup_restricted_stays_inside_cpuset() -> None:
    node = _discover(FIXTURES / "cgroup-restricted.xml")
    p = make_plan(node, PlanRequest())
    assert {c for r in p.ranks for c in r.cpus} <= node.allowed_cpus
    sizes = Counter(len(r.cores) for r in p.ranks)
    assert len(sizes) == 1


def test_gpu_memory_numa_never_binds_gpu_memory() -> None:
    node = _discover(FIXTURES / "gpu-memory-numa.xml")
    cpuless = {n.os_index for n in node.numa_nodes if n.cpuless}
    for policy in ("bind", "interleave", "preferred"):
        p = make_plan(node, PlanRequest(mem_policy=policy))
        for r in p.ranks:
            assert r.numa_node not in cpuless and not set(r.mems) & cpuless


def test_juwels_booster_pix_hca_per_gpu() -> None:
    node = _discover(SHARED / "psmgmt-jwb0004-juwels-booster.xml")
    p = make_plan(node, PlanRequest())
    assert len({r.nics[0].name for r in p.ranks}) == len(p.ranks)
    for r in p.ranks:
        assert r.gpu is not None and _nic_level(node, r.gpu.index, r.nics[0].name) == "PIX"


def test_juwels_cluster_two_gpus_per_hca() -> None:
    node = _discover(SHARED / "psmgmt-jwc09n003-juwels-cluster-gpu.v2conv.xml")
    p = make_plan(node, PlanRequest())
    assert sorted(Counter(r.nics[0].name for r in p.ranks).values()) == [2, 2]
    assert all(r.nics[0].distance == "PIX" for r in p.ranks)


def test_azure_ndv4_balanced_despite_pix_ties() -> None:
    node = _discover(SHARED / "azure-ndv4.nccl.xml")
    p = make_plan(node, PlanRequest())
    assert len(p.ranks) == 8
    assert len({r.nics[0].name for r in p.ranks}) == 8
    assert all(r.nics[0].distance == "PIX" for r in p.ranks)


# --- pinctl against the naive choices -----------------------------------------------------------


def naive_whole_numa(node: Node) -> list[set[int]]:
    """What `nvidia-smi topo -m` "CPU Affinity" suggests: each GPU gets its whole NUMA node."""
    out = []
    for g in sorted(node.gpus, key=lambda g: g.index):
        numa = node.numa(g.numa_node) if g.numa_node is not None else None
        out.append(set(numa.cpus & node.allowed_cpus) if numa else set(node.allowed_cpus))
    return out


def naive_nic_i(node: Node) -> list[str]:
    """GPU i gets mlx5_i (or the i-th RDMA NIC by name)."""
    names = sorted(n.name for n in node.nics if n.rdma)
    gpus = sorted(node.gpus, key=lambda g: g.index)
    return [f"mlx5_{g.index}" if f"mlx5_{g.index}" in names else names[g.index % len(names)] for g in gpus]


@pytest.mark.parametrize("name", ["dgx-h100.xml", "interleaved.xml", "epyc-nps4-8gpu.xml", "cgroup-restricted.xml"])
def test_pinctl_versus_naive(name: str) -> None:
    node = _discover(FIXTURES / name)
    p = make_plan(node, PlanRequest(nic_link_layer="any"))
    # naive 1 overlaps whenever two GPUs share a node; pinctl never does
    naive_sets = naive_whole_numa(node)
    shared_node = len({g.numa_node for g in node.gpus}) < len(node.gpus)
    overlaps = any(a & b for i, a in enumerate(naive_sets) for b in naive_sets[i + 1 :])
    assert overlaps == shared_node
    seen: set[int] = set()
    for r in p.ranks:
        assert not seen & set(r.cpus)
        seen |= set(r.cpus)
    # naive 2: pinctl's NICs are at least as near in total, strictly nearer on DGX H100
    mine = sum(level_rank(_nic_level(node, r.gpu.index, r.nics[0].name)) for r in p.ranks if r.gpu)
    naive = sum(level_rank(_nic_level(node, i, n)) for i, n in enumerate(naive_nic_i(node)))
    assert mine <= naive
    if name == "dgx-h100.xml":
        assert mine < naive


@pytest.mark.parametrize(("ngpus", "nnics"), [(16, 16), (8, 12)])
def test_assignment_fast_on_big_nodes(ngpus: int, nnics: int) -> None:
    import time

    layout = Layout(
        packages=2,
        numa_per_package=4,
        l3_per_numa=6,
        cores_per_l3=8,
        gpus=tuple((i % 8, i % 2, 0) for i in range(ngpus)),
        nics=tuple(NicSpec((i % 8, (i // 8) % 2, 0)) for i in range(nnics)),
    )
    node = build_node(layout)
    t0 = time.perf_counter()
    p = make_plan(node, PlanRequest(nics_per_gpu=2))
    assert time.perf_counter() - t0 < 1.0
    load = Counter(n.name for r in p.ranks for n in r.nics)
    assert max(load.values()) <= -(-2 * ngpus // nnics)


def test_made_up_nic_names_never_reach_nccl() -> None:
    """NCCL files without <net name> give NICs pinctl names itself (rdma@ADDR): no env for them."""
    path = SHARED / "azure-ndv5.nccl.xml"
    if not path.exists():
        pytest.skip("shared topologies not available")
    p = make_plan(_discover(path), PlanRequest())
    assert all(r.nics and "@" in r.nics[0].name for r in p.ranks)
    for r in p.ranks:
        assert "NCCL_IB_HCA" not in dict(r.env) and "UCX_NET_DEVICES" not in dict(r.env)
    assert any(
        "the topology gives no device name, so NCCL_IB_HCA and UCX_NET_DEVICES are not set" in w for w in p.warnings
    )


def test_nic_warning_names_the_real_reason() -> None:
    # GPU0's switch holds a RoCE port only; GPU1's HCA is down: each is told its own reason, once
    layout = replace(BASE, nics=(NicSpec((0, 0, 0), ROCE, kind="roce"), NicSpec((0, 0, 1), (("DOWN", "InfiniBand"),)),
                                 NicSpec((1, 0, 0), IB)))  # fmt: skip
    p = plan(layout)
    assert nics(p) == [["mlx5_2"]] * 4
    assert (
        "GPUs 0-1: the nearer NIC mlx5_0 is Ethernet, excluded by --nic-link-layer, so a farther one is used"
        in p.warnings
    )
    assert "GPUs 0-1: the nearer NIC mlx5_1 has port 1 DOWN (see ibstat), so a farther one is used" in p.warnings
    assert not any("InfiniBand, excluded" in w for w in p.warnings)


def test_port_hint_names_the_tool_for_the_nic_kind() -> None:
    for kind, tool in (("infiniband", "ibstat"), ("efa", "fi_info -p efa"), ("slingshot", "cxi_stat")):
        layout = replace(BASE, nics=(NicSpec((0, 0, 0), (("DOWN", None),), kind=kind),
                                     NicSpec((1, 0, 0), ((None, None),), kind=kind)))  # fmt: skip
        text = "\n".join(plan(layout).warnings)
        assert f"has port 1 DOWN (see {tool})" in text and f"(check with {tool} on the node)" in text
        others = {"ibstat", "fi_info", "cxi_stat"} - {tool.split()[0]}
        assert not any(o in text for o in others), text


def test_one_line_per_reason() -> None:
    """Every GPU far from its NIC: one line naming them all, not a copy per GPU."""
    layout = replace(BASE, nics=(NicSpec((0, 1, None), IB),))  # one HCA on its own host bridge
    p = plan(layout)
    far = [w for w in p.warnings if "no RDMA NIC shares a PCIe switch" in w]
    assert far == [
        "GPUs 0-1: no RDMA NIC shares a PCIe switch with them; the nearest is NODE "
        "(GPUDirect RDMA traffic crosses between PCIe host bridges of one NUMA node)",
        "GPUs 2-3: no RDMA NIC shares a PCIe switch with them; the nearest is SYS "
        "(GPUDirect RDMA traffic crosses the interconnect between NUMA nodes)",
    ]


def test_cross_socket_rail_is_named_or_left_out() -> None:
    layout = replace(BASE, nics=(NicSpec((0, 0, 0), IB), NicSpec((1, 0, 0), IB)))  # one HCA per socket
    p = plan(layout, nics_per_gpu=2)
    assert [u.distance for u in p.ranks[0].nics] == ["PIX", "SYS"]
    assert (
        "extra rails at SYS, across the interconnect between NUMA nodes (GPU 0: mlx5_1; GPU 1: mlx5_1; "
        "GPU 2: mlx5_0; GPU 3: mlx5_0): their traffic leaves the GPU's NUMA node (--local-rails keeps only "
        "rails that do not)" in p.warnings
    )
    local = plan(layout, nics_per_gpu=2, local_rails=True)
    assert nics(local) == [["mlx5_0"], ["mlx5_0"], ["mlx5_1"], ["mlx5_1"]]
    assert "GPUs 0-3: --local-rails leaves 1 of 2 rails (the others would be SYS)" in local.warnings
    assert not any("extra rails at SYS" in w for w in local.warnings)
    # two HCAs on each socket: the second rail stays on the GPU's side, and nothing is said
    four = replace(BASE, nics=(NicSpec((0, 0, 0), IB), NicSpec((0, 0, 1), IB), NicSpec((1, 0, 0), IB),
                               NicSpec((1, 0, 1), IB)))  # fmt: skip
    p = plan(four, nics_per_gpu=2)
    assert all("SYS" not in [u.distance for u in r.nics] for r in p.ranks)
    assert not any("rail" in w for w in p.warnings)


def test_juwels_booster_second_rail_crosses_sockets() -> None:
    path = SHARED / "psmgmt-jwb0004-juwels-booster.xml"
    if not path.exists():
        pytest.skip("shared topologies not available")
    node = _discover(path)
    p = make_plan(node, PlanRequest(nics_per_gpu=2))
    assert [[u.distance for u in r.nics] for r in p.ranks] == [["PIX", "SYS"]] * 4
    assert any(w.startswith("extra rails at SYS") and "GPU 0: mlx5_1" in w for w in p.warnings)
    local = make_plan(node, PlanRequest(nics_per_gpu=2, local_rails=True))
    assert [[u.distance for u in r.nics] for r in local.ranks] == [["PIX"]] * 4


def test_juwels_booster_seven_ranks_on_six_cores() -> None:
    """--procs-per-gpu 7 for one GPU whose node has 6 cores: six stay, the seventh spills with one core."""
    path = SHARED / "psmgmt-jwb0004-juwels-booster.xml"
    if not path.exists():
        pytest.skip("shared topologies not available")
    node = _discover(path)
    p = make_plan(node, PlanRequest(gpus=(0,), procs_per_gpu=7))
    home = next(g for g in node.gpus if g.index == 0).numa_node
    assert [r.numa_node for r in p.ranks[:6]] == [home] * 6
    assert [len(r.cores) for r in p.ranks] == [1] * 7
    spilled = p.ranks[6]
    assert spilled.numa_node != home and node.distance(home, spilled.numa_node) == min(
        node.distance(home, n.os_index) for n in node.numa_nodes if n.os_index != home and n.cpus
    )  # type: ignore[type-var]
    assert (
        f"NUMA node {home} is full (6 usable cores for 7 ranks): rank 6 to node {spilled.numa_node}, "
        "the nearest with room" in p.warnings
    )


def test_azure_ndv4_one_hca_removed_costs_only_its_gpu() -> None:
    """Issue case: 8 A100 + 8 HCAs in GPU+NIC pairs under four switches, one HCA gone."""
    path = SHARED / "azure-ndv4.nccl.xml"
    if not path.exists():
        pytest.skip("shared topologies not available")
    node = _discover(path)
    healthy = make_plan(node, PlanRequest())
    dead = healthy.ranks[2].nics[0].name
    p = make_plan(replace(node, nics=tuple(n for n in node.nics if n.name != dead)), PlanRequest())
    load = Counter(r.nics[0].name for r in p.ranks)
    assert sorted(load.values()) == [1] * 6 + [2]  # one NIC shared by two GPUs, six keep their own
    shared = next(name for name, c in load.items() if c == 2)
    sharers = [r.gpu.index for r in p.ranks if r.nics[0].name == shared and r.gpu]
    assert 2 in sharers and all(r.nics[0].distance == "PIX" for r in p.ranks)
    changed = [r.gpu.index for r, h in zip(p.ranks, healthy.ranks, strict=True) if r.nics != h.nics and r.gpu]
    assert changed == [2]


def test_lassen_dual_port_cards_one_function_per_gpu() -> None:
    """Two functions per ConnectX: the two GPUs of a socket get one each, none idles."""
    path = SHARED / "mpibind-coral-lassen.xml"
    if not path.exists():
        pytest.skip("shared topologies not available")
    p = make_plan(_discover(path), PlanRequest())
    assert [r.nics[0].name for r in p.ranks] == ["mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3"]


def test_gpus_sharing_because_an_equally_near_hca_is_down_are_told() -> None:
    node = _discover(FIXTURES / "dgx-a100.xml")
    dead = next(n for n in node.nics if n.name == "mlx5_2")
    down = replace(dead, ports=tuple(replace(p, state="DOWN") for p in dead.ports))
    p = make_plan(replace(node, nics=tuple(down if n is dead else n for n in node.nics)), PlanRequest())
    assert [r.nics[0].name for r in p.ranks][2:4] == ["mlx5_3", "mlx5_3"]
    assert [w for w in p.warnings if "share" in w] == [
        "GPUs 2-3: share mlx5_3: the equally near NIC mlx5_2 has port 1 DOWN (see ibstat)"
    ]
    assert not [w for w in make_plan(node, PlanRequest()).warnings if "share" in w]
