"""NVML: the join by PCI address, a fake pynvml for the queries, and the real no-driver path."""

from __future__ import annotations

import sys
import time
import types
from dataclasses import dataclass, replace
from typing import Any

import pytest

from pinctl.discovery.merge import apply_nvml
from pinctl.discovery.nvml import (
    Lost,
    NvmlGpu,
    NvmlHealth,
    NvmlResult,
    NvmlUnavailable,
    gpu_processes,
    query_health,
    query_nvml,
)
from pinctl.model import Gpu, Node, NvLink, PciAddress, PciInfo

A = PciAddress.parse


def node_with(*addrs: str) -> Node:
    gpus = tuple(Gpu(i, PciInfo(A(a), numa_node=i)) for i, a in enumerate(addrs))
    return Node("n", "t", (), (), (), (), frozenset(), gpus=gpus)


def test_apply_joins_by_pci_address_not_index() -> None:
    node = node_with("0000:1b:00.0", "0000:43:00.0")
    # NVML lists them the other way round (e.g. a different enumeration order).
    result = NvmlResult(
        "550.54",
        (
            NvmlGpu(0, A("00000000:43:00.0"), uuid="GPU-b", name="NVIDIA H100 80GB HBM3", memory_bytes=80 << 30),
            NvmlGpu(1, A("00000000:1B:00.0"), uuid="GPU-a", name="NVIDIA H100 80GB HBM3", memory_bytes=80 << 30),
        ),
    )
    out = apply_nvml(node, result)
    assert [(str(g.pci.address), g.uuid, g.index) for g in out.gpus] == [
        ("0000:1b:00.0", "GPU-a", 0),
        ("0000:43:00.0", "GPU-b", 1),
    ]
    assert out.gpus[0].numa_node == 0  # locality from the topology is kept
    assert all(g.vendor == "nvidia" and g.memory_bytes == 80 << 30 for g in out.gpus)


def test_apply_adds_gpus_only_nvml_knows_with_a_note() -> None:
    node = node_with("0000:43:00.0")
    result = NvmlResult(None, (NvmlGpu(0, A("0000:1b:00.0"), uuid="GPU-x"), NvmlGpu(1, A("0000:43:00.0"))))
    out = apply_nvml(node, result)
    assert [str(g.pci.address) for g in out.gpus] == ["0000:1b:00.0", "0000:43:00.0"]
    assert out.gpus[0].numa_node is None
    assert any("0000:1b:00.0" in n and "NVML" in n for n in out.notes)


def test_apply_keeps_topology_facts_nvml_lacks() -> None:
    link = NvLink(A("0000:43:00.0"), 4)
    base = node_with("0000:1b:00.0")
    gpu = Gpu(0, base.gpus[0].pci, name="hwloc-name", nvlinks=(link,))
    node = Node("n", "t", (), (), (), (), frozenset(), gpus=(gpu,))
    out = apply_nvml(node, NvmlResult(None, (NvmlGpu(0, A("0000:1b:00.0"), nvlinks=None),)))
    assert out.gpus[0].name == "hwloc-name"
    assert out.gpus[0].nvlinks == (link,)


# --- a fake pynvml ---------------------------------------------------------------------------


class FakeNVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value


@dataclass
class FakePci:
    busId: bytes  # NVML's field name


@dataclass
class FakeMemory:
    total: int


NOT_SUPPORTED, NO_PERMISSION, DRIVER_NOT_LOADED, LIBRARY_NOT_FOUND, INVALID_ARGUMENT = 3, 4, 9, 12, 2


def fake_pynvml(
    *, init_error: int | None = None, count_error: int | None = None, gpus: list[dict[str, Any]] | None = None
) -> types.ModuleType:
    """A module with pynvml's names: constants, NVMLError, and the calls the queries make."""
    m = types.ModuleType("pynvml")
    devices = gpus or []
    calls: list[str] = []
    m.calls = calls  # type: ignore[attr-defined]
    m.NVMLError = FakeNVMLError  # type: ignore[attr-defined]
    m.NVML_NVLINK_MAX_LINKS = 18  # type: ignore[attr-defined]
    m.NVML_ERROR_LIBRARY_NOT_FOUND = LIBRARY_NOT_FOUND  # type: ignore[attr-defined]
    m.NVML_ERROR_DRIVER_NOT_LOADED = DRIVER_NOT_LOADED  # type: ignore[attr-defined]
    m.NVML_ERROR_NO_PERMISSION = NO_PERMISSION  # type: ignore[attr-defined]
    m.NVML_ERROR_NOT_SUPPORTED = NOT_SUPPORTED  # type: ignore[attr-defined]
    m.NVML_ERROR_GPU_IS_LOST = 15  # type: ignore[attr-defined]

    def init() -> None:
        calls.append("init")
        if init_error is not None:
            raise FakeNVMLError(init_error)

    def field(h: int, key: str) -> Any:
        value = devices[h].get(key)
        if isinstance(value, int) and key != "memory":
            raise FakeNVMLError(value)
        return value

    def link_state(h: int, link: int) -> int:
        links = devices[h].get("links")
        if links is None:
            raise FakeNVMLError(NOT_SUPPORTED)
        if link >= len(links):
            raise FakeNVMLError(INVALID_ARGUMENT)
        return 1 if links[link] else 0

    def remote(h: int, link: int) -> FakePci:
        return FakePci(devices[h]["links"][link])

    def count() -> int:
        if count_error is not None:
            raise FakeNVMLError(count_error)
        return len(devices)

    def procs(h: int, key: str) -> list[types.SimpleNamespace]:
        value = devices[h].get(key, [])
        if isinstance(value, int):
            raise FakeNVMLError(value)
        return [types.SimpleNamespace(pid=p) for p in value]

    def handle(i: int) -> int:
        if devices[i].get("lost"):
            raise FakeNVMLError(15)
        return i

    m.nvmlInit = init  # type: ignore[attr-defined]
    m.nvmlShutdown = lambda: calls.append("shutdown")  # type: ignore[attr-defined]
    m.nvmlSystemGetDriverVersion = lambda: "550.54.15"  # type: ignore[attr-defined]
    m.nvmlDeviceGetCount = count  # type: ignore[attr-defined]
    m.nvmlDeviceGetHandleByIndex = handle  # type: ignore[attr-defined]
    m.nvmlDeviceGetPciInfo = lambda h: FakePci(devices[h]["bus"])  # type: ignore[attr-defined]
    m.nvmlDeviceGetUUID = lambda h: field(h, "uuid")  # type: ignore[attr-defined]
    m.nvmlDeviceGetName = lambda h: field(h, "name")  # type: ignore[attr-defined]
    m.nvmlDeviceGetMemoryInfo = lambda h: FakeMemory(devices[h]["memory"])  # type: ignore[attr-defined]
    m.nvmlDeviceGetNvLinkState = link_state  # type: ignore[attr-defined]
    m.nvmlDeviceGetNvLinkRemotePciInfo = remote  # type: ignore[attr-defined]
    m.nvmlDeviceGetComputeRunningProcesses = lambda h: procs(h, "compute")  # type: ignore[attr-defined]
    m.nvmlDeviceGetGraphicsRunningProcesses = lambda h: procs(h, "graphics")  # type: ignore[attr-defined]
    return m


def test_gpu_processes_on_a_pynvml_without_one_query(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_pynvml(gpus=[{"bus": b"00000000:1B:00.0", "compute": [7], "graphics": [8]}])
    del fake.nvmlDeviceGetGraphicsRunningProcesses  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    (gpu,), note = gpu_processes()  # type: ignore[misc]
    assert note is None and (gpu.index, gpu.pci_bus_id, gpu.pids) == (0, "0000:1b:00.0", (7,))
    assert gpu.error is not None and "neither nvmlDeviceGetGraphicsRunningProcesses_v3 nor" in gpu.error


def _reason(answer: Any) -> str | None:
    """The "why not" of any of the three queries, whatever its shape."""
    if isinstance(answer, NvmlUnavailable):
        return answer.reason
    if isinstance(answer, NvmlHealth):
        return None
    result, reason = answer
    assert result is None or reason is None
    return None if result is not None else reason  # type: ignore[no-any-return]


QUERIES = [query_nvml, query_health, gpu_processes]


@pytest.mark.parametrize("query", QUERIES)
def test_every_query_without_the_binding_says_why(monkeypatch: pytest.MonkeyPatch, query: Any) -> None:
    """nvidia-ml-py absent: the one case the stand-in library cannot model (tests/test_nvml_queries.py has the rest)."""
    monkeypatch.setitem(sys.modules, "pynvml", None)  # the package is not installed
    reason = _reason(query())
    assert reason is not None and reason.startswith("NVML not available: the nvidia-ml-py package")


def test_query_on_this_machine_without_a_driver_is_fast() -> None:
    """Where no NVIDIA driver is installed, NVML reports that in well under a second."""
    try:
        import ctypes

        ctypes.CDLL("libnvidia-ml.so.1")
        pytest.skip("this machine has libnvidia-ml.so.1")
    except OSError:
        pass
    start = time.perf_counter()
    result, reason = query_nvml()
    elapsed = time.perf_counter() - start
    assert result is None
    assert reason is not None and "libnvidia-ml.so.1 not found" in reason
    assert elapsed < 1.0


def test_nvml_affinity_places_a_gpu_the_topology_lacks_and_the_plan_follows() -> None:
    """Two sockets; the topology saw GPU 0 only. NVML places the other on node 1 (CPUs 4-7): its rank
    runs there, not on whatever node a round-robin would give it."""
    from nodes import two_sockets

    from pinctl import api
    from pinctl.discovery.nvml import PcieLink

    node = two_sockets(gpus=(two_sockets().gpus[0],))
    nvml_gpu = NvmlGpu(1, A("0000:c1:00.0"), uuid="GPU-c1", cpus=frozenset({4, 5, 6, 7}), numa_node=1,
                       pcie=PcieLink(gen=4, width=8, max_gen=5, max_width=16))  # fmt: skip
    joined = apply_nvml(node, NvmlResult(None, (NvmlGpu(0, A("0000:18:00.0")), nvml_gpu)))
    added = next(g for g in joined.gpus if g.uuid == "GPU-c1")
    assert added.numa_node == 1 and added.pci.local_cpus == frozenset({4, 5, 6, 7})
    assert (added.pci.link.speed_gts, added.pci.link.width, added.pci.link.max_width) == (16.0, 8, 16)
    assert any("placed by NVML's affinity on NUMA node 1" in n for n in joined.notes)
    plan = api.make_plan(joined)
    rank = next(r for r in plan.ranks if r.gpu is not None and r.gpu.uuid == "GPU-c1")
    assert rank.cpus <= frozenset({4, 5, 6, 7}) and rank.numa_node == 1
    # NVML naming a node this machine lacks is not believed; its CPUs still place the GPU
    elsewhere = apply_nvml(node, NvmlResult(None, (replace(nvml_gpu, numa_node=9),)))
    assert next(g for g in elsewhere.gpus if g.uuid == "GPU-c1").numa_node == 1


ONE_LINE = (
    "NVML GPU 1 (0000:43:00.0): NVML cannot open it (nvmlDeviceGetHandleByIndex(1) -> GPU_IS_LOST); "
    "`pinctl doctor` says what to do"
)


def test_a_lost_gpu_is_named_by_the_bus_when_the_count_says_which() -> None:
    lost = Lost("GPU_IS_LOST", "handle", "nvmlDeviceGetHandleByIndex(1)")
    three = node_with("0000:1b:00.0", "0000:43:00.0", "0000:c1:00.0")
    node = replace(three, gpus=tuple(replace(g, vendor="nvidia") for g in three.gpus))
    listed = (NvmlGpu(0, A("0000:1b:00.0")), NvmlGpu(1, None, lost=lost), NvmlGpu(2, A("0000:c1:00.0")))
    whole = NvmlResult(None, listed)
    out = apply_nvml(node, whole)
    assert [(str(g.pci.address), g.unusable) for g in out.gpus if g.unusable] == [
        ("0000:43:00.0", "lost: NVML answers GPU_IS_LOST (a note says more)")]  # fmt: skip
    (note,) = [n for n in out.notes if n.startswith("lost GPU")]  # one line, NVML's words once, the fix's place
    assert note == f"lost GPU: {ONE_LINE}"
    # a container sees GPUs 0 and 1 of three, and GPU 1 is lost: which one is not known, the note says so
    part = NvmlResult(None, (NvmlGpu(0, A("0000:1b:00.0")), NvmlGpu(1, None, lost=lost)))
    out = apply_nvml(node, part)
    assert not any(g.unusable for g in out.gpus)
    assert any(n.startswith("lost GPU: NVML GPU 1 (one of 0000:43:00.0, 0000:c1:00.0): NVML cannot open it")
               for n in out.notes)  # fmt: skip
