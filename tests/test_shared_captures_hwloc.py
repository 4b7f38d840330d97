"""Real machines' hwloc captures (shared/topologies, see SOURCES.md there) through the discovery
engine in use (pyhwloc, or the built-in reader where it is absent).

Every expected fact below is one SOURCES.md documents for the capture, checked the
way a user would: counts, NUMA placement, and the nvidia-smi level between devices.
"""

from __future__ import annotations

import tarfile
from functools import cache
from pathlib import Path

import pytest

from pinctl.discovery import engine
from pinctl.distance import gpu_level, level_order, pci_level
from pinctl.errors import TopologyError
from pinctl.model import Gpu, Nic, Node

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "topologies"

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="shared topologies not available")


def _hwloc_files() -> list[str]:
    if not SHARED.is_dir():
        return []
    names = [p.name for p in SHARED.glob("*.xml") if not p.name.endswith((".nccl.xml", ".hwloc1.xml"))]
    return sorted(names)


def _hwloc1_files() -> list[str]:
    return sorted(p.name for p in SHARED.glob("*.hwloc1.xml")) if SHARED.is_dir() else []


@cache
def load(name: str) -> Node:
    return engine.load(xml_path=str(SHARED / name))


def nearest_rdma(node: Node, gpu: Gpu) -> tuple[str, list[Nic]]:
    """The nearest level from *gpu* to an RDMA NIC and the NICs at that level."""
    levels = [(pci_level(gpu.pci, n.pci), n) for n in node.nics if n.rdma and n.pci is not None]
    best = min(level_order(level) for level, _ in levels)
    nics = [n for level, n in levels if level_order(level) == best]
    return next(level for level, _ in levels if level_order(level) == best), nics


# name -> (packages, NUMA nodes, PUs, GPUs), from SOURCES.md
DOCUMENTED = {
    "hwloc-nvidiaDGX2.xml": (2, 2, 4, 16),
    "hwloc-power8gpudistances.xml": (2, 2, 16, 4),
    "hwloc-24em64t-2n6c2t-pci.xml": (2, 2, 24, 3),
    "hwloc-192em64t-24n8c2t.xml": (24, 24, 384, 0),
    "hwloc-32em64t-2n8c+dax+nvme+mic+dimms.xml": (2, 2, 16, 0),
    "hwloc-40intel64-2g2n4c+pcilocality.forcedlocality.xml": (4, 4, 40, 0),
    "psmgmt-jwb0004-juwels-booster.xml": (2, 8, 96, 4),
    "psmgmt-jrc0323-jureca-dc-gpu.xml": (2, 8, 256, 4),
    "psmgmt-jwc09n003-juwels-cluster-gpu.v2conv.xml": (2, 2, 80, 4),
    "psmgmt-mel2001-meluxina-gpu.v2conv.xml": (2, 8, 128, 4),
    "psmgmt-jsfc005-jusuf-gpu.v2conv.xml": (2, 8, 256, 1),
    "psmgmt-dp-esb01-deep-est-esb.v2conv.xml": (1, 1, 16, 1),
    "psmgmt-j3c053-juropa3-gpu.v2conv.xml": (2, 2, 32, 2),
    "psmgmt-dp-intelmax01-deep-sea-xeonmax.xml": (2, 8, 128, 0),
    "mpibind-coral-lassen.xml": (2, 2, 160, 4),
    "mpibind-coral-ea.v2conv.xml": (2, 2, 160, 4),
    "mpibind-cts1-pascal.xml": (2, 2, 72, 2),
    "mpibind-epyc-corona.xml": (2, 8, 96, 4),
    "mpibind-epyc-corona-p2.xml": (2, 2, 96, 8),
    "mpibind-eas-tioga.xml": (1, 4, 128, 8),
    "mpibind-g4dnmetal.xml": (2, 2, 96, 8),
}


@pytest.mark.parametrize("name", _hwloc_files())
def test_every_hwloc_capture_loads_consistently(name: str) -> None:
    node = load(name)
    assert node.source == f"hwloc-xml:{SHARED / name}"
    cpus = node.cpus
    assert cpus and node.allowed_cpus <= cpus
    # Every PU in exactly one core; CPU NUMA nodes and packages partition the CPUs.
    pus = [pu for core in node.cores for pu in core.pus]
    assert len(pus) == len(set(pus))
    cpu_nodes = [n for n in node.numa_nodes if n.cpus]
    assert sum(len(n.cpus) for n in cpu_nodes) == len(cpus) == len(frozenset().union(*(n.cpus for n in cpu_nodes)))
    if node.packages:
        assert frozenset().union(*(p.cpus for p in node.packages)) == cpus
    for core in node.cores:
        assert core.numa_node is not None and set(core.pus) <= node.numa(core.numa_node).cpus  # type: ignore[union-attr]
    assert [g.index for g in node.gpus] == list(range(len(node.gpus)))
    assert [g.pci.address for g in node.gpus] == sorted(g.pci.address for g in node.gpus)
    for dev in (
        [g.pci for g in node.gpus] + [n.pci for n in node.nics if n.pci] + [s.pci for s in node.storage if s.pci]
    ):
        assert dev.numa_node is None or dev.numa_node in {n.os_index for n in cpu_nodes}
        assert dev.local_cpus <= cpus
    if name in DOCUMENTED:
        packages, numa, n_pus, gpus = DOCUMENTED[name]
        assert (len(node.packages), len(node.numa_nodes), len(cpus), len(node.gpus)) == (packages, numa, n_pus, gpus)
    if len(node.numa_nodes) > 1:
        assert node.numa_distances is not None
        for a in node.numa_nodes:
            for b in node.numa_nodes:
                assert node.distance(a.os_index, b.os_index) == node.distance(b.os_index, a.os_index)
                if a != b:
                    assert node.distance(a.os_index, b.os_index) > node.distance(a.os_index, a.os_index)  # type: ignore[operator]


def test_every_documented_capture_is_present() -> None:
    assert set(DOCUMENTED) <= set(_hwloc_files())


@pytest.mark.parametrize("name", _hwloc1_files())
def test_hwloc1_files_are_refused_with_the_conversion_command(name: str) -> None:
    with pytest.raises(TopologyError) as e:
        engine.load(xml_path=str(SHARED / name))
    msg = str(e.value)
    assert "\n" not in msg
    assert "hwloc 1.x XML cannot be read by hwloc 3" in msg
    assert f"lstopo-no-graphics --input {SHARED / name} --whole-io --of xml NEW.xml" in msg


def test_hwloc1_twins_load_from_their_conversion() -> None:
    for name in _hwloc1_files():
        twin = load(name.replace(".hwloc1.xml", ".v2conv.xml"))
        assert twin.cpus


def test_nccl_files_are_not_hwloc() -> None:
    with pytest.raises(TopologyError, match="not an hwloc topology file"):
        engine.load(xml_path=str(SHARED / "azure-ndv4.nccl.xml"))


# --- documented facts, machine by machine ------------------------------------------------------


@pytest.mark.parametrize("name", ["psmgmt-jwb0004-juwels-booster.xml", "psmgmt-jrc0323-jureca-dc-gpu.xml"])
def test_epyc_a100_nodes_pair_each_gpu_with_one_hca(name: str) -> None:
    node = load(name)
    assert [g.numa_node for g in node.gpus] == [3, 1, 7, 5]
    partners = []
    for g in node.gpus:
        level, nics = nearest_rdma(node, g)
        assert level == "PIX" and len(nics) == 1
        assert nics[0].name.startswith("mlx5_") and nics[0].kind == "infiniband"
        partners.append(nics[0].name)
    assert len(set(partners)) == 4


def test_jureca_numa3_cpus_match_dgx_a100() -> None:
    assert load("psmgmt-jrc0323-jureca-dc-gpu.xml").numa(3).cpus == set(range(48, 64)) | set(range(176, 192))  # type: ignore[union-attr]


def test_dgx2_switch_levels_and_nvswitch() -> None:
    node = load("hwloc-nvidiaDGX2.xml")
    assert all(g.vendor == "nvidia" and "V100" in (g.name or "") for g in node.gpus)
    assert all(g.pci.class_id >> 8 == 0x03 for g in node.gpus)  # the 11 NVSwitch functions are not GPUs
    addresses = frozenset(g.pci.address for g in node.gpus)
    for g in node.gpus:
        levels = [pci_level(g.pci, h.pci) for h in node.gpus if h is not g]
        same_socket = [h for h in node.gpus if h is not g and h.numa_node == g.numa_node]
        # A leaf switch holds 2 GPUs, an upper switch 4, a socket 8.
        assert (levels.count("PIX"), levels.count("PXB"), levels.count("NODE"), levels.count("SYS")) == (1, 2, 4, 8)
        assert len(same_socket) == 7
        # NVLinks all end on NVSwitches (peers that are not GPUs).
        assert g.nvlinks and all(link.peer not in addresses for link in g.nvlinks)
    g0, g1 = node.gpus[0], node.gpus[1]
    assert gpu_level(g0, g1, addresses).startswith("NV")


def test_power8_gpus_have_own_domains_and_nvlink_pairs() -> None:
    node = load("hwloc-power8gpudistances.xml")
    assert len({g.pci.address.domain for g in node.gpus}) == 4
    addresses = frozenset(g.pci.address for g in node.gpus)
    levels = {(a.index, b.index): gpu_level(a, b, addresses) for a in node.gpus for b in node.gpus if a is not b}
    nv = {pair for pair, level in levels.items() if level.startswith("NV")}
    assert nv and all(levels[(b, a)] == levels[(a, b)] for a, b in nv)


def test_westmere_m2070_gpus_and_connectx2() -> None:
    node = load("hwloc-24em64t-2n6c2t-pci.xml")
    assert sorted(g.pci.package for g in node.gpus) == [0, 1, 1]  # the ES1000 VGA chip is not a GPU
    (hca,) = [n for n in node.nics if n.rdma]
    assert hca.name == "mlx4_0" and hca.kind == "infiniband" and hca.pci is not None
    assert hca.pci.class_id == 0x0C06 and hca.pci.package == 0 and "ib0" in hca.netdevs


def test_uv2000_connectx3_on_numa_6() -> None:
    node = load("hwloc-192em64t-24n8c2t.xml")
    (hca,) = [n for n in node.nics if n.rdma]
    assert (hca.name, hca.numa_node, hca.netdevs) == ("mlx4_0", 6, ("ib0",))
    assert node.numa_distances is not None and len(node.numa_distances) == 24 * 24


def test_dcs8000z_nvme_and_hca_placement() -> None:
    node = load("hwloc-32em64t-2n8c+dax+nvme+mic+dimms.xml")
    _check_dcs8000z(node)


def _check_dcs8000z(node: Node) -> None:
    nvme = [s for s in node.storage if s.name == "nvme0n1"]
    assert len(nvme) == 1 and nvme[0].numa_node == 0 and nvme[0].pci is not None and nvme[0].pci.package == 0
    (hca,) = [n for n in node.nics if n.rdma]
    assert (hca.name, hca.numa_node) == ("mlx4_0", 1)


def test_forced_locality_puts_buses_40_46_on_odd_cpus() -> None:
    node = load("hwloc-40intel64-2g2n4c+pcilocality.forcedlocality.xml")
    (hca,) = [n for n in node.nics if n.rdma]
    assert hca.name == "qib0" and hca.kind == "infiniband" and hca.pci is not None
    assert 0x40 <= hca.pci.address.bus <= 0x46
    assert hca.pci.local_cpus == {c for c in node.cpus if c % 2}
    assert hca.numa_node is None  # odd CPUs span NUMA nodes 1 and 3


def test_juwels_cluster_two_gpus_share_each_hca() -> None:
    node = load("psmgmt-jwc09n003-juwels-cluster-gpu.v2conv.xml")
    assert len([n for n in node.nics if n.rdma]) == 2
    partners = []
    for g in node.gpus:
        level, nics = nearest_rdma(node, g)
        assert level == "PIX" and len(nics) == 1
        partners.append(nics[0].name)
    assert sorted(partners.count(p) for p in set(partners)) == [2, 2]


def test_meluxina_two_gpus_without_a_near_hca() -> None:
    node = load("psmgmt-mel2001-meluxina-gpu.v2conv.xml")
    far = {str(g.pci.address) for g in node.gpus if nearest_rdma(node, g)[0] == "SYS"}
    assert far == {"0000:03:00.0", "0000:c3:00.0"}


def test_jusuf_dual_port_connectx_and_nvme() -> None:
    node = load("psmgmt-jsfc005-jusuf-gpu.v2conv.xml")
    assert [g.numa_node for g in node.gpus] == [3]
    kinds = {n.name: (n.kind, n.netdevs, n.numa_node) for n in node.nics if n.rdma}
    assert kinds == {"mlx5_0": ("roce", ("enp33s0f0",), 2), "mlx5_1": ("infiniband", ("ib0",), 2)}
    assert [s.numa_node for s in node.storage if s.pci and s.pci.class_id == 0x0108] == [7]


def test_deep_est_booster() -> None:
    node = load("psmgmt-dp-esb01-deep-est-esb.v2conv.xml")
    assert [n.name for n in node.nics if n.rdma] == ["mlx5_0"]
    assert len([s for s in node.storage if s.pci and s.pci.class_id == 0x0108]) == 1
    # One NUMA node: every device is local to it.
    assert {g.numa_node for g in node.gpus} == {0}


def test_juropa3_locality_unknown() -> None:
    node = load("psmgmt-j3c053-juropa3-gpu.v2conv.xml")
    assert [(g.pci.vendor_id, g.pci.device_id) for g in node.gpus] == [(0x10DE, 0x1021)] * 2
    assert all(g.numa_node is None for g in node.gpus)
    assert any("locality unknown" in n and "machine root" in n for n in node.notes)
    far = next(g for g in node.gpus if g.pci.address.bus == 0x82)
    assert nearest_rdma(node, far)[0] == "SYS"
    (hca,) = [n for n in node.nics if n.rdma]
    assert hca.name == "mlx4_0"


def test_deep_sea_xeon_max() -> None:
    node = load("psmgmt-dp-intelmax01-deep-sea-xeonmax.xml")
    assert [(n.name, n.numa_node) for n in node.nics if n.rdma] == [("mlx5_0", 2)]
    assert [s.numa_node for s in node.storage if s.pci and s.pci.class_id == 0x0108] == [3]


def test_lassen() -> None:
    node = load("mpibind-coral-lassen.xml")
    hcas = [n for n in node.nics if n.rdma]
    assert sorted(n.name for n in hcas) == ["mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3"]
    assert sorted(d for n in hcas for d in n.netdevs) == ["hsi0", "hsi1", "hsi2", "hsi3"]
    assert all(n.kind == "infiniband" for n in hcas)
    assert [s.pci.package for s in node.storage if s.pci] == [0]
    for g in node.gpus:
        assert nearest_rdma(node, g)[0] == "NODE"


def test_rzmanta_one_hca_per_socket() -> None:
    node = load("mpibind-coral-ea.v2conv.xml")
    assert {n.name: n.pci.package for n in node.nics if n.rdma and n.pci} == {"mlx5_0": 0, "mlx5_1": 1}


def test_pascal_both_gpus_pix_to_mlx5_0() -> None:
    node = load("mpibind-cts1-pascal.xml")
    for g in node.gpus:
        level, nics = nearest_rdma(node, g)
        assert (level, [n.name for n in nics]) == ("PIX", ["mlx5_0"])


def test_corona_every_gpu_far_from_the_hca() -> None:
    node = load("mpibind-epyc-corona.xml")
    assert [g.numa_node for g in node.gpus] == [1, 2, 5, 7]
    assert all(g.vendor == "amd" for g in node.gpus)
    assert [n.numa_node for n in node.nics if n.rdma] == [3]
    assert [s.numa_node for s in node.storage if s.pci and s.pci.class_id == 0x0108] == [0]
    assert all(nearest_rdma(node, g)[0] == "SYS" for g in node.gpus)


def test_corona_p2() -> None:
    node = load("mpibind-epyc-corona-p2.xml")
    assert all(g.pci.class_id == 0x0380 for g in node.gpus)
    (hca,) = [n for n in node.nics if n.rdma]
    assert hca.pci is not None and hca.pci.package == 1
    phb = [str(g.pci.address) for g in node.gpus if hca.pci and pci_level(g.pci, hca.pci) == "PHB"]
    assert phb == ["0000:c3:00.0"]
    assert [s.pci.package for s in node.storage if s.pci and s.pci.class_id == 0x0108] == [0]


def test_tioga_slingshot_and_gcd_pairs() -> None:
    node = load("mpibind-eas-tioga.xml")
    assert sorted(o for g in node.gpus for o in g.os_names) == [f"rsmi{i}" for i in range(8)]
    nics = [n for n in node.nics if n.kind == "slingshot"]
    assert sorted(n.name for n in nics) == ["hsi0", "hsi1", "hsi2", "hsi3"]
    assert all(n.rdma and n.pci and (n.pci.vendor_id, n.pci.device_id) == (0x17DB, 0x0501) for n in nics)
    nvme = [s for s in node.storage if s.pci and s.pci.class_id == 0x0108]
    assert len(nvme) == 16 and {s.numa_node for s in nvme} == {0}
    for nic in nics:
        assert nic.pci is not None
        levels = sorted(pci_level(g.pci, nic.pci) for g in node.gpus if g.numa_node == nic.numa_node)
        assert levels == ["NODE", "PHB"]


def test_g4dn_efa_on_socket_1() -> None:
    node = load("mpibind-g4dnmetal.xml")
    (efa,) = [n for n in node.nics if n.rdma]
    assert efa.kind == "efa" and efa.pci is not None and efa.pci.package == 1
    assert (efa.pci.vendor_id, efa.pci.device_id) == (0x1D0F, 0xEFA0)
    assert [s.pci.package for s in node.storage if s.pci and s.pci.class_id == 0x0108] == [0, 0, 0]


# --- gathered sysfs trees -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def gathered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each hwloc-*.tar.bz2 extracted once; name -> its top folder."""
    out: dict[str, str] = {}
    for tarball in sorted(SHARED.glob("hwloc-*.tar.bz2")):
        dest = tmp_path_factory.mktemp(tarball.name.split(".")[0])
        with tarfile.open(tarball) as tf:
            tops = {m.name.split("/")[0] for m in tf.getmembers()}
            tf.extractall(dest, filter="data")
        assert len(tops) == 1
        out[tarball.name] = str(dest / tops.pop())
    return out


def test_gathered_dcs8000z(gathered: dict[str, str]) -> None:
    root = gathered["hwloc-32em64t-2n8c+dax+nvme+mic+dimms.tar.bz2"]
    node = engine.load(fsroot=root)
    assert node.source == f"sysfs:{root}"
    assert (len(node.packages), len(node.numa_nodes), len(node.cpus)) == (2, 2, 16)
    _check_dcs8000z(node)


def test_gathered_all_io_locality_unknown(gathered: dict[str, str]) -> None:
    node = engine.load(fsroot=gathered["hwloc-40intel64-2g2n4c+pcilocality.tar.bz2"])
    assert (len(node.packages), len(node.numa_nodes), len(node.cpus)) == (4, 4, 40)
    devices = [n.pci for n in node.nics if n.pci] + [s.pci for s in node.storage if s.pci]
    assert devices and all(d.numa_node is None for d in devices)
    assert [n.name for n in node.nics if n.rdma] == ["qib0"]
    assert any("locality unknown" in n and "machine root" in n for n in node.notes)


def test_gathered_gpu_memory_numa_nodes(gathered: dict[str, str]) -> None:
    node = engine.load(fsroot=gathered["hwloc-nvidiagpunumanodes.tar.bz2"])
    assert [n.os_index for n in node.numa_nodes if n.cpus] == [0, 8]
    gpu_nodes = [n for n in node.numa_nodes if not n.cpus]
    assert [n.os_index for n in gpu_nodes] == list(range(250, 256))
    assert all(n.kind == "gpu" and n.cpuless for n in gpu_nodes)
    assert [str(g.pci.address) for g in node.gpus] == [
        "0004:05:00.0", "0004:06:00.0", "0006:00:00.0", "0007:00:00.0", "0035:04:00.0", "0035:05:00.0",
    ]  # fmt: skip
    assert sorted(g.memory_numa_node for g in node.gpus) == list(range(250, 256))  # type: ignore[type-var]
    for g in node.gpus:
        mem = node.numa(g.memory_numa_node)  # type: ignore[arg-type]
        assert mem is not None and mem.package == g.pci.package


def test_gathered_tree_is_not_the_host(gathered: dict[str, str]) -> None:
    """HWLOC_COMPONENTS=linux,stop: the tree's CPUs, never this machine's."""
    node = engine.load(fsroot=gathered["hwloc-40intel64-2g2n4c+pcilocality.tar.bz2"])
    assert node.cpus == set(range(40)) != engine.load().cpus


def test_a_capture_without_nvlink_facts_says_nvlink_is_unknown() -> None:
    """JUWELS Booster's A100-SXM4 are NVLinked, but its capture holds no NVLinkBandwidth matrix:
    SYS between its GPUs must come with the note live discovery gives ("NVLink unknown")."""
    booster = load("psmgmt-jwb0004-juwels-booster.xml")
    assert len(booster.gpus) == 4 and not any(g.nvlinks for g in booster.gpus)
    assert gpu_level(booster.gpus[0], booster.gpus[1]) == "SYS"
    assert [n for n in booster.notes if n.startswith("NVLink unknown: ")], booster.notes
    dgx2 = load("hwloc-nvidiaDGX2.xml")  # captured with hwloc's NVML plugin: its links are facts
    assert any(g.nvlinks for g in dgx2.gpus) and not any("NVLink unknown" in n for n in dgx2.notes)
