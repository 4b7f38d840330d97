"""Node health beyond topology (issue 19): GPU clocks, ECC, NVLink errors, fabric, firmware, Xid
events, RDMA link errors and GPUDirect prerequisites.

NVML facts come through NVIDIA's real binding over tests/nvmlshim (planted per GPU in its
config); kernel facts from the trees fixtures/gen_health.py writes. Each check must fire on
the fault it names, and stay quiet on a healthy node, including a busy one (software power
cap, application clocks, corrected ECC errors).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
from fleet_helpers import run_cli
from health_helpers import REPO, by_level, context, health_trees, nvml_health, shim_env
from nodes import pci, two_sockets

from pinctl.discovery.nvml import NvmlHealth
from pinctl.doctor import gpudirect, gpuhealth, rdma, xid
from pinctl.model import Storage

GPU_CHECKS = (gpuhealth.clocks, gpuhealth.ecc, gpuhealth.nvlink_errors, gpuhealth.fabric, gpuhealth.driver_versions)

SICK = """
gpu.2.clock_events = hw_slowdown,hw_thermal
gpu.5.clock_events = hw_power_brake
gpu.3.ecc_errors = 40,2,90,3
gpu.4.ecc_errors = 0,0,15,1
gpu.6.nvlink.3.errors = 0,0,7,0
gpu.6.nvlink.5.errors = 2,1,0,0
gpu.6.nvlink_down = 5
gpu.7.fabric = in_progress
gpu.1.fabric_status = UNKNOWN
gpu.3.fabric_health = 0x41A9
gpu.0.gsp_version = 535.104.05
gpu.4.vbios = 96.00.61.00.01
"""

BUSY_BUT_HEALTHY = """
gpu.0.clock_events = sw_power_cap
gpu.1.clock_events = app_clocks,sw_power_cap
gpu.2.clock_events = 0
gpu.3.ecc_errors = 1200,0,56000,0
"""


@pytest.fixture(scope="module")
def sick(nvmlshim: Path, tmp_path_factory: pytest.TempPathFactory) -> NvmlHealth:
    return nvml_health(nvmlshim, tmp_path_factory.mktemp("sick"), SICK)


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return health_trees(tmp_path_factory.mktemp("health"))


@pytest.mark.parametrize(
    "config",
    ["", BUSY_BUT_HEALTHY, "gpu.1.mig = 1\ngpu.1.mig.0.gi = 1\ngpu.1.mig.0.ci = 0\n", "visible = 2,5\n"],
    ids=["idle", "busy", "mig", "partial"],
)
def test_a_healthy_dgx_passes_every_gpu_health_check(nvmlshim: Path, tmp_path: Path, config: str) -> None:
    ctx = context(health=nvml_health(nvmlshim, tmp_path, config))
    for check in GPU_CHECKS:
        levels = by_level(check(ctx))
        assert set(levels) == {"ok"}, (check.__name__, levels)
        assert all(len(f.summary) <= 50 for f in check(ctx)), levels  # one line each at 80 columns
    if config == BUSY_BUT_HEALTHY:  # the normal reasons are named, not alarmed
        (clocks,) = gpuhealth.clocks(ctx)
        assert clocks.evidence == (
            "normal reasons now (not alarmed): GPU idle, SW power cap, applications clocks setting",
        )


def test_thermal_and_power_brake_slowdowns_are_named_per_gpu(sick: NvmlHealth) -> None:
    found = by_level(gpuhealth.clocks(context(health=sick)))
    assert set(found) == {"warn"}
    assert found["warn"] == [
        "GPU 2 (0000:3a:00.0): throttled: HW slowdown, HW thermal slowdown",
        "GPU 5 (0000:ab:00.0): throttled: HW power brake slowdown",
    ]


def test_uncorrectable_ecc_fails_now_and_warns_for_history(sick: NvmlHealth) -> None:
    found = by_level(gpuhealth.ecc(context(health=sick)))
    assert found["fail"] == ["GPU 3 (0000:5d:00.0): 2 uncorrectable ECC errors since driver load"]
    assert found["warn"] == ["GPU 4 (0000:9a:00.0): 1 uncorrectable ECC error in its lifetime"]


def test_nvlink_error_counters_are_named_per_link(sick: NvmlHealth) -> None:
    findings = gpuhealth.nvlink_errors(context(health=sick))
    assert [(f.severity, f.subject, f.summary) for f in findings] == [
        ("warn", "GPU 6 (0000:ba:00.0)", "NVLink errors on links 3,5")
    ]
    assert findings[0].evidence == (
        "nvmlDeviceGetNvLinkErrorCounter(GPU 6, link 3): CRC flit = 7",
        "nvmlDeviceGetNvLinkErrorCounter(GPU 6, link 5): replay = 2, recovery = 1 (link now down)",
    )


def test_fabric_registration_not_complete_or_failed_fails(sick: NvmlHealth) -> None:
    found = by_level(gpuhealth.fabric(context(health=sick)))
    assert set(found) == {"fail", "warn"}
    assert found["fail"] == [
        "GPU 1 (0000:2a:00.0): fabric registration failed (Unknown Error)",
        "GPU 7 (0000:db:00.0): fabric registration in progress",
    ]
    assert found["warn"] == ["GPU 3 (0000:5d:00.0): NVLink bandwidth degraded"]  # healthMask DEGRADED_BW_TRUE
    failed = [f for f in gpuhealth.fabric(context(health=sick)) if f.severity == "fail"]
    assert all(f.remedy.startswith("CUDA init fails on this GPU") for f in failed)  # the consequence, in the fix


def test_firmware_of_another_driver_and_mixed_vbios_are_named(sick: NvmlHealth) -> None:
    findings = gpuhealth.driver_versions(context(health=sick))
    assert [(f.severity, f.summary) for f in findings] == [
        ("fail", "GSP firmware not at driver 550.90.07 on GPU 0"),
        ("warn", "VBIOS differs on GPU 4 of 8 GPUs"),
    ]
    assert {"model: NVIDIA H100 80GB HBM3", "most GPUs: 96.00.89.00.01"} <= set(findings[1].evidence)


def test_no_fabric_is_not_applicable_and_an_old_driver_still_reports_clocks(nvmlshim: Path, tmp_path: Path) -> None:
    config = (
        "fail.nvmlDeviceGetGpuFabricInfoV = NOT_SUPPORTED\nfail.nvmlDeviceGetGpuFabricInfo = NOT_SUPPORTED\n"
        "fail.nvmlDeviceGetCurrentClocksEventReasons = FUNCTION_NOT_FOUND\n"
        "gpu.1.clock_events = sw_thermal\n"
    )
    ctx = context(health=nvml_health(nvmlshim, tmp_path, config))
    assert by_level(gpuhealth.fabric(ctx))["skipped"] == ["node: no NVLink fabric (not an NVSwitch system)"]
    assert by_level(gpuhealth.clocks(ctx))["warn"] == ["GPU 1 (0000:2a:00.0): throttled: SW thermal slowdown"]


def test_lost_gpus_are_left_to_gpu_lost(nvmlshim: Path, tmp_path: Path) -> None:
    ctx = context(health=nvml_health(nvmlshim, tmp_path, "gpu.3.lost = queries\n"))
    for check in GPU_CHECKS:
        assert "GPU 3" not in json.dumps([f.to_dict() for f in check(ctx)]), check.__name__


# --- kernel facts ---------------------------------------------------------------------------


def _storage_node():  # type: ignore[no-untyped-def]
    """two_sockets with its NVMe moved under GPU 0's switch (port 17:03.0), as on a DGX."""
    nvme = Storage(
        "nvme0n1", pci("0000:1a:00.0", ("0000:17:03.0", "0000:16:00.0", "0000:15:01.0"), 0, "sw16", "hb0"), model="fake"
    )
    return replace(two_sockets(), storage=(nvme,))


NODE_CHECKS = (gpudirect.peer_memory, gpudirect.storage, gpudirect.acs_redirect, gpudirect.iommu)


def test_a_healthy_node_passes_the_kernel_side_checks(trees: dict[str, Path]) -> None:
    ctx = context(trees["healthy"], _storage_node())
    for check in (*NODE_CHECKS, rdma.link_errors, xid.xid_events):
        levels = by_level(check(ctx))
        assert set(levels) == {"ok"}, (check.__name__, levels)
    (note,) = xid.xid_events(ctx)
    assert "1 program-fault Xid" in note.summary and "GPU 1 (0000:98:00.0): Xid 31" in note.evidence[0]


def test_xid_events_are_named_with_their_gpu_and_meaning(trees: dict[str, Path]) -> None:
    found = by_level(xid.xid_events(context(trees["sick"], two_sockets())))
    assert found == {
        "fail": [
            "GPU 0 (0000:18:00.0): Xid 79 (GPU has fallen off the bus) x1, last 36 min ago",
            "GPU 1 (0000:98:00.0): Xid 48 (double-bit ECC error) x1, last 20 min ago",
        ]
    }


def test_an_unreadable_kernel_log_is_skipped_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (found,) = xid.xid_events(context(tmp_path))
    assert found.severity == "skipped" and "no kernel log in this tree" in found.summary


def test_the_live_kernel_log_is_read_or_skipped_with_why() -> None:
    first = xid.xid_events(context("/"))[0]
    if first.severity == "skipped":
        assert "permission denied" in first.summary, first
    else:
        assert "kernel log line" in first.summary or first.summary.startswith("Xid"), first


def test_a_flapping_rdma_port_is_named(trees: dict[str, Path]) -> None:
    (found,) = rdma.link_errors(context(trees["sick"]))
    assert (found.severity, found.subject) == ("warn", "mlx5_1 port 1")
    assert found.evidence == (
        "/sys/class/infiniband/mlx5_1/ports/1/counters/link_downed = 3",
        "/sys/class/infiniband/mlx5_1/ports/1/counters/symbol_error = 120",
    )


def test_missing_gpudirect_prerequisites_are_named(trees: dict[str, Path]) -> None:
    ctx = context(trees["sick"], _storage_node())
    peer, gds, acs, iommu = (check(ctx) for check in NODE_CHECKS)
    assert [f.severity for f in (*peer, *gds, *iommu)] == ["warn", "warn", "warn"]
    assert peer[0].summary == "nvidia_peermem not loaded: 2 GPUs need it"
    assert "/proc/modules: nv_peer_mem not listed" in peer[0].evidence  # the older name was looked for too
    assert "GPU 0 (0000:18:00.0) shares a PCIe switch with mlx5_0" in peer[0].evidence
    assert "nvidia_fs not loaded" in gds[0].summary
    assert [(f.severity, f.subject) for f in acs] == [("warn", "switch port 0000:17:00.0")]
    assert "(P2P request redirect and P2P completion redirect)" in acs[0].evidence[0]
    assert "between GPU 0 (0000:18:00.0) - mlx5_0" in acs[0].evidence
    assert "type = DMA-FQ" in iommu[0].evidence[0]
    # one short line each at 80 columns: the detail is in the evidence
    assert [f.summary for f in (*peer, *gds, *acs, *iommu, *rdma.link_errors(ctx)) if len(f.summary) > 50] == []


def test_acs_needs_root_and_nothing_shared_is_not_applicable(trees: dict[str, Path]) -> None:
    (acs,) = gpudirect.acs_redirect(context(trees["nonroot"], two_sockets()))
    assert (acs.severity, acs.subject, acs.summary) == (
        "skipped", "switch port 0000:17:00.0", "needs root (ACS is in the extended config space)"
    )  # fmt: skip
    (gds,) = gpudirect.storage(context(trees["healthy"], two_sockets()))  # its NVMe hangs off a root port
    assert gds.severity == "skipped" and gds.summary == "no GPU on a PCIe switch with NVMe"


def test_existing_doctor_fixtures_raise_no_new_alarm() -> None:
    from doctor_helpers import FIXTURES

    for case in ("good", "dgx"):
        ctx = context(FIXTURES / case, two_sockets())
        for check in (*NODE_CHECKS, rdma.link_errors, xid.xid_events):
            assert {f.severity for f in check(ctx)} <= {"ok", "skipped"}, (case, check.__name__)


# --- through the CLI: JSON, Prometheus, fleet ------------------------------------------------


def _doctor(shim: Path, conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    only = "gpu.clocks,gpu.ecc,gpu.nvlink-errors,gpu.fabric,gpu.driver"
    return subprocess.run(
        [sys.executable, "-m", "pinctl", "doctor", "--only", only, *args],
        env=shim_env(shim, conf),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_doctor_json_and_prometheus_carry_the_new_findings(nvmlshim: Path, tmp_path: Path) -> None:
    conf = tmp_path / "sick.conf"
    conf.write_text(SICK)
    done = _doctor(nvmlshim, conf, "--json")
    assert done.returncode == 2, done.stderr
    report = json.loads(done.stdout)
    jsonschema.validate(report, json.loads((REPO / "pinctl" / "schemas" / "doctor-v2.json").read_text()))
    levels = {(f["check"], f["level"]) for f in report["findings"]}
    assert {
        ("gpu.clocks", "warn"),
        ("gpu.ecc", "fail"),
        ("gpu.nvlink-errors", "warn"),
        ("gpu.fabric", "fail"),
        ("gpu.driver", "fail"),
    } <= levels
    prom = _doctor(nvmlshim, conf, "--format", "prometheus").stdout
    assert 'check="gpu.clocks"' in prom and 'level="warn"' in prom


def test_fleet_names_the_node_whose_gpu_throttles(
    nvmlshim: Path, tmp_path: Path, fleet_reports: dict[str, Path]
) -> None:
    """A peer group of identical nodes; one reports gpu.clocks warn (as doctor wrote it): fleet names it."""
    conf = tmp_path / "hot.conf"
    conf.write_text("gpu.2.clock_events = hw_thermal\n")
    hot = json.loads(_doctor(nvmlshim, conf, "--json").stdout)["findings"]
    healthy = sorted(p for name, p in fleet_reports.items() if name[5:].isdigit())[:4]  # node-001 ...
    folder = tmp_path / "reports"
    folder.mkdir()
    for i, path in enumerate(healthy):
        report = json.loads(path.read_text())
        if i == 0:
            report["findings"] += hot
        (folder / path.name).write_text(json.dumps(report))
    rc, out, err = run_cli("fleet", "--json", str(folder))
    verdict = json.loads(out)
    odd = {o["node"]: o for o in verdict["outliers"]}
    assert list(odd) == ["node-001"], (odd, err)
    assert rc == 1 and "gpu.clocks" in json.dumps(odd["node-001"])


def test_an_xid_from_days_ago_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "dev").mkdir()
    (tmp_path / "proc" / "uptime").write_text("259200.00 1000.00\n")  # up 3 days
    (tmp_path / "dev" / "kmsg").write_text(
        "3,77,3600000000,-;NVRM: Xid (PCI:0000:18:00): 79, pid=1, name=x, GPU has fallen off the bus.\n"
    )
    (found,) = xid.xid_events(context(tmp_path, two_sockets()))
    assert (found.severity, found.summary) == ("warn", "Xid 79 (GPU has fallen off the bus) x1, last 71 h 0 min ago")
    assert "over a day old" in (found.remedy or "")


def test_dma_buf_on_the_open_kernel_module_stands_in_for_nvidia_peermem(trees: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "open"
    shutil.copytree(trees["sick"], root, symlinks=True)
    (root / "proc" / "driver" / "nvidia").mkdir(parents=True)
    (root / "proc" / "driver" / "nvidia" / "version").write_text(
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.90.07  Release Build\n"
    )
    (root / "proc" / "sys" / "kernel").mkdir(parents=True)
    (root / "proc" / "sys" / "kernel" / "osrelease").write_text("6.8.0-45-generic\n")
    (found,) = gpudirect.peer_memory(context(root, two_sockets()))
    assert found.severity == "ok" and "DMA-BUF" in found.summary
