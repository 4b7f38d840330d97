"""query_health against a fake pynvml, and the gpu.* checks on its answers."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from doctor_helpers import ctx, levels
from nodes import two_sockets as small_node

from pinctl.discovery import nvml
from pinctl.discovery.nvml import GpuHealth, Lost, NvmlHealth, NvmlUnavailable
from pinctl.doctor import gpu
from pinctl.model import NvLink, PciAddress


class FakeNVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return {15: "GPU is lost", 3: "Not Supported"}.get(self.value, f"error {self.value}")


@dataclass
class FakeGpu:
    bus: str
    lost: bool = False
    persistence: int | Exception = 1
    replay: int | Exception = 0
    links: list[int | None] = field(default_factory=lambda: [1, 1, 1, 1])
    pending: int | Exception = 0
    remap: tuple[int, int, int, int] | Exception = (0, 0, 0, 0)
    pids: list[int] = field(default_factory=list)


def fake_pynvml(gpus: list[FakeGpu], *, init_error: bool = False) -> types.ModuleType:
    m = types.ModuleType("pynvml")
    m.NVMLError = FakeNVMLError  # type: ignore[attr-defined]
    m.NVML_FEATURE_ENABLED = 1  # type: ignore[attr-defined]
    m.NVML_NVLINK_MAX_LINKS = 6  # type: ignore[attr-defined]
    m.NVML_ERROR_DRIVER_NOT_LOADED = 9  # type: ignore[attr-defined]

    def value(v: Any) -> Any:
        if isinstance(v, Exception):
            raise v
        return v

    def init() -> None:
        if init_error:
            raise FakeNVMLError(9)

    def handle(i: int) -> FakeGpu:
        if gpus[i].lost:
            raise FakeNVMLError(15)
        return gpus[i]

    def link_state(h: FakeGpu, link: int) -> int:
        if link >= len(h.links) or h.links[link] is None:
            raise FakeNVMLError(3)
        return h.links[link]  # type: ignore[return-value]

    fns = {
        "nvmlInit": init,
        "nvmlShutdown": lambda: None,
        "nvmlDeviceGetCount": lambda: len(gpus),
        "nvmlSystemGetDriverVersion": lambda: b"550.90.07",
        "nvmlDeviceGetHandleByIndex": handle,
        "nvmlDeviceGetPciInfo": lambda h: types.SimpleNamespace(busId=h.bus.encode()),
        "nvmlDeviceGetName": lambda h: "NVIDIA H100 80GB HBM3",
        "nvmlDeviceGetUUID": lambda h: "GPU-" + h.bus,
        "nvmlDeviceGetPersistenceMode": lambda h: value(h.persistence),
        "nvmlDeviceGetPcieReplayCounter": lambda h: value(h.replay),
        "nvmlDeviceGetNvLinkState": link_state,
        "nvmlDeviceGetRetiredPagesPendingStatus": lambda h: value(h.pending),
        "nvmlDeviceGetRemappedRows": lambda h: value(h.remap),
        "nvmlDeviceGetComputeRunningProcesses": lambda h: [types.SimpleNamespace(pid=p) for p in h.pids],
        "nvmlDeviceGetGraphicsRunningProcesses": lambda h: [],
    }
    for name, fn in fns.items():
        setattr(m, name, fn)
    return m


def query(monkeypatch: pytest.MonkeyPatch, gpus: list[FakeGpu], **kw: bool) -> NvmlHealth | NvmlUnavailable:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(gpus, **kw))
    return nvml.query_health()


def test_query_health_on_an_old_pynvml_leaves_missing_queries_none(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_pynvml([FakeGpu("0000:18:00.0")])
    del fake.nvmlDeviceGetRemappedRows  # type: ignore[attr-defined]
    del fake.nvmlDeviceGetPcieReplayCounter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    h = nvml.query_health()
    assert isinstance(h, NvmlHealth)
    g = h.gpus[0]
    assert (g.remap_pending, g.remap_failure, g.pcie_replay_counter) == (None, None, None)
    assert g.persistence_mode is True  # what this pynvml has is still read


def test_query_health_without_the_binding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    h = nvml.query_health()
    assert isinstance(h, NvmlUnavailable) and "nvidia-ml-py package is not installed" in h.reason


def health(*gpus: GpuHealth) -> NvmlHealth:
    return NvmlHealth("550", tuple(gpus))


G0 = GpuHealth(
    0,
    PciAddress.parse("0000:18:00.0"),
    "H100",
    persistence_mode=True,
    pcie_replay_counter=0,
    nvlinks=tuple((i, True) for i in range(4)),
    retired_pages_pending=False,
    remap_pending=False,
    remap_failure=False,
)
G1 = GpuHealth(
    1,
    PciAddress.parse("0000:98:00.0"),
    "H100",
    persistence_mode=True,
    pcie_replay_counter=0,
    nvlinks=tuple((i, True) for i in range(4)),
    retired_pages_pending=False,
    remap_pending=False,
    remap_failure=False,
)


def run(check: Any, *gpus: GpuHealth, node: Any = None) -> list[Any]:
    return check(ctx("good", node, health=health(*gpus)))  # type: ignore[no-any-return]


def test_every_gpu_check_skips_without_nvml() -> None:
    for check in (gpu.persistence_mode, gpu.lost, gpu.memory_retirement, gpu.nvlink_missing, gpu.pcie_replay):
        found = check(ctx("good", nvml_note="no NVML: driver not loaded"))
        assert [(f.severity, f.summary) for f in found] == [("skipped", "no NVML: driver not loaded")]


def test_persistence_mode() -> None:
    assert levels(run(gpu.persistence_mode, G0, G1)) == ["ok"]
    found = run(gpu.persistence_mode, G0, replace(G1, persistence_mode=False))
    assert [(f.severity, f.subject) for f in found] == [("warn", "GPU 1 (0000:98:00.0)")]


def test_lost() -> None:
    assert levels(run(gpu.lost, G0, G1)) == ["ok"]
    how = Lost("GPU_IS_LOST", "handle", "nvmlDeviceGetHandleByIndex(1)")
    found = run(gpu.lost, G0, GpuHealth(1, lost=True, error=how.describe(), how=how))
    assert [(f.severity, f.subject) for f in found] == [("fail", "GPU 1")]
    assert "GPU_IS_LOST" in found[0].summary and "Xid 79" in (found[0].remedy or "")
    denied = Lost("NO_PERMISSION", "handle", "nvmlDeviceGetHandleByIndex(1)")
    (found,) = run(gpu.lost, G0, GpuHealth(1, lost=True, error=denied.describe(), how=denied))
    assert "NO_PERMISSION" in found.summary and "Xid" not in (found.remedy or "")
    assert "/dev/nvidia*" in (found.remedy or "") and "cgroup" in (found.remedy or "")


def test_memory_retirement() -> None:
    assert levels(run(gpu.memory_retirement, G0, G1)) == ["ok"]
    assert levels(run(gpu.memory_retirement, G0, replace(G1, remap_pending=True))) == ["warn"]
    assert levels(run(gpu.memory_retirement, replace(G0, remap_failure=True), G1)) == ["fail"]
    assert levels(run(gpu.memory_retirement, GpuHealth(0), GpuHealth(1))) == ["skipped"]


def test_nvlink_missing() -> None:
    assert levels(run(gpu.nvlink_missing, G0, G1)) == ["ok"]
    down = replace(G1, nvlinks=((0, True), (1, False), (2, True), (3, False)))
    found = run(gpu.nvlink_missing, G0, down)
    assert [(f.severity, f.subject, f.summary) for f in found] == [
        ("warn", "GPU 1 (0000:98:00.0)", "2 of 4 NVLinks active")
    ]
    assert "[1, 3]" in found[0].evidence[0]
    # the topology can say more links are expected than any GPU has now
    node = small_node()
    peer = PciAddress.parse("0000:98:00.0")
    gpus = tuple(replace(g, nvlinks=(NvLink(peer, 6),)) for g in node.gpus)
    found = run(gpu.nvlink_missing, G0, G1, node=replace(node, gpus=gpus))
    assert [f.subject for f in found if f.severity == "warn"] == ["GPU 0 (0000:18:00.0)", "GPU 1 (0000:98:00.0)"]
    assert levels(run(gpu.nvlink_missing, replace(G0, nvlinks=()), replace(G1, nvlinks=()))) == ["skipped"]


def test_pcie_replay() -> None:
    assert levels(run(gpu.pcie_replay, G0, G1)) == ["ok"]
    found = run(gpu.pcie_replay, G0, replace(G1, pcie_replay_counter=42))
    # A count since the driver loaded, not a rate: the evidence says so (the summary stays short).
    assert [f.severity for f in found] == ["warn"] and "since the driver loaded" in found[0].evidence[0]
