"""sysfs enrichment on the generated trees (fixtures/gen_sysfs.py): what a user checks with ibstat, lspci, nvme list."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from pinctl.discovery import enrich
from pinctl.discovery.merge import merge_netifs, merge_nvme, merge_rdma, refresh_pci
from pinctl.discovery.sysfs import SysfsFacts, read_sysfs
from pinctl.distance import pci_level
from pinctl.kernel.files import KernelFiles
from pinctl.kernel.pci import parse_link_speed
from pinctl.kernel.rdma import parse_rate
from pinctl.model import Gpu, Nic, NicPort, Node, PciAddress, PciInfo, PciLink, Storage

TREES = Path(__file__).resolve().parents[1] / "fixtures" / "sysfs"
A = PciAddress.parse


def tree(name: str) -> KernelFiles:
    return KernelFiles(str(TREES / name))


def one_step(merge: Callable[[Node, SysfsFacts], Node]) -> Callable[[KernelFiles, Node], Node]:
    """One merge step on what sysfs under *files* says about *node* (the reads and the pure join)."""
    return lambda files, node: merge(node, read_sysfs(files, node))


enrich_rdma, enrich_netdevs = one_step(merge_rdma), one_step(merge_netifs)
enrich_nvme, enrich_pci = one_step(merge_nvme), one_step(refresh_pci)


def gpu(index: int, addr: str, *, host: str | None, switch: str | None, numa: int | None) -> Gpu:
    switches = (switch,) if switch else ()
    return Gpu(index, PciInfo(A(addr), 0x030200, 0x10DE, 0x2330, switches=switches, host_bridge=host, numa_node=numa))


def hwloc_like_dgx() -> Node:
    """What hwloc would hand over for part of the DGX: its own host-bridge names, no port facts,
    one HCA seen only through its IPoIB netdev, and one GPU whose locality hwloc missed."""
    gpus = (
        gpu(0, "0000:1b:00.0", host="hostbridge:0000:15-1f", switch="0000:16:00.0", numa=0),
        gpu(1, "0000:43:00.0", host="hostbridge:0000:3d-47", switch="0000:3e:00.0", numa=0),
        gpu(4, "0000:9d:00.0", host="hostbridge:0000:97-a0", switch="0000:98:00.0", numa=None),
    )
    mlx5_0 = PciInfo(
        A("0000:18:00.0"), 0x020700, switches=("0000:16:00.0",), host_bridge="hostbridge:0000:15-1f", numa_node=0
    )
    ipoib = PciInfo(
        A("0000:c0:00.0"), 0x020700, switches=("0000:be:00.0",), host_bridge="hostbridge:0000:bd-c5", numa_node=1
    )
    nics = (
        Nic("mlx5_0", "infiniband", True, mlx5_0, (NicPort(1),), ("ibp24s0",)),
        Nic("ibp192s0", "infiniband", True, ipoib, (NicPort(1, netdev="ibp192s0"),), ("ibp192s0",)),
    )
    return Node("dgx", "test", (), (), (), (), frozenset(), gpus=gpus, nics=nics)


@pytest.fixture
def dgx() -> Node:
    return enrich(tree("dgx-h100"), hwloc_like_dgx())


def nic(node: Node, name: str) -> Nic:
    (found,) = [n for n in node.nics if n.name == name]
    return found


def test_compute_hcas_are_active_ndr_infiniband(dgx: Node) -> None:
    compute = [nic(dgx, f"mlx5_{i}") for i in range(8)]
    for n in compute:
        port = n.primary_port
        assert port is not None
        assert (port.state, port.phys_state, port.link_layer, port.rate_gbps) == ("ACTIVE", "LinkUp", "InfiniBand", 400)
        assert port.active
        assert n.kind == "infiniband" and n.rdma
    assert [n.netdevs for n in compute][:2] == [("ibp24s0",), ("ibp64s0",)]


def test_down_port_is_reported_down(dgx: Node) -> None:
    port = nic(dgx, "mlx5_11").ports[0]
    assert (port.state, port.phys_state) == ("DOWN", "Disabled")
    assert not port.active


def test_storage_nics_are_roce_with_their_netdevs(dgx: Node) -> None:
    for fn, name in ((0, "mlx5_8"), (1, "mlx5_9")):
        n = nic(dgx, name)
        assert n.kind == "roce" and n.rdma
        assert n.ports[0].link_layer == "Ethernet"
        assert n.ports[0].netdev == f"enp170s0f{fn}np{fn}"
        assert n.ports[0].rate_gbps == 200


def test_ipoib_only_entry_folds_into_its_rdma_device(dgx: Node) -> None:
    names = {n.name for n in dgx.nics}
    assert "ibp192s0" not in names
    mlx5_5 = nic(dgx, "mlx5_5")
    assert mlx5_5.netdevs == ("ibp192s0",)
    assert mlx5_5.pci is not None and mlx5_5.pci.host_bridge == "hostbridge:0000:bd-c5"  # hwloc's placement kept


def test_plain_nics_exclude_rdma_netdevs_and_virtual_ones(dgx: Node) -> None:
    plain = [n for n in dgx.nics if not n.rdma]
    assert [n.name for n in plain] == ["eno1"]
    eno1 = plain[0]
    assert eno1.kind == "ethernet"
    assert eno1.ports[0].state == "ACTIVE" and eno1.ports[0].rate_gbps == 10
    assert eno1.pci is not None and eno1.pci.address == A("0000:03:00.0")
    assert len(dgx.nics) == 13  # 12 mlx5 + eno1; lo and the IPoIB netdevs are not NICs of their own


def test_devices_only_sysfs_knows_get_locality_and_model_host_bridges(dgx: Node) -> None:
    gpu43 = next(g for g in dgx.gpus if g.pci.address == A("0000:43:00.0"))
    gpu1b = next(g for g in dgx.gpus if g.pci.address == A("0000:1b:00.0"))
    mlx5_1 = nic(dgx, "mlx5_1")
    assert mlx5_1.pci is not None
    assert mlx5_1.pci.numa_node == 0
    assert mlx5_1.pci.local_cpus == frozenset(range(56)) | frozenset(range(112, 168))
    assert mlx5_1.pci.host_bridge == "hostbridge:0000:3d-47"  # named as hwloc names it
    assert pci_level(gpu43.pci, mlx5_1.pci) == "PIX"
    assert pci_level(gpu1b.pci, mlx5_1.pci) == "NODE"
    mlx5_10, mlx5_11 = nic(dgx, "mlx5_10"), nic(dgx, "mlx5_11")
    assert mlx5_10.pci is not None and mlx5_11.pci is not None
    assert mlx5_10.pci.switches == ()  # a storage card on a root port: no switch
    assert pci_level(mlx5_10.pci, mlx5_11.pci) == "PIX"  # two functions of one card: one parent bridge


def test_gpu_link_trained_below_max_is_degraded(dgx: Node) -> None:
    degraded = [str(g.pci.address) for g in dgx.gpus if g.pci.link.degraded]
    assert degraded == ["0000:9d:00.0"]
    slow = next(g for g in dgx.gpus if g.pci.address == A("0000:9d:00.0")).pci.link
    assert (slow.speed_gts, slow.max_speed_gts, slow.width) == (16.0, 32.0, 16)


def test_missing_numa_filled_from_sysfs_but_known_numa_kept() -> None:
    base = hwloc_like_dgx()
    wrong = replace(base.gpus[0], pci=replace(base.gpus[0].pci, numa_node=7))
    node = enrich_pci(tree("dgx-h100"), replace(base, gpus=(wrong, *base.gpus[1:])))
    assert node.gpus[0].numa_node == 7  # the model's own locality wins
    assert node.gpus[2].numa_node == 1  # hwloc had none; sysfs says 1


def test_nvme_model_and_size(dgx: Node) -> None:
    disks = {s.name: s for s in dgx.storage}
    assert sorted(disks) == ["nvme0n1", "nvme1n1"]  # nvme1 uses native multipath (nvme1c1n1)
    assert disks["nvme0n1"].model == "SAMSUNG MZ1L21T9HCLS-00A07"
    assert disks["nvme0n1"].size_bytes is not None and round(disks["nvme0n1"].size_bytes / 1e12, 2) == 1.92
    assert disks["nvme1n1"].size_bytes is not None and round(disks["nvme1n1"].size_bytes / 1e12, 2) == 3.84
    assert disks["nvme0n1"].numa_node == 0 and disks["nvme1n1"].numa_node == 1
    assert disks["nvme1n1"].pci is not None and disks["nvme1n1"].pci.link.width == 4


def test_nvme_replaces_hwloc_controller_placeholder() -> None:
    placeholder = Storage("nvme@0000:01:00.0", PciInfo(A("0000:01:00.0"), 0x010802, host_bridge="hb0", numa_node=0))
    node = Node("n", "t", (), (), (), (), frozenset(), storage=(placeholder,))
    out = enrich_nvme(tree("dgx-h100"), node)
    names = sorted(s.name for s in out.storage)
    assert names == ["nvme0n1", "nvme1n1"]
    nvme0 = next(s for s in out.storage if s.name == "nvme0n1")
    assert nvme0.pci is not None and nvme0.pci.host_bridge == "hb0"


def test_vm_without_locality() -> None:
    node = enrich(tree("vm-nolocality"), Node("vm", "t", (), (), (), (), frozenset()))
    hca = nic(node, "mlx5_0")
    assert hca.pci is not None
    assert hca.pci.numa_node is None
    assert hca.pci.local_cpus == frozenset(range(96))
    assert hca.pci.link.speed_gts is None and not hca.pci.link.degraded  # "Unknown", width 0
    assert hca.ports[0].netdev == "ib0" and hca.ports[0].active
    eth0 = nic(node, "eth0")
    assert eth0.pci is None and not eth0.rdma  # netvsc is a VMBus device, not PCI
    (disk,) = node.storage
    assert disk.model == "Microsoft NVMe Direct Disk" and disk.numa_node is None


def test_vm_gpus_keep_unknown_numa_and_read_sys() -> None:
    gpus = (gpu(0, "0001:00:00.0", host=None, switch=None, numa=None),)
    node = enrich(tree("vm-nolocality"), Node("vm", "t", (), (), (), (), frozenset(), gpus=gpus))
    assert node.gpus[0].numa_node is None
    assert node.gpus[0].pci.link.speed_gts == 16.0
    hca = nic(node, "mlx5_0")
    assert hca.pci is not None and pci_level(node.gpus[0].pci, hca.pci) == "SYS"


def test_absent_tree_changes_nothing(tmp_path: Path) -> None:
    base = hwloc_like_dgx()
    sysfs = KernelFiles(str(tmp_path))
    for step in (enrich_rdma, enrich_netdevs, enrich_nvme, enrich_pci):
        assert step(sysfs, base) == base


@pytest.mark.parametrize(
    ("text", "gts"),
    [
        ("16.0 GT/s PCIe", 16.0),
        ("32.0 GT/s PCIe", 32.0),
        ("8 GT/s", 8.0),
        ("2.5 GT/s PCIe", 2.5),
        ("Unknown", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_link_speed(text: str | None, gts: float | None) -> None:
    assert parse_link_speed(text) == gts


def test_parse_rate() -> None:
    assert parse_rate("400 Gb/sec (4X NDR)") == 400.0
    assert parse_rate("53.125 Gb/sec (1X HDR)") == 53.125
    assert parse_rate("garbage") is None


def test_link_keeps_model_value_when_sysfs_lacks_it(tmp_path: Path) -> None:
    pci = PciInfo(A("0000:18:00.0"), link=PciLink(speed_gts=8.0, width=8))
    (tmp_path / "sys/bus/pci/devices/0000:18:00.0").mkdir(parents=True)
    (tmp_path / "sys/bus/pci/devices/0000:18:00.0/max_link_speed").write_text("16.0 GT/s PCIe\n")
    node = Node("n", "t", (), (), (), (), frozenset(), gpus=(Gpu(0, pci),))
    link = enrich_pci(KernelFiles(str(tmp_path)), node).gpus[0].pci.link
    assert (link.speed_gts, link.width, link.max_speed_gts) == (8.0, 8, 16.0)
    assert link.degraded


def test_class_ids_are_16_bit_from_every_source(dgx: Node) -> None:
    """sysfs writes 24-bit class codes (0x020700); the model keeps hwloc's 16 bits (base class, subclass)."""
    added = nic(dgx, "mlx5_11")  # a device only sysfs knows
    assert added.pci is not None and added.pci.class_id == 0x0207
    assert {s.pci.class_id for s in enrich_nvme(tree("dgx-h100"), hwloc_like_dgx()).storage if s.pci} == {0x0108}
