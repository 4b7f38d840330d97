"""NCCL topology files: the published cloud files load, and pairings match what SOURCES.md documents."""

from __future__ import annotations

from pathlib import Path

import pytest

from pinctl.discovery.nccl import load_nccl_xml, sniff_topology_file
from pinctl.distance import gpu_level, pci_level
from pinctl.errors import TopologyError
from pinctl.model import Gpu, Nic, Node, PciAddress

TOPOLOGIES = Path(__file__).resolve().parents[1].parent / "shared" / "topologies"


def corpus(name: str) -> str:
    path = TOPOLOGIES / name
    if not path.exists():
        pytest.skip(f"{path} not available")
    return str(path)


def nearest(node: Node, gpu: Gpu) -> tuple[str, list[str]]:
    """The nearest level from *gpu* to any NIC with a PCI device, and the NICs at that level."""
    levels = {nic.name: pci_level(gpu.pci, nic.pci) for nic in node.nics if nic.pci is not None}
    order = ["PIX", "PXB", "PHB", "NODE", "SYS"]
    best = min(levels.values(), key=order.index)
    return best, sorted(n for n, lvl in levels.items() if lvl == best)


def test_ndv4_each_gpu_has_two_pix_hcas() -> None:
    node = load_nccl_xml(corpus("azure-ndv4.nccl.xml"))
    assert len(node.gpus) == 8
    assert len(node.nics) == 8
    assert all(n.kind == "infiniband" and n.rdma for n in node.nics)
    # NCCL copies sysfs's 24-bit class codes; the model keeps 16 bits, as hwloc does
    assert {g.pci.class_id for g in node.gpus} == {0x0302} and {n.pci.class_id for n in node.nics if n.pci} == {0x0207}
    assert [len(n.cpus) for n in node.numa_nodes] == [24, 24, 24, 24]
    for gpu in node.gpus:
        level, nics = nearest(node, gpu)
        assert level == "PIX"
        assert len(nics) == 2
        assert all(n.numa_node == gpu.numa_node for n in node.nics if n.name in nics)
    # The synthetic switch's NUMA domain decides the GPU's locality: 0003 sits in NUMA 0 (CPUs 0-23).
    gpu3 = next(g for g in node.gpus if g.pci.address == PciAddress.parse("0003:00:00.0"))
    assert gpu3.numa_node == 0
    assert gpu3.pci.local_cpus == frozenset(range(24))


def test_ndv5_pairs_gpus_and_hcas_one_to_one() -> None:
    node = load_nccl_xml(corpus("azure-ndv5.nccl.xml"))
    assert len(node.gpus) == 8
    assert len(node.nics) == 8
    paired: set[str] = set()
    for gpu in node.gpus:
        level, nics = nearest(node, gpu)
        assert (level, len(nics)) == ("PIX", 1)
        paired.update(nics)
        assert gpu.pci.link.speed_gts == 32.0
        assert gpu.pci.link.width == 16
    assert len(paired) == 8
    assert [n.cpus for n in node.numa_nodes] == [frozenset(range(48)), frozenset(range(48, 96))]


def test_p4d_two_gpus_share_one_efa() -> None:
    node = load_nccl_xml(corpus("aws-p4d-24xl.nccl.xml"))
    assert len(node.gpus) == 8
    assert [n.kind for n in node.nics] == ["efa"] * 4
    assert [n.name for n in node.nics][:2] == ["rdma@0000:10:1b.0", "rdma@0000:20:1b.0"]  # no <net>: named by PCI
    efa0 = next(n for n in node.nics if n.pci is not None and n.pci.address == PciAddress.parse("0000:10:1b.0"))
    sharing = [str(g.pci.address) for g in node.gpus if efa0.pci and pci_level(g.pci, efa0.pci) == "PIX"]
    assert sharing == ["0000:10:1c.0", "0000:10:1d.0"]
    assert all(g.vendor == "nvidia" for g in node.gpus)
    assert node.gpus[0].pci.link.speed_gts == 8.0


def test_ncv4_nic_without_pci_and_nvlink_facts() -> None:
    node = load_nccl_xml(corpus("azure-ncv4.nccl.xml"))
    assert len(node.gpus) == 4
    (eth0,) = node.nics
    assert (eth0.name, eth0.kind, eth0.rdma, eth0.pci) == ("eth0", "ethernet", False, None)
    assert eth0.ports[0].rate_gbps == 100.0
    assert eth0.ports[0].state is None  # unknown, not down
    assert all(g.nvlinks and g.nvlinks[0].links == 12 for g in node.gpus)
    assert node.gpus[0].pci.link.speed_gts is None  # link_speed="" link_width="0"
    assert any("no PCI device" in n for n in node.notes)


def test_ndv2_devices_directly_under_cpu_are_phb_or_sys() -> None:
    node = load_nccl_xml(corpus("azure-ndv2.nccl.xml"))
    (hca,) = node.nics
    assert hca.pci is not None
    levels = [pci_level(g.pci, hca.pci) for g in node.gpus]
    assert levels == ["PHB"] * 4 + ["SYS"] * 4
    assert gpu_level(node.gpus[0], node.gpus[1]) == "PHB"


@pytest.mark.parametrize("name", ["aws-p5-48xl.nccl.xml", "aws-g5-48xl.nccl.xml"])
def test_bus_id_only_files_are_refused_with_the_reason(name: str) -> None:
    """AWS's skeletons list bus ids only; NCCL completes them from sysfs at run time."""
    with pytest.raises(TopologyError, match=r"lists bus ids only, no GPUs, NICs or CPU sets.*NCCL_TOPO_DUMP_FILE"):
        load_nccl_xml(corpus(name))


def test_model_facts_the_format_lacks_are_marked_unknown() -> None:
    node = load_nccl_xml(corpus("azure-ndv4.nccl.xml"))
    assert node.smt_known is False
    assert node.l3_groups == ()
    assert all(len(c.pus) == 1 for c in node.cores)
    assert node.source.startswith("nccl-xml:")
    assert any("port states unknown" in n for n in node.notes)
    assert all(p.state is None for nic in node.nics for p in nic.ports)


def test_net_elements_name_nics_and_infer_roce(tmp_path: Path) -> None:
    """A NCCL dump from a live node: <nic><net> under the PCI function names the device."""
    path = tmp_path / "t.xml"
    path.write_text(
        '<system version="1"><cpu numaid="0" affinity="0000000f">'
        '<pci busid="0000:17:00.0" class="0x060400">'
        '<pci busid="0000:18:00.0" class="0x020700" link_speed="32.0 GT/s PCIe" link_width="16">'
        '<nic><net name="mlx5_0" dev="0" speed="400000" port="1"/></nic></pci>'
        '<pci busid="0000:19:00.0" class="0x020000"><nic><net name="mlx5_1" port="1"/></nic></pci>'
        '<pci busid="0000:1b:00.0" class="0x030200" vendor="0x10de">'
        '<gpu dev="0"><nvlink target="0000:ff:00.0" count="18" tclass="0x068000"/></gpu></pci>'
        "</pci></cpu></system>"
    )
    node = load_nccl_xml(str(path))
    kinds = {n.name: (n.kind, n.rdma) for n in node.nics}
    assert kinds == {"mlx5_0": ("infiniband", True), "mlx5_1": ("roce", True)}
    mlx5_0 = next(n for n in node.nics if n.name == "mlx5_0")
    assert mlx5_0.ports[0].rate_gbps == 400.0
    (gpu,) = node.gpus
    assert gpu.nvlinks[0].peer == PciAddress.parse("0000:ff:00.0")
    assert gpu.pci.switches == ("0000:17:00.0",)
    assert gpu.pci.host_bridge == "cpu0"
    assert isinstance(mlx5_0, Nic) and mlx5_0.pci is not None
    assert pci_level(gpu.pci, mlx5_0.pci) == "PIX"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("<system><cpu numaid='0'", "not valid XML"),
        ("<root/>", "<root>"),
        ("<system><cpu numaid='0' affinity='zz'/></system>", "affinity"),
        ("<system><cpu numaid='0'><pci busid='nope'/></cpu></system>", "PCI address"),
    ],
)
def test_bad_files_are_one_line_topology_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.xml"
    path.write_text(text)
    with pytest.raises(TopologyError) as info:
        sniff_topology_file(str(path))
        load_nccl_xml(str(path))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_is_a_topology_error(tmp_path: Path) -> None:
    for fn in (sniff_topology_file, load_nccl_xml):
        with pytest.raises(TopologyError, match="cannot read"):
            fn(str(tmp_path / "absent.xml"))


def test_sniff_tells_hwloc_from_nccl() -> None:
    assert sniff_topology_file(corpus("aws-g5-48xl.nccl.xml")) == "nccl"  # opens with a licence comment
    assert sniff_topology_file(corpus("hwloc-nvidiaDGX2.xml")) == "hwloc"
    assert sniff_topology_file(corpus("mpibind-coral-ea.hwloc1.xml")) == "hwloc"


def test_sniff_reads_only_the_start(tmp_path: Path) -> None:
    """A file whose tail is garbage is still sniffed by its root element."""
    path = tmp_path / "big.xml"
    path.write_bytes(b'<?xml version="1.0"?>\n<!-- c -->\n<topology version="2.0">' + b"x" * 1_000_000 + b"<<<")
    assert sniff_topology_file(str(path)) == "hwloc"
