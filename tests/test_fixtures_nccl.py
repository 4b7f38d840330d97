"""The generated NCCL topology fixtures: committed bytes match the generator, pinctl's
NCCL reader sees the machines the generator's docstrings describe, and the planner
splits their CPUs safely although the files do not say which CPUs are SMT siblings.

Expectations are written from the documented node facts (AWS p5.48xlarge: 8 H100,
32 EFA at 3200 Gbps, 192 vCPUs with siblings n and n+96; Azure ND96asr_v4: 8 A100,
8 HDR HCAs, 4 NUMA nodes of 24 vCPUs), not read back from the generator.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from pinctl.api import discover, make_plan
from pinctl.cli.main import main
from pinctl.distance import pci_level
from pinctl.errors import UsageError
from pinctl.model import Node
from pinctl.planfile.types import Plan

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures" / "nccl"
NAMES = ["aws-p5-like.xml", "azure-ndv4-like.xml"]


def r(a: int, b: int) -> frozenset[int]:
    return frozenset(range(a, b + 1))


@dataclass(frozen=True)
class Facts:
    """What the public documents say about one node type."""

    gpus: int
    gpu_device: int
    nics: int
    nic_kind: str
    nic_gbps: float
    numa: dict[int, frozenset[int]]
    gpu_numa: list[int]  # by GPU index (PCI bus order)
    pix_nics_per_gpu: int
    # Sibling numberings that fit the NUMA masks: each maps a CPU to the CPU sharing its core.
    sibling_rules: tuple[str, ...]


FACTS = {
    # 192 vCPUs = 2 x 48 cores x SMT2, EC2 numbering: siblings n and n+96.
    "aws-p5-like.xml": Facts(
        gpus=8, gpu_device=0x2330, nics=32, nic_kind="efa", nic_gbps=100.0,
        numa={0: r(0, 47) | r(96, 143), 1: r(48, 95) | r(144, 191)},
        gpu_numa=[0, 0, 0, 0, 1, 1, 1, 1], pix_nics_per_gpu=4,
        sibling_rules=("n+half", "2n+1"),
    ),
    # 96 vCPUs on 96 physical cores (SMT off); Azure's masks: NUMA k = 24k..24k+23.
    # n and n+48 would pair CPUs of different NUMA nodes, so only 2n/2n+1 is checked.
    "azure-ndv4-like.xml": Facts(
        gpus=8, gpu_device=0x20B0, nics=8, nic_kind="infiniband", nic_gbps=200.0,
        numa={k: r(24 * k, 24 * k + 23) for k in range(4)},
        gpu_numa=[1, 1, 0, 0, 3, 3, 2, 2], pix_nics_per_gpu=2,
        sibling_rules=("2n+1",),
    ),
}  # fmt: skip


def node_of(name: str) -> Node:
    return discover(topology=str(FIXTURES / name))


def sibling(rule: str, cpu: int, ncpus: int) -> int:
    if rule == "n+half":
        half = ncpus // 2
        return cpu + half if cpu < half else cpu - half
    return cpu ^ 1  # 2n and 2n+1


def ranges(cpus: frozenset[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for c in sorted(cpus):
        if out and out[-1][-1] + 1 == c:
            out[-1].append(c)
        else:
            out.append([c])
    return out


def test_committed_fixtures_match_generator(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "fixtures" / "gen_nccl.py"), str(tmp_path)], check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(NAMES)
    for name in NAMES:
        assert (tmp_path / name).read_bytes() == (FIXTURES / name).read_bytes(), f"{name} drifted: regenerate"


def test_generator_is_listed_in_generate_py() -> None:
    assert '"gen_nccl.py"' in (ROOT / "fixtures" / "generate.py").read_text()


@pytest.mark.parametrize("name", NAMES)
def test_discovery_sees_the_documented_node(name: str) -> None:
    facts = FACTS[name]
    node = node_of(name)
    assert node.source.startswith("nccl-xml:")
    assert node.smt_known is False
    assert {n.os_index: n.cpus for n in node.numa_nodes} == facts.numa
    assert node.allowed_cpus == frozenset().union(*facts.numa.values())
    assert len(node.gpus) == facts.gpus
    assert all(g.vendor == "nvidia" and g.pci.device_id == facts.gpu_device for g in node.gpus)
    assert [g.numa_node for g in node.gpus] == facts.gpu_numa
    assert [g.pci.local_cpus for g in node.gpus] == [facts.numa[n] for n in facts.gpu_numa]
    assert len(node.nics) == facts.nics
    assert all(n.kind == facts.nic_kind and n.rdma for n in node.nics)
    assert all("@" not in n.name for n in node.nics)  # named by <net>, so NCCL/libfabric variables can be set
    assert [p.rate_gbps for n in node.nics for p in n.ports] == [facts.nic_gbps] * facts.nics
    for gpu in node.gpus:
        pix = [n for n in node.nics if n.pci is not None and pci_level(gpu.pci, n.pci) == "PIX"]
        assert len(pix) == facts.pix_nics_per_gpu
        assert all(n.numa_node == gpu.numa_node for n in pix)


def test_p5_totals_match_the_instance_spec() -> None:
    node = node_of("aws-p5-like.xml")
    assert sum(p.rate_gbps or 0 for n in node.nics for p in n.ports) == 3200.0
    assert len(node.allowed_cpus) == 192
    assert all(n.pci is not None and (n.pci.vendor_id, n.pci.device_id) == (0x1D0F, 0xEFA1) for n in node.nics)
    # Each GPU reaches the NVSwitch fabric over 18 NVLinks, so GPU pairs are NV18, not PCIe.
    assert all(sum(link.links for link in g.nvlinks) == 18 for g in node.gpus)


def check_cpu_split(node: Node, plan: Plan, facts: Facts) -> None:
    ncpus = len(node.allowed_cpus)
    by_numa: dict[int, list[frozenset[int]]] = {}
    for rank in plan.ranks:
        assert rank.numa_node is not None
        by_numa.setdefault(rank.numa_node, []).append(rank.cpus)
    for numa, shares in by_numa.items():
        cpus = facts.numa[numa]
        assert frozenset().union(*shares) == cpus
        for rng in ranges(cpus):
            # every rank gets one contiguous, equal slice of every range (in rank order)
            size = len(rng) // len(shares)
            assert [sorted(s & set(rng)) for s in shares] == [
                rng[i * size : (i + 1) * size] for i in range(len(shares))
            ]
    owner = {c: rank.local_rank for rank in plan.ranks for c in rank.cpus}
    assert len(owner) == sum(len(rank.cpus) for rank in plan.ranks)  # no CPU in two ranks
    for rule in facts.sibling_rules:
        # the numbering fits the NUMA masks (else it could not be the real one) ...
        assert all(sibling(rule, c, ncpus) in cpus for cpus in facts.numa.values() for c in cpus), (
            f"{rule} pairs CPUs of different NUMA nodes"
        )
        # ... and under it no two ranks would share a physical core
        pairs = {(c, sibling(rule, c, ncpus)) for c in owner}
        shared = {(a, b) for a, b in pairs if owner.get(b, owner[a]) != owner[a]}
        assert shared == set(), f"ranks share cores if siblings are {rule}: {sorted(shared)[:4]}"


@pytest.mark.parametrize("name", NAMES)
def test_plan_splits_every_cpu_range_evenly(name: str) -> None:
    facts = FACTS[name]
    node = node_of(name)
    plan = make_plan(node)
    assert [rank.gpu.index if rank.gpu else None for rank in plan.ranks] == list(range(facts.gpus))
    assert [rank.numa_node for rank in plan.ranks] == facts.gpu_numa
    check_cpu_split(node, plan, facts)
    assert plan.smt_known is False
    assert plan.to_dict()["node"]["smt_known"] is False
    assert len([w for w in plan.warnings if "SMT siblings are unknown" in w]) == 1
    for rank in plan.ranks:
        (nic,) = rank.nics
        assert nic.distance == "PIX"
        assert "CUDA_VISIBLE_DEVICES" not in dict(rank.env)


def test_p5_rank_cpus_are_half_of_each_thread_range() -> None:
    plan = make_plan(node_of("aws-p5-like.xml"))
    got = [(rank.cpus, dict(rank.env)["OMP_NUM_THREADS"]) for rank in plan.ranks]
    assert got == [
        (r(0, 11) | r(96, 107), "24"),
        (r(12, 23) | r(108, 119), "24"),
        (r(24, 35) | r(120, 131), "24"),
        (r(36, 47) | r(132, 143), "24"),
        (r(48, 59) | r(144, 155), "24"),
        (r(60, 71) | r(156, 167), "24"),
        (r(72, 83) | r(168, 179), "24"),
        (r(84, 95) | r(180, 191), "24"),
    ]


def test_ndv4_ranks_follow_their_gpus_numa_not_rank_order() -> None:
    plan = make_plan(node_of("azure-ndv4-like.xml"))
    assert [rank.cpus for rank in plan.ranks] == [
        r(24, 35),
        r(36, 47),
        r(0, 11),
        r(12, 23),
        r(72, 83),
        r(84, 95),
        r(48, 59),
        r(60, 71),
    ]
    hcas = [dict(rank.env)["NCCL_IB_HCA"] for rank in plan.ranks]
    assert len(set(hcas)) == 8  # the two GPUs of a switch take its two HCAs, one each


def test_nic_variables_name_the_pix_devices() -> None:
    node = node_of("aws-p5-like.xml")
    pix = {g.index: sorted(n.name for n in node.nics if n.pci and pci_level(g.pci, n.pci) == "PIX") for g in node.gpus}
    plan = make_plan(node, nics_per_gpu=4)
    for rank in plan.ranks:
        assert rank.gpu is not None
        assert sorted(dict(rank.env)["FI_EFA_IFACE"].split(",")) == pix[rank.gpu.index]
        assert "NCCL_IB_HCA" not in dict(rank.env)  # EFA is not a verbs HCA for NCCL's IB transport


@pytest.mark.parametrize("name", NAMES)
def test_isolate_gpus_sets_cuda_visible_devices(name: str) -> None:
    plan = make_plan(node_of(name), isolate_gpus=True)
    for rank in plan.ranks:
        assert rank.gpu is not None
        assert dict(rank.env)["CUDA_VISIBLE_DEVICES"] == str(rank.gpu.index)
    assert len([w for w in plan.warnings if "SMT siblings are unknown" in w]) == 1


@pytest.mark.parametrize("name", NAMES)
def test_table_counts_cpus_not_cores(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["plan", "--topology", str(FIXTURES / name), "--format", "table"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    header = out.splitlines()[1].split()
    assert "#CPUs" in header and "#cores" not in header
    assert "SMT siblings are unknown" in err and "SMT siblings" not in out
    if name == "aws-p5-like.xml":  # an EFA has no verbs port to name
        assert "rdmap79s0 (PIX)" in out and "rdmap79s0:1" not in out


@pytest.mark.parametrize("name", NAMES)
def test_show_does_not_count_cores_it_cannot_know(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["show", "--topology", str(FIXTURES / name)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    first = out.splitlines()[0]
    assert "cores unknown" in first and "SMT unknown" in first and " cores," not in first


def test_smt_options_without_smt_facts() -> None:
    """One thread per core cannot be chosen without knowing the cores; a reserved core is a CPU of
    each range (0 and 96 on p5: one core under Linux's n / n+96 numbering), said once."""
    node = node_of("aws-p5-like.xml")
    with pytest.raises(UsageError, match="--smt one-per-core needs to know which CPUs share a core"):
        make_plan(node, smt="one-per-core")
    plan = make_plan(node, reserve_per_numa=1)
    held = set().union(*(r.cpus for r in plan.ranks))
    assert {0, 96, 48, 144}.isdisjoint(held) and {1, 97, 49, 145} <= held
    assert plan.ranks[0].cpulist == "1-12,97-108"
    assert sum("--reserve-per-numa 1 with SMT siblings unknown" in w for w in plan.warnings) == 1
