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


class Gauges:
    """A textfile being written: ``gauge`` adds one metric's HELP, TYPE and samples, each labelled
    with the host; a metric with no numeric sample is left out (a field the node could not tell)."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.lines: list[str] = []

    def gauge(self, name: str, help_text: str, samples: list[tuple[dict[str, object], object]]) -> None:
        rows = [(labels, n) for labels, value in samples if (n := _number(value)) is not None]
        if not rows:
            return
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} gauge")
        self.lines.extend(f"{name}{_labels(host=self.host, **labels)} {n}" for labels, n in rows)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def textfile(report: Mapping[str, Any]) -> str:
    """The report as gauges: one per finding (check, level, subject) plus the node's shape."""
    g = Gauges(str(report.get("hostname") or "unknown"))
    gauge = g.gauge

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
    return g.text()


def watch_textfile(doc: Mapping[str, Any]) -> str:
    """One ``watch`` interval (pinctl.watch/v1) as gauges per target."""
    g = Gauges(str(doc.get("hostname") or "unknown"))
    targets = [t for t in doc.get("targets") or [] if isinstance(t, Mapping)]

    def per_target(key: str) -> list[tuple[dict[str, object], object]]:
        return [({"target": t.get("name"), "cpus": t.get("cpulist")}, t.get(key)) for t in targets]

    g.gauge(
        "pinctl_watch_foreign_cpu_percent",
        "Share of the target's CPUs' time other threads took.",
        per_target("foreign_cpu_pct"),
    )
    g.gauge("pinctl_watch_irq_per_second", "Interrupts per second on the target's CPUs.", per_target("irq_per_s"))
    g.gauge(
        "pinctl_watch_steal_percent", "Share of the target's CPUs' time the hypervisor took.", per_target("steal_pct")
    )
    g.gauge(
        "pinctl_watch_involuntary_switches_per_second",
        "Times per second the target's threads were preempted.",
        per_target("involuntary_switches_per_s"),
    )
    g.gauge(
        "pinctl_watch_remote_memory_percent",
        "Share of the target's pages on nodes outside its policy.",
        per_target("remote_memory_pct"),
    )
    g.gauge(
        "pinctl_watch_gpu_clock_slowdown",
        "1 for each reason NVML gives for a GPU's clocks being held down.",
        [
            ({"gpu": gpu.get("index"), "reason": r}, 1)
            for gpu in doc.get("gpus") or []
            if isinstance(gpu, Mapping)
            for r in gpu.get("slowdowns") or []
        ],
    )
    g.gauge(
        "pinctl_watch_bound_crossed",
        "1 when a --max-* bound was crossed in the interval.",
        [({}, 0 if doc.get("ok", True) else 1)],
    )
    return g.text()


def noise_textfile(doc: Mapping[str, Any]) -> str:
    """A ``noise`` run (pinctl.noise/v1) as gauges per CPU."""
    g = Gauges(str(doc.get("hostname") or "unknown"))
    cpus = [c for c in doc.get("cpus") or [] if isinstance(c, Mapping)]
    method = str(doc.get("method") or "")

    def per_cpu(key: str) -> list[tuple[dict[str, object], object]]:
        return [({"cpu": c.get("cpu"), "class": c.get("class") or "", "method": method}, c.get(key)) for c in cpus]

    g.gauge(
        "pinctl_noise_lost_percent",
        "Share of the CPU's time lost to interruptions during the probe.",
        per_cpu("lost_pct"),
    )
    g.gauge("pinctl_noise_max_detour_microseconds", "Longest interruption seen on the CPU.", per_cpu("max_detour_us"))
    g.gauge(
        "pinctl_noise_p99_detour_microseconds", "99th percentile interruption on the CPU.", per_cpu("p99_detour_us")
    )
    g.gauge(
        "pinctl_noise_bound_crossed", "1 when a --max-* bound was crossed.", [({}, 0 if doc.get("ok", True) else 1)]
    )
    return g.text()
