"""A node's identity and shape for ``doctor --json``: what a fleet compares node against node.

A node that lost a GPU, trained an HCA at half rate or booted in another NPS mode passes
every local check; only its peers show it. So the report carries the facts that should be
equal across a fleet of one model (counts, models, link generation and width, rates, NUMA
layout, kernel settings) and leaves out what differs on healthy twins (serial numbers,
UUIDs, exact free memory). Memory is rounded to two significant GiB digits so firmware
reservations do not split identical nodes, while a missing DIMM still shows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pinctl.doctor.finding import DoctorContext
from pinctl.kernel import settings
from pinctl.kernel.cpus import cpu_list_fact, governors
from pinctl.kernel.files import NeedsRoot
from pinctl.kernel.host import hostname
from pinctl.model import Node, PciInfo

T = TypeVar("T")  # no PEP 695 generics: Python 3.10 imports this module

# Boot parameters that change what a node's CPUs and devices do (kernel-parameters.rst).
BOOT_PARAMETERS = ("isolcpus", "nohz_full", "iommu", "intel_iommu", "amd_iommu")

# PCIe generation by per-lane transfer rate (PCI-SIG: 2.5, 5, 8, 16, 32, 64 GT/s).
_GENERATIONS = {2.5: 1, 5.0: 2, 8.0: 3, 16.0: 4, 32.0: 5, 64.0: 6}


def pcie_generation(gts: float | None) -> int | None:
    return None if gts is None else _GENERATIONS.get(round(gts, 1))


def round_gib(size: int | None) -> int | None:
    """Bytes as GiB kept to two significant digits (1007.6 GiB -> 1000, 94.2 -> 94)."""
    if size is None:
        return None
    gib = size / 2**30
    if gib < 1:
        return 0
    return int(float(f"{gib:.2g}"))


def _link(pci: PciInfo | None) -> dict[str, Any]:
    link = pci.link if pci else None
    return {
        "pcie_gen": pcie_generation(link.speed_gts) if link else None,
        "pcie_width": link.width if link else None,
        "max_pcie_gen": pcie_generation(link.max_speed_gts) if link else None,
        "max_pcie_width": link.max_width if link else None,
    }


def _pci_id(pci: PciInfo) -> str | None:
    """``10de:2330``, as lspci -n writes it: a model name's stand-in where the source had none (sysfs)."""
    return f"{pci.vendor_id:04x}:{pci.device_id:04x}" if pci.vendor_id else None


def hardware(node: Node) -> dict[str, Any]:
    """The Node's comparable facts, devices in the model's order (GPUs by PCI bus, NICs by name)."""
    numa = list(node.numa_nodes)
    with_cpus = [n for n in numa if n.cpus]
    packages = len(node.packages)
    ids = [n.os_index for n in numa]
    distances = None
    if node.numa_distances is not None:
        distances = [[node.distance(a, b) for b in ids] for a in ids]
    threads = max((len(c.pus) for c in node.cores), default=0)
    return {
        "packages": packages,
        "cpus": len(node.cpus),
        "cores": len(node.cores),
        "smt": threads if node.smt_known else None,
        "numa": {
            "nodes": [
                {"os_index": n.os_index, "cpus": len(n.cpus), "memory_gib": round_gib(n.memory_bytes), "kind": n.kind}
                for n in numa
            ],
            "per_package": len(with_cpus) // packages if packages and len(with_cpus) % packages == 0 else None,
            "distances": distances,
        },
        "gpus": [
            {
                "index": g.index,
                "pci_bus_id": str(g.pci.address),
                "model": g.name or _pci_id(g.pci),
                "vendor": g.vendor,
                "numa_node": g.numa_node,
                "nvlinks": sum(link.links for link in g.nvlinks),
                **_link(g.pci),
            }
            for g in node.gpus
        ],
        "nics": [
            {
                "name": n.name,
                "kind": n.kind,
                "rdma": n.rdma,
                "numa_node": n.numa_node,
                "link_layer": p.link_layer if (p := n.primary_port) else None,
                "rate_gbps": p.rate_gbps if p else None,
                "state": p.state if p else None,
                **_link(n.pci),
            }
            for n in node.nics
        ],
        "nvme": [
            {
                "name": s.name,
                "model": s.model or (_pci_id(s.pci) if s.pci else None),
                "size_gib": round_gib(s.size_bytes),
                "numa_node": s.numa_node,
                **_link(s.pci),
            }
            for s in node.storage
        ],
    }


def _quiet(read: Callable[[], T]) -> T | None:
    """A kernel fact, or None where it needs root: the inventory never fails the report."""
    try:
        return read()
    except NeedsRoot:
        return None


def kernel_settings(ctx: DoctorContext) -> dict[str, Any]:
    """The settings the doctor's kernel checks read, as found (None: absent or unreadable)."""
    files = ctx.files
    cmdline = _quiet(lambda: settings.cmdline(files)) or ""
    boot = {k: v for k, _, v in (w.partition("=") for w in cmdline.split()) if k in BOOT_PARAMETERS}
    offline = _quiet(lambda: cpu_list_fact(files, "offline", strict=True)[0])
    govs = _quiet(lambda: governors(files)) or []
    return {
        "numa_balancing": _quiet(lambda: settings.numa_balancing(files)[0]),
        "thp_defrag": _selected(_quiet(lambda: settings.thp_defrag(files)[0])),
        "governors": sorted(g for g, _, _ in govs),
        "offline_cpus": len(offline) if offline is not None else None,
        "boot": boot,
        # the loaded NVIDIA driver as NVML reports it: fleet names the node that runs another one
        "nvidia_driver": ctx.health.driver_version if ctx.health is not None else None,
    }


def _selected(text: str | None) -> str | None:
    """``always defer [madvise] never`` -> ``madvise`` (the bracketed choice of a sysfs selector)."""
    if text is None or "[" not in text:
        return text
    return text.partition("[")[2].partition("]")[0]


def node_name(ctx: DoctorContext, *, from_topology: bool = False) -> str | None:
    """The judged node's name: the topology file's own with *from_topology* (``--topology`` alone,
    where the kernel files are this machine's), else the tree's files, else what discovery named."""
    node_says = ctx.node.hostname if ctx.node is not None and ctx.node.hostname not in ("", "unknown") else None
    if from_topology:
        return node_says
    return hostname(ctx.files) or node_says


def inventory(ctx: DoctorContext, *, from_topology: bool = False) -> dict[str, Any]:
    """hostname, hardware (None without a topology) and kernel settings of the node under *ctx*."""
    return {
        "hostname": node_name(ctx, from_topology=from_topology),
        "hardware": hardware(ctx.node) if ctx.node is not None else None,
        "kernel": None if ctx.offline else kernel_settings(ctx),  # a topology file holds no kernel settings
    }
