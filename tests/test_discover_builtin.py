"""The built-in discovery engine on its own: it runs where pyhwloc does not (the second CI run).

What a user checks: the facts of a known machine from its hwloc XML, the engine switch
(``PINCTL_DISCOVERY``) and its one-line refusal, the ``-v`` note when pyhwloc is absent,
``snapshot`` without pyhwloc, and the gathered captures of ../shared/topologies.
Agreement with libhwloc is tests/test_discovery_parity.py's job.
"""

from __future__ import annotations

import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pinctl.cli.main import main
from pinctl.discovery import discover, engine
from pinctl.discovery.builtin import load_builtin
from pinctl.discovery.builtin.tree import format_bitmap, parse_bitmap
from pinctl.errors import TopologyError

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures" / "hwloc"
SHARED = ROOT.parent / "shared" / "topologies"
TARS = sorted(SHARED.glob("*.tar.bz2")) if SHARED.is_dir() else []


@pytest.fixture
def builtin_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PINCTL_DISCOVERY", "builtin")


@pytest.fixture
def no_pyhwloc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Auto mode on a machine where pyhwloc does not import."""

    def missing() -> str:
        raise TopologyError("pyhwloc is not usable: No module named 'pyhwloc'")

    monkeypatch.delenv("PINCTL_DISCOVERY", raising=False)
    monkeypatch.setattr(engine, "ensure_pyhwloc", missing)
    monkeypatch.setattr(engine, "_told", False)


def test_dgx_h100_facts(builtin_engine: None) -> None:
    node = discover(topology=str(FIXTURES / "dgx-h100.xml"))
    assert node.hostname == "dgx-h100-01"
    assert [n.os_index for n in node.numa_nodes] == [0, 1]
    assert len(node.cpus) == 224 and len(node.cores) == 112
    assert [g.numa_node for g in node.gpus] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert node.gpus[0].name == "NVIDIA H100 80GB HBM3"
    assert len([n for n in node.nics if n.rdma]) == 12
    assert node.distance(0, 1) == 21
    assert node.gpus[0].pci.switches, "GPUs sit behind PCIe switches on a DGX H100"


def test_gpu_memory_nodes(builtin_engine: None) -> None:
    node = discover(topology=str(FIXTURES / "gpu-memory-numa.xml"))
    gpu_nodes = [n for n in node.numa_nodes if n.kind == "gpu"]
    assert gpu_nodes and all(n.cpuless for n in gpu_nodes)
    assert {g.memory_numa_node for g in node.gpus} >= {n.os_index for n in gpu_nodes}


def test_hwloc1_xml_refused_with_the_fix(builtin_engine: None, tmp_path: Path) -> None:
    old = tmp_path / "old.xml"
    old.write_text('<?xml version="1.0"?><topology><object type="Machine" os_index="0"/></topology>')
    with pytest.raises(TopologyError, match=r"hwloc 1\.x XML"):
        load_builtin(xml_path=str(old))


def test_unknown_engine_is_one_line(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PINCTL_DISCOVERY", "libhwloc")
    rc = main(["show", "--topology", str(FIXTURES / "dgx-h100.xml")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip() == "pinctl: error: PINCTL_DISCOVERY='libhwloc': expected hwloc, builtin or auto"


def test_verbose_says_once_which_engine(capsys: pytest.CaptureFixture[str], no_pyhwloc: None) -> None:
    rc = main(["-v", "show", "--topology", str(FIXTURES / "dgx-h100.xml"), "--no-nvml"])
    captured = capsys.readouterr()
    assert rc == 0 and "dgx-h100-01" in captured.out
    assert captured.err.count("built-in reader") == 1
    assert "pyhwloc is not usable" in captured.err
    rc = main(["show", "--topology", str(FIXTURES / "dgx-a100.xml")])
    assert rc == 0 and "built-in reader" not in capsys.readouterr().err


def test_quiet_without_verbose(capsys: pytest.CaptureFixture[str], no_pyhwloc: None) -> None:
    assert engine.listener is None, "-v's listener must not outlive its command"
    assert main(["show", "--topology", str(FIXTURES / "dgx-h100.xml")]) == 0
    assert "built-in" not in capsys.readouterr().err


def test_snapshot_without_pyhwloc_reads_back(tmp_path: Path, no_pyhwloc: None) -> None:
    out = tmp_path / "snap.xml"
    assert main(["snapshot", "-o", str(out)]) == 0
    text = out.read_text()
    assert '<topology version="2.0">' in text
    live = load_builtin()
    again = load_builtin(xml_path=str(out))
    assert replace(again, source="live") == replace(live, allowed_cpus=again.allowed_cpus)
    assert live.allowed_cpus <= again.allowed_cpus


@pytest.mark.parametrize("tar", TARS, ids=lambda p: p.name)
def test_gathered_capture(tar: Path, tmp_path: Path, builtin_engine: None) -> None:
    with tarfile.open(tar) as t:
        t.extractall(tmp_path, filter="tar") if hasattr(tarfile, "tar_filter") else t.extractall(tmp_path)
    tree = next(p for p in tmp_path.iterdir() if (p / "sys").is_dir())
    node = discover(root=str(tree), env={})
    assert node.cpus and node.numa_nodes and node.cores
    assert all(n.numa_node is None or node.numa(n.numa_node) for n in (*node.gpus, *node.nics))


def test_fixture_tree_without_cpu_topology_is_refused(builtin_engine: None) -> None:
    with pytest.raises(TopologyError, match="no sysfs cpu topology"):
        discover(root=str(ROOT / "fixtures" / "doctor" / "dgx"), env={})


@given(st.frozensets(st.integers(min_value=0, max_value=1100), max_size=64))
def test_bitmap_round_trip(cpus: frozenset[int]) -> None:
    assert parse_bitmap(format_bitmap(cpus)) == cpus


def test_bitmap_hwloc_spellings() -> None:
    assert parse_bitmap("0x0000ffff,0xffffffff") == frozenset(range(48))
    assert parse_bitmap("0xf...f,0x00000003") == frozenset({0, 1})
    assert parse_bitmap("0x0") == frozenset()
