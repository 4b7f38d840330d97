"""A doctor report in node_exporter's textfile-collector format (Prometheus text exposition 0.0.4).

node_exporter reads ``*.prom`` files from ``--collector.textfile.directory``; each sample here
is a gauge, so a dashboard or alert can count failed checks per node or spot a node with 7
GPUs or an HCA at 200 Gb/s across the fleet. Label values are escaped as the format requires
(backslash, double quote, newline).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_LEVELS = ("ok", "warn", "fail", "skipped", "n/a")


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: object) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return f"{value:g}" if isinstance(value, float) else str(value)


def textfile(report: Mapping[str, Any]) -> str:
    """The report as gauges: one per finding (check, level, subject) plus the node's shape."""
    host = report.get("hostname") or "unknown"
    lines: list[str] = []

    def gauge(name: str, help_text: str, samples: list[tuple[dict[str, object], object]]) -> None:
        rows = [(labels, n) for labels, value in samples if (n := _number(value)) is not None]
        if not rows:
            return
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        lines.extend(f"{name}{_labels(host=host, **labels)} {n}" for labels, n in rows)

    findings = [f for f in report.get("findings") or [] if isinstance(f, Mapping)]
    gauge(
        "pinctl_doctor_check",
        "1 for each doctor finding, labelled with its check id, level and subject.",
        [({"check": f.get("check"), "level": f.get("level"), "subject": f.get("subject")}, 1) for f in findings],
    )
    summary = report.get("summary") or {}
    gauge(
        "pinctl_doctor_findings",
        "Number of doctor findings at each level.",
        [({"level": level}, summary.get(level, 0)) for level in _LEVELS],
    )
    gauge(
        "pinctl_doctor_exit_code",
        "pinctl doctor's exit status: 0 healthy, 1 warnings, 2 failures.",
        [({}, report.get("exit_code"))],
    )
    hw = (report.get("inventory") or {}).get("hardware") or {}
    gpus, nics = hw.get("gpus") or [], hw.get("nics") or []
    if hw:
        gauge("pinctl_node_gpus", "GPUs found on the node.", [({}, len(gpus))])
        gauge("pinctl_node_rdma_nics", "RDMA NICs found on the node.", [({}, sum(1 for n in nics if n.get("rdma")))])
        gauge(
            "pinctl_node_numa_per_package",
            "NUMA nodes per CPU package (the NPS mode on AMD).",
            [({}, (hw.get("numa") or {}).get("per_package"))],
        )
    gauge(
        "pinctl_gpu_pcie_width",
        "Current PCIe link width of each GPU (lanes).",
        [({"gpu": g.get("index"), "pci": g.get("pci_bus_id")}, g.get("pcie_width")) for g in gpus],
    )
    gauge(
        "pinctl_gpu_pcie_generation",
        "Current PCIe generation of each GPU's link.",
        [({"gpu": g.get("index"), "pci": g.get("pci_bus_id")}, g.get("pcie_gen")) for g in gpus],
    )
    gauge(
        "pinctl_nic_rate_gbps",
        "Rate of each NIC's primary port in Gb/s.",
        [({"nic": n.get("name"), "kind": n.get("kind")}, n.get("rate_gbps")) for n in nics],
    )
    gauge(
        "pinctl_nic_pcie_width",
        "Current PCIe link width of each NIC (lanes).",
        [({"nic": n.get("name")}, n.get("pcie_width")) for n in nics],
    )
    return "\n".join(lines) + "\n"
