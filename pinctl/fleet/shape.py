"""A doctor report as a node's shape: ordered facts that are equal on healthy twins.

A fact is ``(key, label, value, device)``: *key* is what is compared (devices keyed by PCI bus
id or NIC name, so a GPU that fell off the bus does not shift its siblings), *label* and
*value* are how a person reads it ("GPU 3 PCIe", "x8"), *device* groups a device's facts so a
missing device is said once. Keys starting with ``count.`` are counts ("7 GPUs").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Fact = tuple[str, str, str, str]
Shape = tuple[Fact, ...]
CheckRow = tuple[str, str, str, str]  # (check, level, subject, summary) of a warn or fail finding
Checks = tuple[CheckRow, ...]

SCHEMA = "pinctl.doctor/v2"
BOOT = ("isolcpus", "nohz_full", "iommu", "intel_iommu", "amd_iommu")  # as pinctl.doctor.inventory records them


def _text(value: object) -> str:
    return "unknown" if value is None else str(value)


def counted(value: str, label: str) -> str:
    """``1 package``, ``2 packages``: a count fact's value with its plural label made to agree."""
    if value == "1" and label.endswith("s"):
        label = label[:-1]
    return f"{value} {label}"


def _link(out: list[Fact], key: str, label: str, dev: Mapping[str, Any], device: str) -> None:
    width, gen = dev.get("pcie_width"), dev.get("pcie_gen")
    if width is not None or gen is not None:
        out.append((f"{key}.pcie_width", f"{label} PCIe", f"x{_text(width)}", device))
        out.append((f"{key}.pcie_gen", f"{label} PCIe", f"Gen{_text(gen)}", device))


def _gpus(out: list[Fact], gpus: list[Mapping[str, Any]]) -> None:
    out.append(("count.gpus", "GPUs", str(len(gpus)), ""))
    for g in gpus:
        bus, label = g.get("pci_bus_id"), f"GPU {g.get('index')}"
        device, key = f"{label} ({bus})", f"gpu.{bus}"
        out.append((f"{key}.model", f"{label} model", _text(g.get("model")), device))
        _link(out, key, label, g, device)
        out.append((f"{key}.numa", f"{label} NUMA node", _text(g.get("numa_node")), device))
        out.append((f"{key}.nvlinks", f"{label} NVLinks", _text(g.get("nvlinks")), device))


def _rate(gbps: object) -> str:
    if not isinstance(gbps, int | float):
        return "rate unknown"
    return f"{gbps:g} Gb/s"


def _nics(out: list[Fact], nics: list[Mapping[str, Any]]) -> None:
    rdma = [n for n in nics if n.get("rdma")]
    out.append(("count.rdma_nics", "RDMA NICs", str(len(rdma)), ""))
    out.append(("count.other_nics", "other NICs", str(len(nics) - len(rdma)), ""))
    for n in rdma:
        name = str(n.get("name"))
        key = f"nic.{name}"
        out.append((f"{key}.kind", f"{name} kind", _text(n.get("kind")), name))
        out.append((f"{key}.link_layer", f"{name} link layer", _text(n.get("link_layer")), name))
        out.append((f"{key}.rate", name, _rate(n.get("rate_gbps")), name))
        out.append((f"{key}.state", f"{name} port", _text(n.get("state")), name))
        out.append((f"{key}.numa", f"{name} NUMA node", _text(n.get("numa_node")), name))
        _link(out, key, name, n, name)


def _nvme(out: list[Fact], drives: list[Mapping[str, Any]]) -> None:
    out.append(("count.nvme", "NVMe drives", str(len(drives)), ""))
    for d in drives:
        name = str(d.get("name"))
        out.append((f"nvme.{name}.model", f"{name} model", _text(d.get("model")), name))
        out.append((f"nvme.{name}.size", name, f"{_text(d.get('size_gib'))} GiB", name))
        out.append((f"nvme.{name}.numa", f"{name} NUMA node", _text(d.get("numa_node")), name))


def _cpus(out: list[Fact], hw: Mapping[str, Any]) -> None:
    out.append(("count.packages", "packages", _text(hw.get("packages")), ""))
    out.append(("count.cpus", "CPUs", _text(hw.get("cpus")), ""))
    out.append(("count.cores", "cores", _text(hw.get("cores")), ""))
    out.append(("smt", "SMT", f"{_text(hw.get('smt'))} threads per core", ""))
    numa = hw.get("numa") or {}
    nodes = numa.get("nodes") or []
    out.append(("numa.nps", "", f"NPS{_text(numa.get('per_package'))}", ""))
    out.append(("count.numa", "NUMA nodes", str(len(nodes)), ""))
    for n in nodes:
        i = n.get("os_index")
        device = f"NUMA node {i}"
        out.append((f"numa.{i}.cpus", device, f"{_text(n.get('cpus'))} CPUs", device))
        out.append((f"numa.{i}.memory", device, f"{_text(n.get('memory_gib'))} GiB", device))
        out.append((f"numa.{i}.kind", f"{device} kind", _text(n.get("kind")), device))
    distances = numa.get("distances")
    if distances is not None:
        rows = "; ".join(" ".join(_text(d) for d in row) for row in distances)
        out.append(("numa.distances", "NUMA distances", rows, ""))


def _kernel(out: list[Fact], kernel: Mapping[str, Any]) -> None:
    out.append(("kernel.numa_balancing", "numa_balancing", _text(kernel.get("numa_balancing")), ""))
    out.append(("kernel.thp_defrag", "THP defrag", _text(kernel.get("thp_defrag")), ""))
    out.append(("kernel.governors", "governor", ",".join(kernel.get("governors") or []) or "none", ""))
    out.append(("kernel.offline_cpus", "offline CPUs", _text(kernel.get("offline_cpus")), ""))
    if "nvidia_driver" in kernel:  # reports from before issue 19 lack it
        out.append(("kernel.nvidia_driver", "NVIDIA driver", _text(kernel.get("nvidia_driver")), ""))
    boot = kernel.get("boot") or {}
    for name in sorted(set(BOOT) | set(boot)):  # an unset parameter is a value too: "isolcpus 2-7, fleet unset"
        out.append((f"kernel.boot.{name}", name, str(boot.get(name, "unset")), ""))


def facts(report: Mapping[str, Any]) -> Shape:
    """The shape of one ``pinctl.doctor/v2`` report (:mod:`pinctl.fleet.read` checks its schema first)."""
    inventory = report.get("inventory") or {}
    hw, kernel = inventory.get("hardware"), inventory.get("kernel")
    out: list[Fact] = []
    if hw is None:
        out.append(("topology", "topology", "unknown (discovery failed)", ""))
    else:
        _gpus(out, hw.get("gpus") or [])
        _nics(out, hw.get("nics") or [])
        _nvme(out, hw.get("nvme") or [])
        _cpus(out, hw)
    if kernel is not None:
        _kernel(out, kernel)
    return tuple(out)


def problems(report: Mapping[str, Any]) -> Checks:
    """The report's warn and fail findings as (check, level, subject, summary), in report order."""
    rows = []
    for f in report.get("findings") or []:
        if isinstance(f, Mapping) and f.get("level") in ("warn", "fail"):
            rows.append((str(f.get("check")), str(f.get("level")), str(f.get("subject")), str(f.get("summary"))))
    return tuple(rows)


def summary(shape: Shape) -> str:
    """One line naming a shape: "8 GPUs (10de:2330 Gen5 x16), 8 RDMA NICs (400 Gb/s), 2 packages, NPS1"."""
    values = {key: value for key, _, value, _ in shape}
    if "topology" in values:
        return "topology unknown"

    def common(suffix: str, prefix: str) -> str:
        seen = sorted({v for k, v in values.items() if k.startswith(prefix) and k.endswith(suffix)})
        return "/".join(seen)

    gpu = " ".join(
        p for p in (common(".model", "gpu."), common(".pcie_gen", "gpu."), common(".pcie_width", "gpu.")) if p
    )
    parts = [
        counted(values.get("count.gpus", "0"), "GPUs") + (f" ({gpu})" if gpu else ""),
        counted(values.get("count.rdma_nics", "0"), "RDMA NICs")
        + (f" ({r})" if (r := common(".rate", "nic.")) else ""),
        counted(values.get("count.cpus", "?"), "CPUs"),
        counted(values.get("count.packages", "?"), "packages"),
        values.get("numa.nps", "NPS?"),
    ]
    return ", ".join(parts)
