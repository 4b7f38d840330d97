"""pinctl's three NVML queries through NVIDIA's real binding over the stand-in libnvidia-ml.so.1.

What the Python fakes in test_discover_nvml.py / test_doctor_gpu.py checked with a module that
only looked like pynvml is checked here with nvidia-ml-py itself (its structs, its error classes,
its versioned calls) loading tests/nvmlshim; those fakes remain only for a missing or older
binding, which the stand-in library cannot model.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from nvml_helpers import query_in_child, shim_node

from pinctl.discovery.nvml import GpuHealth, GpuProcesses, Lost, NvmlHealth, NvmlResult, NvmlUnavailable
from pinctl.model import NvLink, PciAddress

A = PciAddress.parse
QUERIES = ("query_nvml", "query_health", "gpu_processes")


def _reason(answer: object) -> str | None:
    if isinstance(answer, NvmlUnavailable):
        return answer.reason
    if isinstance(answer, NvmlHealth):
        return None
    result, reason = answer  # type: ignore[misc]
    return None if result is not None else reason  # type: ignore[no-any-return]


def test_query_reads_identity_nvlink_per_peer_locality_and_link(nvmlshim: Path) -> None:
    config = (
        "gpus = 3\n"
        "gpu.1.nvlinks = 0\ngpu.1.fail.nvmlDeviceGetName = NOT_SUPPORTED\n"  # an old board: no NVLink, no name
        "gpu.1.pcie_gen = 3\ngpu.1.pcie_width = 8\n"
        "gpu.2.lost = handle\n"
    )
    result, reason = query_in_child(shim_node(nvmlshim, config), "query_nvml")
    assert reason is None and isinstance(result, NvmlResult)
    assert result.driver_version == "550.90.07"
    g0, g1, g2 = result.gpus
    assert g0.pci == A("0000:18:00.0") and g0.name == "NVIDIA H100 80GB HBM3" and g0.uuid
    assert g0.memory_bytes == 81559 << 20 and g0.minor == 0 and g0.mig_mode is False
    # 18 links: 5, 4, 4, 5 to the four NVSwitches
    assert g0.nvlinks == tuple(NvLink(A(f"0000:0{k}:00.0"), n) for k, n in zip((5, 6, 7, 8), (5, 4, 4, 5), strict=True))
    assert g0.numa_node == 0 and g0.cpus is not None and {0, 55, 112, 167} <= g0.cpus and 56 not in g0.cpus
    assert g0.pcie is not None and (g0.pcie.gen, g0.pcie.width, g0.pcie.max_gen, g0.pcie.max_width) == (5, 16, 5, 16)
    assert g1.name is None and g1.nvlinks is None and g1.pcie is not None and (g1.pcie.gen, g1.pcie.width) == (3, 8)
    assert g2.pci is None and g2.lost == Lost("GPU_IS_LOST", "handle", "nvmlDeviceGetHandleByIndex(2)")


def test_health_reads_every_field(nvmlshim: Path) -> None:
    config = (
        "gpus = 3\ngpu.0.nvlink_down = 3,7\ngpu.1.persistence = 0\ngpu.1.replay = 12\n"
        "gpu.1.remapped_rows = 0,0,1,0\ngpu.2.lost = queries\n"
    )
    h = query_in_child(shim_node(nvmlshim, config), "query_health")
    assert isinstance(h, NvmlHealth) and h.driver_version == "550.90.07"
    g0, g1, g2 = h.gpus
    assert g0.pci_bus_id == A("0000:18:00.0") and g0.persistence_mode is True and g0.pcie_replay_counter == 0
    assert len(g0.nvlinks) == 18 and g0.active_nvlinks == 16
    assert [i for i, up in g0.nvlinks if not up] == [3, 7]
    assert (g1.persistence_mode, g1.pcie_replay_counter, g1.remap_pending, g1.remap_failure) == (False, 12, True, False)
    assert g2.lost and g2.how == Lost("GPU_IS_LOST", "queries", "nvmlDeviceGetPciInfo(GPU 2)")
    assert g2 == GpuHealth(2, lost=True, error=g2.how.describe(), how=g2.how)  # nothing else believed


def test_health_unsupported_fields_are_none(nvmlshim: Path) -> None:
    unsupported = ("PersistenceMode", "PcieReplayCounter", "RetiredPagesPendingStatus", "RemappedRows")
    config = "gpus = 1\ngpu.0.nvlinks = 0\n" + "".join(f"fail.nvmlDeviceGet{f} = NOT_SUPPORTED\n" for f in unsupported)
    (g,) = query_in_child(shim_node(nvmlshim, config), "query_health").gpus
    assert (g.persistence_mode, g.pcie_replay_counter, g.retired_pages_pending, g.remap_failure) == (
        None, None, None, None)  # fmt: skip
    assert g.nvlinks == ()


def test_processes_per_gpu_in_sysfs_form(nvmlshim: Path) -> None:
    config = (
        "gpus = 3\ngpu.0.procs = 30,10\ngpu.0.graphics_procs = 10,20\ngpu.1.procs = 40\n"
        "gpu.1.fail.nvmlDeviceGetGraphicsRunningProcesses_v3 = NOT_SUPPORTED\n"  # that query adds nothing
        "gpu.2.lost = handle\n"
    )
    per_gpu, note = query_in_child(shim_node(nvmlshim, config), "gpu_processes")
    assert note is None
    assert per_gpu == (
        GpuProcesses(0, "0000:18:00.0", (10, 20, 30)),
        GpuProcesses(1, "0000:2a:00.0", (40,)),
        GpuProcesses(2, None, (), "GPU 2: NVML cannot open it (GPU_IS_LOST)"),
    )


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize(
    ("error", "words"),
    [("DRIVER_NOT_LOADED", "NVIDIA driver not loaded"), ("NO_PERMISSION", "no permission to use NVML"),
     ("LIB_RM_VERSION_MISMATCH", "driver/library version mismatch")],
)  # fmt: skip
def test_every_query_says_why_in_one_wording(nvmlshim: Path, query: str, error: str, words: str) -> None:
    reason = _reason(query_in_child(shim_node(nvmlshim, f"init_error = {error}\n"), query))
    assert reason is not None and reason.startswith("NVML not available: ") and words in reason
    if query == "query_nvml":  # ready to be a Node note
        assert reason.endswith("; GPU names/UUIDs/NVLink unknown")


@pytest.mark.parametrize("query", QUERIES)
def test_a_failing_count_is_a_reason_and_nvml_is_shut_down(nvmlshim: Path, tmp_path: Path, query: str) -> None:
    env = shim_node(nvmlshim, "count_error = NO_PERMISSION\n")
    env["FAKE_NVML_TRACE"] = str(tmp_path / "calls.tsv")
    reason = _reason(query_in_child(env, query))
    assert reason is not None and "cannot count GPUs (no permission to use NVML)" in reason
    calls = [line.split("\t")[0] for line in (tmp_path / "calls.tsv").read_text().splitlines()]
    assert calls[0].startswith("nvmlInit") and calls[-1] == "nvmlShutdown"


def test_the_init_error_is_named_for_doctor(nvmlshim: Path) -> None:
    h = query_in_child(shim_node(nvmlshim, "init_error = LIB_RM_VERSION_MISMATCH\n"), "query_health")
    assert isinstance(h, NvmlUnavailable) and h.code == "LIB_RM_VERSION_MISMATCH"
