"""Issue 22 items 5-7 on gathered trees of odd machines (fixtures/odd, fixtures/gen_odd.py): a memory-less
NUMA node, CPUs in no NUMA node, and a ConnectX whose RDMA stack is not loaded. The facts come from
pinctl.kernel readers and the pure join (pinctl.discovery.memory, merge), whatever loaded the tree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from test_fixtures_fresh import snapshot

from pinctl import api
from pinctl.cli.app import run
from pinctl.cpuset import parse_list
from pinctl.doctor import numa, rdma
from pinctl.doctor.finding import DoctorContext
from pinctl.kernel.files import KernelFiles
from pinctl.nodejson import node_to_dict

REPO = Path(__file__).resolve().parents[1]
ODD = REPO / "fixtures" / "odd"
NODE_SCHEMA = json.loads((REPO / "pinctl" / "schemas" / "node-v1.json").read_text())


def discover(name: str):  # type: ignore[no-untyped-def]
    return api.discover(root=str(ODD / name), nvml=False)


def test_odd_trees_regenerate_identically(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(REPO / "fixtures" / "gen_odd.py"), str(tmp_path)], check=True)
    assert snapshot(tmp_path) == snapshot(ODD)


# --- item 5: a NUMA node with 0 kB is memory-less ------------------------------------------------------


def test_memoryless_node_is_shown_as_such(capsys: pytest.CaptureFixture[str]) -> None:
    node = discover("memoryless")
    sizes = {n.os_index: n.memory_bytes for n in node.numa_nodes}
    assert sizes == {0: 64 << 30, 1: 0}
    data = node_to_dict(node)
    jsonschema.validate(data, NODE_SCHEMA)
    assert [n["memoryless"] for n in data["numa_nodes"]] == [False, True]
    assert run(["show", "--root", str(ODD / "memoryless")]) == 0
    out = capsys.readouterr().out
    assert "1 memory-less" in out
    row = next(line for line in out.splitlines() if line.startswith("1 "))
    assert "0 (memory-less)" in row


def test_memory_never_bound_to_a_memoryless_node() -> None:
    node = discover("memoryless")
    for policy in ("bind", "preferred", "interleave"):
        plan = api.make_plan(node, mem_policy=policy)
        assert [(r.numa_node, sorted(r.mems)) for r in plan.ranks] == [(0, [0]), (1, [0])], policy
        assert any("NUMA node 1 has no memory (memory-less): its ranks' memory goes to node 0, the nearest with "
                   "memory" in w for w in plan.warnings)  # fmt: skip


def test_doctor_sees_the_memoryless_node() -> None:
    ctx = DoctorContext(files=KernelFiles(str(ODD / "memoryless")), node=discover("memoryless"))
    (finding,) = numa.memoryless_node(ctx)
    assert finding.severity == "warn" and finding.subject == "NUMA node 1"
    assert "CPUs 4-7 but no memory" in finding.summary


# --- item 6: CPUs in no NUMA node ----------------------------------------------------------------------


def test_cpus_without_a_node_are_named() -> None:
    node = discover("cpus-without-node")
    assert any(n.startswith("CPUs 4-7,12-15 belong to no NUMA node") for n in node.notes)


@pytest.mark.parametrize("ranks", [3, 4, 6])
def test_cpus_without_a_node_are_never_pooled_across_packages(ranks: int) -> None:
    node = discover("cpus-without-node")
    packages = {p.os_index: p.cpus for p in node.packages}
    l3s = [g.cpus for g in node.l3_groups]
    plan = api.make_plan(node, ranks=ranks)
    assert len(plan.ranks) == ranks
    for r in plan.ranks:
        assert sum(1 for cpus in packages.values() if r.cpus & cpus) == 1, sorted(r.cpus)
        assert sum(1 for cpus in l3s if r.cpus & cpus) == 1, sorted(r.cpus)
        stray = not any(r.cpus & n.cpus for n in node.numa_nodes)
        assert (r.numa_node is None, r.mem_policy, bool(r.mems)) == ((True, "local", False) if stray
                                                                      else (False, "bind", True))  # fmt: skip
    if ranks >= 4:
        assert any("CPUs 4-7,12-15 belong to no NUMA node" in w for w in plan.warnings)


def test_cpu_only_plan_prefers_numa_nodes_over_node_less_cpus() -> None:
    plan = api.make_plan(discover("cpus-without-node"), ranks=2)
    assert [sorted(r.cpus) for r in plan.ranks] == [[0, 1, 2, 3], [8, 9, 10, 11]]


# --- item 7: mlx5_core without an RDMA device ----------------------------------------------------------


def test_connectx_without_rdma_stack_is_named_in_show(capsys: pytest.CaptureFixture[str]) -> None:
    node = discover("mlx5-no-rdma")
    assert [n.name for n in node.nics if n.rdma] == ["mlx5_0"]
    notes = [n for n in node.notes if n.startswith("ConnectX 0000:18:00.0 (mlx5_core")]
    assert len(notes) == 1 and "modprobe mlx5_ib" in notes[0] and "rdma-core" in notes[0]
    assert run(["show", "--root", str(ODD / "mlx5-no-rdma")]) == 0
    assert "ConnectX 0000:18:00.0 (mlx5_core, NUMA node 0) has no RDMA device" in capsys.readouterr().out


def test_doctor_fails_connectx_without_rdma_stack() -> None:
    ctx = DoctorContext(files=KernelFiles(str(ODD / "mlx5-no-rdma")), node=None)
    (finding,) = rdma.stack_missing(ctx)
    assert (finding.severity, finding.subject) == ("fail", "ConnectX 0000:18:00.0")
    assert "mlx5_ib" in (finding.remedy or "") and "rdma-core" in (finding.remedy or "")
    good = rdma.stack_missing(DoctorContext(files=KernelFiles(str(REPO / "fixtures" / "doctor" / "dgx"))))
    assert [f.severity for f in good] == ["ok"]


def test_doctor_cli_reports_the_stack(capsys: pytest.CaptureFixture[str]) -> None:
    rc = run(["doctor", "--root", str(ODD / "mlx5-no-rdma"), "--json"])
    data = json.loads(capsys.readouterr().out)
    found = [f for f in data["findings"] if f["check"] == "rdma.stack-missing"]
    assert rc != 0 and [f["level"] for f in found] == ["fail"]
    assert parse_list("0-7") == discover("mlx5-no-rdma").cpus


def test_memoryless_node_in_an_hwloc_xml(tmp_path: Path) -> None:
    """hwloc writes a node's size as local_memory; 0 beside nodes with memory is memory-less, not unknown."""
    text = (REPO / "fixtures" / "hwloc" / "dgx-h100.xml").read_text()
    node1 = 'os_index="1" '
    at = text.index(node1, text.index('type="NUMANode" os_index="1"'))
    end = text.index(">", at)
    head = text[at:end]
    size = head[head.index('local_memory="') :].split('"')[1]
    path = tmp_path / "memoryless.xml"
    path.write_text(text[:at] + head.replace(f'local_memory="{size}"', 'local_memory="0"') + text[end:])
    node = api.discover(topology=str(path), nvml=False)
    assert [n.memory_bytes for n in node.numa_nodes][1] == 0
    plan = api.make_plan(node)
    assert {r.numa_node for r in plan.ranks} == {0, 1} and all(r.mems == frozenset({0}) for r in plan.ranks)
    assert any("NUMA node 1 has no memory (memory-less)" in w for w in plan.warnings)
