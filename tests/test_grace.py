"""Issue 22 item 8: NVIDIA Grace nodes (GH200, GB200 compute tray; fixtures/grace from fixtures/gen_grace.py),
as an hwloc XML and as a gathered tree. Grace cores have no SMT; each GPU's HBM is a CPU-less NUMA node
(8 node ids per GPU, the memory node first, the rest empty for MIG). show names the GPU memory nodes
with their GPU; a plan binds a rank's memory to the Grace node of its GPU, never to HBM unless
`--mem-policy bind+gpu` / `interleave+gpu` asks, and picks the NIC nearest that GPU."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
from test_fixtures_fresh import snapshot

from pinctl import api
from pinctl.cli.app import run
from pinctl.discovery.memory import tie_gpu_memory
from pinctl.discovery.merge import apply_nvml
from pinctl.discovery.nvml import NvmlGpu, NvmlResult
from pinctl.distance import c2c_attached
from pinctl.doctor import numa, rdma
from pinctl.doctor.finding import DoctorContext
from pinctl.kernel.files import KernelFiles
from pinctl.model import Node, PciAddress
from pinctl.nodejson import node_to_dict

REPO = Path(__file__).resolve().parents[1]
GRACE = REPO / "fixtures" / "grace"
NODE_SCHEMA = json.loads((REPO / "pinctl" / "schemas" / "node-v1.json").read_text())
SOURCES = [("gh200", "xml"), ("gh200", "root"), ("gb200-tray", "xml"), ("gb200-tray", "root")]
# GPU index -> (its Grace node, its HBM node), from NVIDIA's numbering (fixtures/gen_grace.py)
HOMES = {"gh200": {0: (0, 1)}, "gb200-tray": {0: (0, 2), 1: (0, 10), 2: (1, 18), 3: (1, 26)}}


TREES: dict[str, Path] = {}  # the session's generated trees (the grace_trees fixture of tests/conftest.py)


@pytest.fixture(autouse=True)
def _trees(grace_trees: Path) -> None:
    TREES["top"] = grace_trees


def tree(name: str) -> Path:
    return TREES["top"] / name


@functools.cache
def _load(name: str, kind: str, top: Path) -> Node:
    if kind == "xml":
        return api.discover(topology=str(GRACE / f"{name}.xml"), nvml=False)
    return api.discover(root=str(top / name), nvml=False)


def load(name: str, kind: str) -> Node:
    return _load(name, kind, TREES["top"])


def test_grace_xml_regenerates_identically() -> None:
    """The committed XMLs are what the generator writes (the trees come from the same run)."""
    trees = tree("")
    for name in ("gh200.xml", "gb200-tray.xml"):
        assert (trees / name).read_bytes() == (GRACE / name).read_bytes(), f"{name} drifted: regenerate"
    again = Path(str(TREES["top"]) + "-again")
    subprocess.run([sys.executable, str(REPO / "fixtures" / "gen_grace.py"), str(again), "--trees"], check=True)
    assert snapshot(again) == snapshot(trees)


@pytest.mark.parametrize(("name", "kind"), SOURCES)
def test_grace_cores_and_gpu_memory_nodes(name: str, kind: str) -> None:
    node = load(name, kind)
    assert node.smt_known and all(len(c.pus) == 1 for c in node.cores)  # Neoverse V2: no SMT
    assert len(node.cpus) == 72 * len(node.packages)
    homes = HOMES[name]
    assert {g.index: (g.numa_node, g.memory_numa_node) for g in node.gpus} == homes
    for gpu, (_, hbm) in homes.items():
        n = node.numa(hbm)
        assert n is not None and n.cpuless and n.kind == "gpu" and n.memory_bytes
        assert node.memory_gpu(hbm) == (node.gpus[gpu], True)
    data = node_to_dict(node)
    jsonschema.validate(data, NODE_SCHEMA)
    named = {n["os_index"]: n["gpu"] for n in data["numa_nodes"] if n["gpu"] is not None}
    assert {hbm: gpu for gpu, (_, hbm) in homes.items()}.items() <= named.items()
    if kind == "root":  # the tree lists the 7 empty MIG nodes after each HBM node; hwloc's XML does not
        for gpu, (_, hbm) in homes.items():
            for k in range(hbm + 1, hbm + 8):
                assert node.memory_gpu(k) == (node.gpus[gpu], False) and node.numa(k).memory_bytes == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(("name", "kind"), SOURCES)
def test_show_names_each_gpu_memory_node(name: str, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    flag = ["--topology", str(GRACE / f"{name}.xml")] if kind == "xml" else ["--root", str(tree(name))]
    assert run(["show", *flag]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line[:1].isdigit()}
    for gpu, (grace, hbm) in HOMES[name].items():
        assert f"GPU{gpu} memory" in rows[str(hbm)] and "gpu (CPU-less)" in rows[str(hbm)]
        assert re.search(rf"\bGPU{gpu}\b(?! )", rows[str(grace)])
        if kind == "root":
            assert "0 (memory-less)" in rows[str(hbm + 1)] and f"GPU{gpu} (reserved for MIG)" in rows[str(hbm + 1)]


@pytest.mark.parametrize(("name", "kind"), SOURCES)
def test_plan_binds_cpu_memory_to_the_gpus_grace_node(name: str, kind: str) -> None:
    node = load(name, kind)
    homes = HOMES[name]
    for policy in ("bind", "preferred", "interleave"):
        plan = api.make_plan(node, mem_policy=policy)
        assert [(r.gpu.index if r.gpu else None, r.numa_node, sorted(r.mems)) for r in plan.ranks] == [
            (g, grace, [grace]) for g, (grace, _) in homes.items()
        ], policy
    for policy, stored in (("bind+gpu", "bind"), ("interleave+gpu", "interleave")):
        plan = api.make_plan(node, mem_policy=policy)
        assert [(r.mem_policy, sorted(r.mems)) for r in plan.ranks] == [
            (stored, [grace, hbm]) for grace, hbm in homes.values()
        ], policy


@pytest.mark.parametrize(("name", "kind"), SOURCES)
def test_plan_picks_the_nic_nearest_each_gpu(name: str, kind: str) -> None:
    node = load(name, kind)
    plan = api.make_plan(node)
    nics = {n.name: n for n in node.nics}
    used = []
    for r in plan.ranks:
        (nic,) = r.nics
        assert r.gpu is not None and nics[nic.name].numa_node == HOMES[name][r.gpu.index][0]
        assert nics[nic.name].kind == "infiniband"  # the ConnectX-7 compute NICs, not the BlueField-3
        used.append(nic.name)
    assert len(set(used)) == len(used)  # two GPUs on one Grace take its two ConnectX-7s


def test_gpu_memory_needs_asking_from_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["plan", "--json", "--root", str(tree("gh200"))]) == 0
    (rank,) = json.loads(capsys.readouterr().out)["ranks"]
    assert rank["mems"] == [0] and rank["mem_policy"] == "bind"
    assert run(["plan", "--json", "--root", str(tree("gh200")), "--mem-policy", "bind+gpu"]) == 0
    (rank,) = json.loads(capsys.readouterr().out)["ranks"]
    assert rank["mems"] == [0, 1] and rank["mem_policy"] == "bind"


def test_gpu_memory_on_a_node_without_any_warns() -> None:
    node = api.discover(topology=str(REPO / "fixtures" / "hwloc" / "dgx-h100.xml"), nvml=False)
    plan = api.make_plan(node, mem_policy="bind+gpu")
    assert all(r.mem_policy == "bind" and len(r.mems) == 1 for r in plan.ranks)
    # One line for all eight GPUs, not eight copies of one sentence.
    (said,) = [w for w in plan.warnings if "bind+gpu" in w]
    assert said.startswith("GPUs 0-7: ") and "CPU memory only" in said


def test_gpu_memory_for_cpu_only_ranks_says_they_have_no_gpu() -> None:
    node = api.discover(topology=str(REPO / "fixtures" / "hwloc" / "dgx-h100.xml"), nvml=False)
    plan = api.make_plan(node, ranks=2, mem_policy="interleave+gpu")
    (said,) = [w for w in plan.warnings if "interleave+gpu" in w]
    assert "CPU-only ranks have no GPU memory" in said and "no rank's GPU has no" not in said


def test_doctor_sees_gpu_and_mig_nodes_as_expected() -> None:
    node = load("gh200", "root")
    ctx = DoctorContext(files=KernelFiles(str(tree("gh200"))), node=node)
    found = numa.cpuless_node(ctx)
    assert [f.severity for f in found] == ["ok"] * 8
    assert "GPU 0's memory" in found[0].summary and "reserved for GPU 0's MIG" in found[1].summary
    (memless,) = numa.memoryless_node(ctx)
    assert memless.severity == "ok"


def untied(node: Node, drop: range | set[int]) -> Node:
    """*node* as a source that named no GPU memory node, without NUMA nodes *drop*."""
    numa = tuple(replace(n, kind="dram") for n in node.numa_nodes if n.os_index not in drop)
    return replace(node, gpus=tuple(replace(g, memory_numa_node=None) for g in node.gpus), numa_nodes=numa)


def test_sysfs_tie_needs_one_memory_node_per_gpu() -> None:
    """A Grace with 2 GPUs but one GPU memory block: its GPUs get none; the other Grace's still tie."""
    tied = tie_gpu_memory(untied(load("gb200-tray", "root"), range(10, 18)))
    assert [g.memory_numa_node for g in tied.gpus] == [None, None, 18, 26]
    assert tied.numa(2).kind == "dram" and tied.numa(18).kind == "gpu"  # type: ignore[union-attr]


def test_a_cpu_less_memory_node_without_the_mig_block_is_not_gpu_memory() -> None:
    """CXL memory beside a GPU (a CPU-less node with memory, no 7 empty nodes after it) is not taken for HBM."""
    tied = tie_gpu_memory(untied(load("gh200", "root"), range(2, 9)))
    assert tied.gpus[0].memory_numa_node is None and tied.numa(1).kind == "dram"  # type: ignore[union-attr]
    plan = api.make_plan(tied, mem_policy="bind+gpu")
    assert [sorted(r.mems) for r in plan.ranks] == [[0]]


def test_nvml_numa_node_id_names_the_gpu_memory_node(nvmlshim: Path, tmp_path: Path) -> None:
    """nvmlDeviceGetNumaNodeId through NVIDIA's binding over tests/nvmlshim, then joined on the bus id."""
    conf = tmp_path / "gh200.conf"
    conf.write_text("preset = empty\ngpus = 1\ngpu.0.bus_id = 0009:01:00.0\ngpu.0.name = NVIDIA GH200 480GB\n"
                    "gpu.0.numa_node = 0\ngpu.0.numa_node_id = 1\n")  # fmt: skip
    code = ("import json; from pinctl.discovery.nvml import query_nvml; r, why = query_nvml(); "
            "print(json.dumps([[str(g.pci), g.numa_node_id] for g in r.gpus]))")  # fmt: skip
    env = {**os.environ, "LD_LIBRARY_PATH": str(nvmlshim), "FAKE_NVML_CONFIG": str(conf)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [["0009:01:00.0", 1]]
    node = load("gh200", "root")
    bare = replace(node, gpus=tuple(replace(g, memory_numa_node=None) for g in node.gpus))
    joined = apply_nvml(bare, NvmlResult("570.0", (NvmlGpu(0, PciAddress.parse("0009:01:00.0"), numa_node_id=1),)))
    assert joined.gpus[0].memory_numa_node == 1 and joined.numa(1).kind == "gpu"  # type: ignore[union-attr]


GDR_FAR = "no RDMA NIC shares a PCIe switch"


def gdr_findings(node: Node) -> list[tuple[str, str, str]]:
    return [
        (f.severity, f.subject, f.summary) for f in rdma.no_gdr_path(DoctorContext(files=KernelFiles("/"), node=node))
    ]


@pytest.mark.parametrize(("name", "kind"), SOURCES)
def test_a_nic_on_the_gpus_own_grace_is_its_nearest_gdr_path(name: str, kind: str) -> None:
    """NVLink-C2C GPUs reach a NIC through their own Grace's PCIe: NODE there is the best path, not a warning."""
    node = load(name, kind)
    assert all(c2c_attached(g) for g in node.gpus)
    plan = api.make_plan(node)
    assert [w for w in plan.warnings if GDR_FAR in w or "NVLink-C2C" in w] == []
    assert [s for s, _, _ in gdr_findings(node)] == ["ok"]


def one_grace_nics(node: Node) -> Node:
    """*node* with its RDMA NICs on Grace 0 only (a tray cabled for one socket)."""
    return replace(node, nics=tuple(n for n in node.nics if n.numa_node == 0))


@pytest.mark.parametrize("kind", ["xml", "root"])
def test_a_gb200_gpu_whose_nics_are_on_the_other_grace_is_warned(kind: str) -> None:
    node = one_grace_nics(load("gb200-tray", kind))
    plan = api.make_plan(node)
    notes = [w for w in plan.warnings if "NVLink-C2C" in w]
    assert len(notes) == 1 and notes[0].startswith("GPUs 2-3: ") and "nearest is SYS" in notes[0], plan.warnings
    assert not [w for w in plan.warnings if GDR_FAR in w]
    found = gdr_findings(node)
    assert [(s, subject.split()[1]) for s, subject, _ in found] == [("warn", "2"), ("warn", "3")]
    assert all("another CPU (SYS)" in summary for _, _, summary in found)


def test_a_gpu_without_c2c_facts_keeps_the_pcie_warning() -> None:
    """The same tray as a source that named no GPU memory node: judged by PCIe alone, as on x86."""
    node = untied(load("gb200-tray", "root"), set())
    assert not any(c2c_attached(g) for g in node.gpus)
    assert any(w.startswith("GPUs 0-3: " + GDR_FAR) and "nearest is NODE" in w for w in api.make_plan(node).warnings)
    assert [s for s, _, _ in gdr_findings(node)] == ["warn"] * 4
