"""``pinctl doctor``: the topology minutiae that silently slow a GPU node down.

Each check is a small function ``(DoctorContext) -> list[Finding]`` registered
here under a stable id (``area.name``); ids are what ``--only``/``--skip``,
the JSON output and docs/doctor.md agree on. The runner turns a check's
permission error into "skipped: needs root" so a health check run as an
ordinary user degrades instead of failing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pinctl.doctor import gpu, gpudirect, gpudriver, gpuhealth, irq, node, numa, pcie, procs, rdma, settings, xid
from pinctl.doctor.finding import SEVERITIES, DoctorContext, Finding, needs_root, not_applicable
from pinctl.errors import UsageError
from pinctl.kernel.files import NeedsRoot

__all__ = ["CHECKS", "DoctorContext", "Finding", "exit_code", "run_checks", "select", "summarize"]

CheckFn = Callable[[DoctorContext], list[Finding]]


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    fn: CheckFn
    needs_node: bool = True  # False: runs on files or NVML alone, so discovery can be skipped
    live: str | None = None  # what of the live node it reads (n/a on a topology file alone); None: the model

    @property
    def area(self) -> str:
        return self.id.partition(".")[0]


CHECKS: tuple[Check, ...] = (
    Check(node.CHECK, "topology discovery worked", node.discovery),
    Check(pcie.CHECK, "PCIe links at full speed and width", pcie.link_degraded, live="PCIe link files"),
    Check(rdma.PORT_DOWN, "RDMA ports ACTIVE and LinkUp", rdma.port_down, needs_node=False),
    Check(rdma.STACK, "every ConnectX on mlx5_core has its RDMA device", rdma.stack_missing, needs_node=False),
    Check(rdma.NO_GDR, "each GPU has a NIC under a shared PCIe switch", rdma.no_gdr_path),
    Check(rdma.IMBALANCE, "GPUs spread evenly over RDMA NICs", rdma.nic_imbalance),
    Check(
        rdma.LINK_ERRORS,
        "RDMA ports without link errors",
        rdma.link_errors,
        needs_node=False,
        live="RDMA port counters",
    ),
    Check(gpudirect.PEERMEM, "peer-memory module for GPUDirect RDMA", gpudirect.peer_memory, live="kernel modules"),
    Check(gpudirect.STORAGE, "nvidia_fs for GPUDirect Storage", gpudirect.storage, live="kernel modules"),
    Check(gpudirect.ACS, "no ACS redirect between GPUs and NICs", gpudirect.acs_redirect, live="PCI config space"),
    Check(gpudirect.IOMMU, "IOMMU off or passthrough on GPUDirect paths", gpudirect.iommu, live="IOMMU settings"),
    Check(numa.UNKNOWN, "GPU/NIC NUMA locality known", numa.unknown_locality),
    Check(numa.MEMORYLESS, "NUMA nodes with CPUs have memory", numa.memoryless_node),
    Check(numa.CPULESS, "CPU-less NUMA nodes are memory tiers", numa.cpuless_node),
    Check(
        settings.NUMA_BALANCING,
        "automatic NUMA balancing off",
        settings.numa_balancing,
        needs_node=False,
        live="kernel settings",
    ),
    Check(
        settings.THP_DEFRAG, "THP defrag not 'always'", settings.thp_defrag, needs_node=False, live="kernel settings"
    ),
    Check(
        settings.GOVERNOR,
        "CPU governor 'performance'",
        settings.cpufreq_governor,
        needs_node=False,
        live="cpufreq settings",
    ),
    Check(settings.OFFLINE, "no offline CPUs", settings.offline_cpus, needs_node=False, live="CPU online state"),
    Check(
        settings.ISOLCPUS,
        "isolated CPUs vs housekeeping",
        settings.isolcpus,
        needs_node=False,
        live="kernel command line",
    ),
    Check(irq.CHECK, "NIC/NVMe IRQs on local CPUs", irq.remote_numa, live="IRQ affinities"),
    Check(gpu.PERSISTENCE, "GPU persistence mode on", gpu.persistence_mode, needs_node=False, live="NVML"),
    Check(gpu.LOST, "no GPU lost", gpu.lost, needs_node=False, live="NVML"),
    Check(gpu.MEMORY, "no pending or failed memory retirement", gpu.memory_retirement, needs_node=False, live="NVML"),
    Check(gpu.NVLINK, "expected NVLinks active", gpu.nvlink_missing, live="NVML"),
    Check(gpu.REPLAY, "no PCIe replays", gpu.pcie_replay, needs_node=False, live="NVML"),
    Check(gpuhealth.CLOCKS, "no thermal or hardware clock slowdown", gpuhealth.clocks, needs_node=False, live="NVML"),
    Check(gpuhealth.ECC, "no uncorrectable ECC errors", gpuhealth.ecc, needs_node=False, live="NVML"),
    Check(gpuhealth.NVLINK_ERRORS, "no NVLink errors", gpuhealth.nvlink_errors, needs_node=False, live="NVML"),
    Check(gpuhealth.FABRIC, "GPUs registered with the NVLink fabric", gpuhealth.fabric, needs_node=False, live="NVML"),
    Check(
        gpudriver.CHECK,
        "NVIDIA driver, its library and GPU firmware agree",
        gpudriver.driver,
        needs_node=False,
        live="NVML",
    ),
    Check(xid.CHECK, "no hardware Xid events in the kernel log", xid.xid_events, needs_node=False, live="kernel log"),
    Check(procs.CHECK, "GPU processes pinned near their GPU", procs.mis_pinned, live="processes"),
)


def _parse_ids(spec: str, option: str) -> set[str]:
    """``rdma,kernel.thp-defrag`` -> check ids; an area name selects all its checks."""
    ids = {c.id for c in CHECKS}
    areas = {c.area for c in CHECKS}
    out: set[str] = set()
    for token in (t.strip() for t in spec.split(",")):
        if not token:
            continue
        if token in ids:
            out.add(token)
        elif token.rstrip(".") in areas:
            out.update(c.id for c in CHECKS if c.area == token.rstrip("."))
        else:
            raise UsageError(
                f"{option}: unknown check {token!r} (areas: {', '.join(sorted(areas))}; ids: pinctl doctor --list)"
            )
    return out


def select(only: str | None = None, skip: str | None = None) -> tuple[Check, ...]:
    """The checks to run, in registry order."""
    chosen = _parse_ids(only, "--only") if only else {c.id for c in CHECKS}
    if skip:
        chosen -= _parse_ids(skip, "--skip")
    return tuple(c for c in CHECKS if c.id in chosen)


def run_checks(ctx: DoctorContext, checks: Iterable[Check] = CHECKS, *, debug: bool = False) -> list[Finding]:
    """Run each check; a permission error becomes "needs root", a bug "skipped" (raised with *debug*)."""
    out: list[Finding] = []
    for check in checks:
        if ctx.offline and check.live is not None:
            out.append(not_applicable(check.id, check.live))
            continue
        try:
            out.extend(check.fn(ctx))
        except NeedsRoot as exc:
            out.append(needs_root(check.id, str(exc)))
        except Exception as exc:
            if debug:
                raise
            out.append(
                Finding(
                    check.id,
                    "skipped",
                    "pinctl",
                    f"internal error: {type(exc).__name__}: {exc}",
                    remedy="report this with `pinctl --debug doctor` output",
                )
            )
    return out


def summarize(findings: Iterable[Finding]) -> dict[str, int]:
    counts = Counter(f.severity for f in findings)
    return {severity: counts.get(severity, 0) for severity in SEVERITIES}


def summary_line(counts: dict[str, int]) -> str:
    # "n/a" only where a topology file alone made checks inapplicable
    return ", ".join(f"{counts[s]} {s}" for s in SEVERITIES if s != "n/a" or counts.get(s))


def exit_code(findings: Iterable[Finding], *, strict: bool = False) -> int:
    """0 all ok/skipped/n/a, 1 warnings (2 with *strict*), 2 failures."""
    severities = {f.severity for f in findings}
    if "fail" in severities:
        return 2
    if "warn" in severities:
        return 2 if strict else 1
    return 0
