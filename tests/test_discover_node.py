"""discover(): which sources and enrichments each input gets, and the normalized order."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import pinctl.discovery as discover_pkg
import pinctl.discovery.engine as engine_mod
import pinctl.discovery.nvml as nvml_mod
from pinctl.discovery import discover
from pinctl.discovery.merge import normalize
from pinctl.discovery.nvml import NvmlGpu, NvmlResult
from pinctl.errors import TopologyError, UsageError
from pinctl.model import Core, Gpu, Nic, Node, PciAddress, PciInfo, Storage, natural_key

ROOT = Path(__file__).resolve().parents[1]
TOPOLOGIES = ROOT.parent / "shared" / "topologies"
A = PciAddress.parse


def small_node(source: str = "fake") -> Node:
    gpus = (Gpu(0, PciInfo(A("0000:43:00.0"))), Gpu(1, PciInfo(A("0000:1b:00.0"))))
    nics = (Nic("mlx5_1", "infiniband", True, None), Nic("eno1", "ethernet", False, None))
    return Node("h", source, (), (), (Core((0,)), Core((1,))), (), frozenset({0, 1}), gpus=gpus, nics=nics)


class Calls:
    def __init__(self) -> None:
        self.hwloc: list[dict[str, Any]] = []
        self.sysfs_roots: list[str] = []
        self.nvml = 0


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Fake hwloc (whichever engine), sysfs enrichment and NVML, recording how discover() used them."""
    seen = Calls()

    def load_hwloc(**kwargs: Any) -> Node:
        seen.hwloc.append(kwargs)
        return small_node()

    def enrich(sysfs: Any, node: Node) -> Node:
        seen.sysfs_roots.append(sysfs.root)
        return node

    def query() -> tuple[NvmlResult | None, str | None]:
        seen.nvml += 1
        return NvmlResult("1", (NvmlGpu(0, A("0000:1b:00.0"), uuid="GPU-a"),)), None

    monkeypatch.setattr(engine_mod, "load", load_hwloc)
    monkeypatch.setattr(discover_pkg, "enrich", enrich)
    monkeypatch.setattr(nvml_mod, "query_nvml", query)
    return seen


def test_topology_and_root_together_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        discover(topology=str(tmp_path / "x.xml"), root=str(tmp_path))


def test_nccl_file_gets_no_enrichment(calls: Calls) -> None:
    path = TOPOLOGIES / "azure-ndv4.nccl.xml"
    if not path.exists():
        pytest.skip("topology corpus not available")
    node = discover(topology=str(path))
    assert node.source == f"nccl-xml:{path}"
    assert (calls.hwloc, calls.sysfs_roots, calls.nvml) == ([], [], 0)
    assert [g.index for g in node.gpus] == list(range(8))
    assert [g.pci.address for g in node.gpus] == sorted(g.pci.address for g in node.gpus)


def test_hwloc_file_goes_to_hwloc_without_enrichment(calls: Calls, tmp_path: Path) -> None:
    path = tmp_path / "t.xml"
    path.write_text('<?xml version="1.0"?><topology version="2.0"></topology>')
    discover(topology=str(path))
    assert calls.hwloc == [{"xml_path": str(path)}]
    assert (calls.sysfs_roots, calls.nvml) == ([], 0)


def test_unknown_file_is_a_topology_error(calls: Calls, tmp_path: Path) -> None:
    path = tmp_path / "t.xml"
    path.write_text("<nodes/>")
    with pytest.raises(TopologyError):
        discover(topology=str(path))


def test_root_gets_sysfs_of_that_root_and_no_nvml(calls: Calls, tmp_path: Path) -> None:
    discover(root=str(tmp_path), nvml=True)
    assert calls.hwloc == [{"fsroot": str(tmp_path)}]
    assert calls.sysfs_roots == [str(tmp_path)]
    assert calls.nvml == 0


def test_live_gets_sysfs_and_nvml(calls: Calls) -> None:
    node = discover()
    assert calls.hwloc == [{}]
    assert calls.sysfs_roots == ["/"]
    assert calls.nvml == 1
    assert [(str(g.pci.address), g.index, g.uuid) for g in node.gpus] == [
        ("0000:1b:00.0", 0, "GPU-a"),
        ("0000:43:00.0", 1, None),
    ]


def test_live_without_nvml_or_with_nvml_missing(calls: Calls, monkeypatch: pytest.MonkeyPatch) -> None:
    discover(nvml=False)
    assert calls.nvml == 0
    monkeypatch.setattr(nvml_mod, "query_nvml", lambda: (None, "NVML not available: test"))
    node = discover()
    assert "NVML not available: test" in node.notes


def test_root_enrichment_reads_the_gathered_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the real enrichment, a gathered tree's RDMA ports and NVMe reach the node (dgx-h100 fixture)."""
    monkeypatch.setattr(engine_mod, "load", lambda **_: small_node())
    node = discover(root=str(ROOT / "fixtures" / "sysfs" / "dgx-h100"))
    names = [n.name for n in node.nics]
    assert names == sorted(names, key=natural_key)  # as people count: mlx5_2 before mlx5_10
    assert names.index("mlx5_2") < names.index("mlx5_10")
    assert "mlx5_0" in names and "mlx5_11" in names
    assert {s.name for s in node.storage} == {"nvme0n1", "nvme1n1"}


def test_normalize_orders_gpus_by_pci_and_names() -> None:
    node = small_node()
    node = replace(node, storage=(Storage("nvme1n1", None), Storage("nvme0n1", None)))
    out = normalize(node)
    assert [(g.index, str(g.pci.address)) for g in out.gpus] == [(0, "0000:1b:00.0"), (1, "0000:43:00.0")]
    assert [n.name for n in out.nics] == ["eno1", "mlx5_1"]
    assert [s.name for s in out.storage] == ["nvme0n1", "nvme1n1"]


def test_real_hwloc_file_end_to_end() -> None:
    path = TOPOLOGIES / "hwloc-nvidiaDGX2.xml"
    if not path.exists():
        pytest.skip("topology corpus not available")
    node = discover(topology=str(path))
    assert len(node.gpus) == 16
    assert [g.index for g in node.gpus] == list(range(16))
