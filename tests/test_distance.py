"""The nvidia-smi distance levels, on hand-built PCIe placements."""

from __future__ import annotations

from pinctl.distance import gpu_level, level_order, pci_level
from pinctl.model import Gpu, NvLink, PciAddress, PciInfo


def dev(addr: str, switches: tuple[str, ...] = (), host: str | None = None, numa: int | None = None) -> PciInfo:
    return PciInfo(address=PciAddress.parse(addr), switches=switches, host_bridge=host, numa_node=numa)


def test_levels_follow_the_pcie_tree() -> None:
    gpu = dev("0000:18:00.0", ("sw-leaf0", "sw-top0"), "hb0", 0)
    same_leaf = dev("0000:19:00.0", ("sw-leaf0", "sw-top0"), "hb0", 0)
    same_top = dev("0000:1a:00.0", ("sw-leaf1", "sw-top0"), "hb0", 0)
    same_host = dev("0000:1b:00.0", (), "hb0", 0)
    same_numa = dev("0000:2b:00.0", (), "hb1", 0)
    other_numa = dev("0000:9b:00.0", (), "hb2", 1)
    unknown = dev("0001:00:00.0", (), None, None)
    assert pci_level(gpu, gpu) == "X"
    assert pci_level(gpu, same_leaf) == "PIX"
    assert pci_level(gpu, same_top) == "PXB"
    assert pci_level(gpu, same_host) == "PHB"
    assert pci_level(gpu, same_numa) == "NODE"
    assert pci_level(gpu, other_numa) == "SYS"
    assert pci_level(gpu, unknown) == "SYS"
    assert pci_level(same_leaf, gpu) == "PIX"  # symmetric


def test_level_order_sorts_nearest_first() -> None:
    order = ["X", "NV12", "PIX", "PXB", "PHB", "NODE", "SYS"]
    assert sorted(order, key=level_order) == order


def test_nvlink_direct_and_through_nvswitch() -> None:
    a, b, c = (PciAddress.parse(x) for x in ("0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0"))
    nvswitch = PciAddress.parse("0000:c0:00.0")
    g0 = Gpu(0, PciInfo(a), nvlinks=(NvLink(b, 4),))
    g1 = Gpu(1, PciInfo(b), nvlinks=(NvLink(a, 4),))
    g2 = Gpu(2, PciInfo(c))
    assert gpu_level(g0, g1) == "NV4"
    assert gpu_level(g0, g2) == "SYS"
    addrs = frozenset({a, b, c})
    s0 = Gpu(0, PciInfo(a), nvlinks=(NvLink(nvswitch, 18),))
    s2 = Gpu(2, PciInfo(c), nvlinks=(NvLink(nvswitch, 18),))
    assert gpu_level(s0, s2, addrs) == "NV18"


def test_pci_address_forms() -> None:
    assert str(PciAddress.parse("00000000:3B:00.0")) == "0000:3b:00.0"
    assert str(PciAddress.parse("3b:00.1")) == "0000:3b:00.1"


def test_two_functions_of_one_card_below_a_root_port_are_pix() -> None:
    """A dual-port NIC straight under a root port: one parent bridge, as nvidia-smi prints PIX."""
    root = PciAddress.parse("0000:60:01.1")
    f0 = PciInfo(address=PciAddress.parse("0000:61:00.0"), bridges=(root,), host_bridge="hb0", numa_node=0)
    f1 = PciInfo(address=PciAddress.parse("0000:61:00.1"), bridges=(root,), host_bridge="hb0", numa_node=0)
    other = PciInfo(
        address=PciAddress.parse("0000:62:00.0"),
        bridges=(PciAddress.parse("0000:60:02.1"),),
        host_bridge="hb0",
        numa_node=0,
    )
    assert pci_level(f0, f1) == "PIX"
    assert pci_level(f0, other) == "PHB"
