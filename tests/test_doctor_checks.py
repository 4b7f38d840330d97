"""Each doctor check on a tree where it passes and one where it fires (fixtures/doctor/*)."""

from __future__ import annotations

from dataclasses import replace

from doctor_helpers import ctx, levels
from nodes import GPU0, GPU1, NIC0, NIC1, NVME, nic, pci
from nodes import two_sockets as small_node

from pinctl.doctor import irq, node, numa, pcie, rdma
from pinctl.doctor import settings as kernel
from pinctl.model import NumaNode, PciAddress, PciLink

# --- pcie.link-degraded ------------------------------------------------------------


def test_pcie_good_tree_passes_and_notes_the_idle_gpu() -> None:
    found = pcie.link_degraded(ctx("good", small_node()))
    assert levels(found) == ["ok"]
    idle = [f for f in found if "98:00.0" in f.subject]
    assert idle and "idle" in idle[0].summary


def test_pcie_bad_tree_names_the_narrow_gpu_slow_nic_and_bridge() -> None:
    found = [f for f in pcie.link_degraded(ctx("bad", small_node())) if f.severity == "warn"]
    subjects = " | ".join(f.subject for f in found)
    assert "GPU 0 (0000:18:00.0)" in subjects
    assert "NIC mlx5_0 (0000:19:00.0)" in subjects
    assert "bridge 0000:96:00.0" in subjects
    gpu0 = next(f for f in found if "18:00.0" in f.subject)
    assert "x8 of x16" in gpu0.summary
    assert any("current_link_width = 8" in e for e in gpu0.evidence)
    nic0 = next(f for f in found if "19:00.0" in f.subject)
    assert "16 of 32 GT/s" in nic0.summary
    # the shared bridge 16:00.0 is reported once at most, and nothing about healthy NVMe
    assert not any("1a:00.0" in f.subject for f in found)


def test_pcie_gen5_device_in_gen4_slot_is_not_degraded(tmp_path) -> None:  # type: ignore[no-untyped-def]
    def put(addr: str, cur: str, mx: str) -> None:
        d = tmp_path / "sys/bus/pci/devices" / addr
        d.mkdir(parents=True)
        (d / "current_link_speed").write_text(cur + "\n")
        (d / "max_link_speed").write_text(mx + "\n")
        (d / "current_link_width").write_text("16\n")
        (d / "max_link_width").write_text("16\n")

    put("0000:1a:00.0", "16.0 GT/s PCIe", "32.0 GT/s PCIe")  # device capable of Gen5
    put("0000:15:02.0", "16.0 GT/s PCIe", "16.0 GT/s PCIe")  # its root port tops out at Gen4
    from pinctl.doctor.finding import DoctorContext
    from pinctl.kernel.files import KernelFiles

    found = pcie.link_degraded(DoctorContext(KernelFiles(str(tmp_path)), small_node(gpus=(), nics=())))
    assert levels(found) == ["ok"]


def test_pcie_falls_back_to_model_links_and_skips_without_devices() -> None:
    slow = replace(
        GPU0, pci=replace(GPU0.pci, address=PciAddress(0, 0x77, 0, 0), bridges=(), link=PciLink(32.0, 4, 32.0, 16))
    )
    found = pcie.link_degraded(ctx("vm", small_node(gpus=(slow,), nics=(), storage=())))
    assert [f.severity for f in found] == ["warn"] and "x4 of x16" in found[0].summary
    assert levels(pcie.link_degraded(ctx("vm", small_node(gpus=(), nics=(), storage=())))) == ["skipped"]
    assert levels(pcie.link_degraded(ctx("vm", small_node()))) == ["skipped"]  # no link files
    assert levels(pcie.link_degraded(ctx("good", None))) == ["skipped"]


# --- rdma ------------------------------------------------------------------------------


def test_rdma_port_down() -> None:
    assert levels(rdma.port_down(ctx("good"))) == ["ok"]
    bad = rdma.port_down(ctx("bad"))
    assert [(f.severity, f.subject) for f in bad] == [("warn", "mlx5_1 port 1")]
    assert "/sys/class/infiniband/mlx5_1/ports/1/state = 1: DOWN" in bad[0].evidence
    assert "`ibstat` shows the same" in (bad[0].remedy or "")
    # the hint names the tool for that NIC's kind only (EFA devices live in the same sysfs class)
    efa = replace(NIC1, kind="efa")
    bad = rdma.port_down(ctx("bad", node=small_node(nics=(NIC0, efa))))
    assert "`fi_info -p efa` shows the same" in (bad[0].remedy or "") and "ibstat" not in (bad[0].remedy or "")
    assert levels(rdma.port_down(ctx("vm"))) == ["skipped"]


def test_rdma_no_gdr_path() -> None:
    assert levels(rdma.no_gdr_path(ctx(node=small_node()))) == ["ok"]
    # NICs moved off the GPU switches onto the root complex: PHB for GPU 0, SYS for GPU 1
    far0 = nic("mlx5_0", "0000:1b:00.0", ("0000:15:03.0",), 0, None, "hb0")
    found = rdma.no_gdr_path(ctx(node=small_node(nics=(far0,))))
    assert [(f.severity, f.subject) for f in found] == [
        ("warn", "GPU 0 (0000:18:00.0)"),
        ("warn", "GPU 1 (0000:98:00.0)"),
    ]
    assert found[0].evidence[0].endswith("PHB") and found[1].evidence[0].endswith("SYS")
    # a down NIC is not usable: GPU 1's nearest usable is then mlx5_0 on the other socket
    down1 = replace(NIC1, ports=(replace(NIC1.ports[0], state="DOWN"),))
    found = rdma.no_gdr_path(ctx(node=small_node(nics=(NIC0, down1))))
    assert [f.subject for f in found if f.severity == "warn"] == ["GPU 1 (0000:98:00.0)"]
    assert "nearer RDMA NIC(s) without an active port: mlx5_1" in found[0].evidence
    # unknown locality makes everything SYS: that is numa.unknown-locality's finding, not this one
    blind = tuple(replace(g, pci=replace(g.pci, numa_node=None, switches=(), host_bridge=None)) for g in (GPU0, GPU1))
    found = rdma.no_gdr_path(ctx(node=small_node(gpus=blind, nics=(far0,))))
    assert levels(found) == ["skipped"] and "GPU 0, GPU 1: NUMA locality unknown" in found[0].summary
    assert levels(rdma.no_gdr_path(ctx(node=small_node(nics=())))) == ["skipped"]
    assert levels(rdma.no_gdr_path(ctx(node=small_node(gpus=())))) == ["skipped"]


def test_rdma_nic_imbalance() -> None:
    ok = rdma.nic_imbalance(ctx(node=small_node()))
    assert levels(ok) == ["ok"]
    # four GPUs on switch 16 next to mlx5_0, mlx5_1 far away on the other socket
    gpus = tuple(replace(GPU0, index=i, pci=replace(GPU0.pci, address=PciAddress(0, 0x30 + i, 0, 0))) for i in range(4))
    bad = rdma.nic_imbalance(ctx(node=small_node(gpus=gpus)))
    assert [f.severity for f in bad] == ["warn"]
    assert bad[0].subject == "mlx5_0" and "4 GPUs on the busiest NIC, 0 on the idlest" in bad[0].summary
    # ties are spread: two NICs on the same switch as two GPUs serve one each
    nic_b = nic("mlx5_2", "0000:1c:00.0", ("0000:17:02.0", "0000:16:00.0", "0000:15:01.0"), 0, "sw16", "hb0")
    two = small_node(gpus=gpus[:2], nics=(NIC0, nic_b))
    assert rdma.nic_loads(two, list(two.gpus)) == {"mlx5_0": [0], "mlx5_2": [1]}
    assert levels(rdma.nic_imbalance(ctx(node=two))) == ["ok"]


# --- numa ------------------------------------------------------------------------------


def test_numa_unknown_locality() -> None:
    assert levels(numa.unknown_locality(ctx(node=small_node()))) == ["ok"]
    lost = replace(GPU1, pci=replace(GPU1.pci, numa_node=None))
    found = numa.unknown_locality(ctx(node=small_node(gpus=(GPU0, lost))))
    assert [(f.severity, f.subject) for f in found] == [("warn", "GPU 1 (0000:98:00.0)")]
    # harmless on a single-NUMA machine
    one = small_node(numa_nodes=(NumaNode(0, frozenset(range(8)), 1 << 30),), gpus=(lost,))
    assert levels(numa.unknown_locality(ctx(node=one))) == ["ok"]


def test_numa_memoryless_node() -> None:
    assert levels(numa.memoryless_node(ctx(node=small_node()))) == ["ok"]
    nodes = (NumaNode(0, frozenset(range(4)), 64 << 30), NumaNode(1, frozenset(range(4, 8)), 0))
    found = numa.memoryless_node(ctx(node=small_node(numa_nodes=nodes)))
    assert [(f.severity, f.subject) for f in found] == [("warn", "NUMA node 1")]
    unknown = tuple(replace(n, memory_bytes=None) for n in nodes)
    assert levels(numa.memoryless_node(ctx(node=small_node(numa_nodes=unknown)))) == ["skipped"]


def test_numa_cpuless_node() -> None:
    assert levels(numa.cpuless_node(ctx(node=small_node()))) == ["ok"]
    base = small_node().numa_nodes
    gpu_mem = (*base, NumaNode(2, frozenset(), 96 << 30, kind="gpu"))
    assert levels(numa.cpuless_node(ctx(node=small_node(numa_nodes=gpu_mem)))) == ["ok"]
    dram = (*base, NumaNode(3, frozenset(), 64 << 30, kind="dram"))
    found = numa.cpuless_node(ctx(node=small_node(numa_nodes=dram)))
    assert [(f.severity, f.subject) for f in found] == [("warn", "NUMA node 3")]


# --- kernel ----------------------------------------------------------------------------


def test_kernel_numa_balancing() -> None:
    assert levels(kernel.numa_balancing(ctx("good"))) == ["ok"]
    bad = kernel.numa_balancing(ctx("bad"))
    assert [f.severity for f in bad] == ["warn"] and bad[0].evidence == ("/proc/sys/kernel/numa_balancing = 1",)
    assert levels(kernel.numa_balancing(ctx("vm"))) == ["skipped"]


def test_kernel_thp_defrag() -> None:
    assert levels(kernel.thp_defrag(ctx("good"))) == ["ok"]
    assert levels(kernel.thp_defrag(ctx("bad"))) == ["warn"]
    assert levels(kernel.thp_defrag(ctx("vm"))) == ["skipped"]


def test_kernel_cpufreq_governor() -> None:
    assert levels(kernel.cpufreq_governor(ctx("good"))) == ["ok"]
    bad = kernel.cpufreq_governor(ctx("bad"))
    assert [(f.severity, f.subject) for f in bad] == [("warn", "CPUs 4-7")]
    assert "powersave" in bad[0].summary
    vm = kernel.cpufreq_governor(ctx("vm"))
    assert levels(vm) == ["skipped"] and "no cpufreq" in vm[0].summary


def test_kernel_offline_cpus() -> None:
    assert levels(kernel.offline_cpus(ctx("good"))) == ["ok"]
    assert [(f.severity, f.subject) for f in kernel.offline_cpus(ctx("bad"))] == [("warn", "CPU 3")]
    # the VM has possible 0-15 but present 0-3: its "offline" 4-15 are empty hotplug slots
    assert levels(kernel.offline_cpus(ctx("vm"))) == ["ok"]


def test_kernel_isolcpus() -> None:
    good = kernel.isolcpus(ctx("good"))
    assert levels(good) == ["ok"] and "no isolated" in good[0].summary
    bad_no_plan = kernel.isolcpus(ctx("bad"))
    assert levels(bad_no_plan) == ["ok"] and "0-1" in bad_no_plan[0].summary
    assert any("isolcpus=nohz,domain,0-1" in e for e in bad_no_plan[0].evidence)
    clash = kernel.isolcpus(ctx("bad", housekeeping=frozenset({0, 1}), job_cpus=frozenset(range(1, 8))))
    assert [f.severity for f in clash] == ["warn", "warn"]
    assert clash[0].subject == "CPUs 0-1" and clash[1].subject == "CPU 1"
    fine = kernel.isolcpus(ctx("bad", housekeeping=frozenset({2, 3}), job_cpus=frozenset(range(4, 8))))
    assert levels(fine) == ["ok"]


def test_cmdline_isolcpus_flags_are_not_cpus() -> None:
    lists = kernel._cmdline_lists("ro isolcpus=managed_irq,domain,2-5,9 nohz_full=2-5 rcu_nocbs=2-5")
    assert lists["isolcpus"][0] == frozenset({2, 3, 4, 5, 9})
    assert lists["nohz_full"][0] == frozenset({2, 3, 4, 5})


# --- irq -------------------------------------------------------------------------------


def test_irq_remote_numa() -> None:
    good = irq.remote_numa(ctx("good", small_node()))
    assert levels(good) == ["ok"] and "3 devices" in good[0].summary
    bad = irq.remote_numa(ctx("bad", small_node()))
    assert [(f.severity, f.subject) for f in bad] == [
        ("warn", "NIC mlx5_0 (0000:19:00.0)"),
        ("warn", "NVMe nvme0n1 (0000:1a:00.0)"),
    ]
    assert "4 of 4 IRQs" in bad[0].summary
    assert "/proc/irq/100/effective_affinity_list = 4" in bad[0].evidence
    assert levels(irq.remote_numa(ctx("vm", small_node()))) == ["skipped"]
    assert levels(irq.remote_numa(ctx("good", small_node(nics=(), storage=())))) == ["skipped"]


def test_irq_nvme_spread_over_all_cpus_is_by_design(tmp_path) -> None:  # type: ignore[no-untyped-def]
    dev = tmp_path / "sys/bus/pci/devices/0000:1a:00.0/msi_irqs"
    dev.mkdir(parents=True)
    for i in range(8):  # one managed IRQ per CPU, half of them on the remote node
        (dev / str(50 + i)).write_text("msix\n")
        (tmp_path / f"proc/irq/{50 + i}").mkdir(parents=True)
        (tmp_path / f"proc/irq/{50 + i}/effective_affinity_list").write_text(f"{i}\n")
    from pinctl.doctor.finding import DoctorContext
    from pinctl.kernel.files import KernelFiles

    found = irq.remote_numa(DoctorContext(KernelFiles(str(tmp_path)), small_node(nics=(), storage=(NVME,))))
    assert levels(found) == ["ok"]


# --- node ------------------------------------------------------------------------------


def test_node_discovery_finding() -> None:
    assert levels(node.discovery(ctx(node=small_node()))) == ["ok"]
    failed = node.discovery(ctx(node=None, discovery_error="malformed XML"))
    assert [f.severity for f in failed] == ["warn"] and "malformed XML" in failed[0].summary
    # and every topology-based check says why it skipped: where (node.discovery) in its summary, what in its evidence
    (skip,) = numa.cpuless_node(ctx(node=None, discovery_error="malformed XML"))
    assert "node.discovery" in skip.summary and skip.evidence == ("malformed XML",)


def test_pci_helper_keeps_locality() -> None:
    p = pci("0000:01:00.0", (), 1, None, "hb")
    assert p.local_cpus == frozenset(range(4, 8))
