"""Run discovery as a process inside a job would: fixtures/jobs/<scenario> as its /dev, /proc and
cgroup files, fixtures/hwloc/dgx-h100.xml as the node sysfs shows, a fake pynvml listing the
scenario's GPUs, and the scenario's visibility variables in the environment."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import pinctl.discovery as discovery_pkg
import pinctl.discovery.engine as engine_mod
from pinctl.kernel.files import KernelFiles

REPO = Path(__file__).resolve().parents[1]
JOBS = REPO / "fixtures" / "jobs"
DGX = str(REPO / "fixtures" / "hwloc" / "dgx-h100.xml")
VISIBILITY = ("NVIDIA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES",
              "ZE_AFFINITY_MASK", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "CUDA_DEVICE_ORDER")  # fmt: skip
NOT_SUPPORTED, NOT_FOUND = 3, 6


class FakeNVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value


def fake_pynvml(gpus: list[dict[str, Any]]) -> types.ModuleType:
    """pynvml's names for what discovery asks: identity, minor number, MIG mode and MIG devices.

    A device handle is its index; a MIG handle is (index, slot). NVLink is NOT_SUPPORTED.
    """
    m = types.ModuleType("pynvml")

    def unsupported(*_: Any) -> Any:
        raise FakeNVMLError(NOT_SUPPORTED)

    def mig_of(h: tuple[int, int]) -> dict[str, Any]:
        return dict(gpus[h[0]]["mig"][h[1]])

    def uuid(h: int | tuple[int, int]) -> str:
        return str(mig_of(h)["uuid"] if isinstance(h, tuple) else gpus[h]["uuid"])

    def name(h: int | tuple[int, int]) -> str:
        return str(mig_of(h)["name"] if isinstance(h, tuple) else gpus[h]["name"])

    def memory(h: int | tuple[int, int]) -> types.SimpleNamespace:
        return types.SimpleNamespace(total=mig_of(h)["memory"] if isinstance(h, tuple) else 80 << 30)

    def mig_handle(h: int, slot: int) -> tuple[int, int]:
        if slot >= len(gpus[h]["mig"]):
            raise FakeNVMLError(NOT_FOUND)
        return (h, slot)

    m.NVMLError = FakeNVMLError  # type: ignore[attr-defined]
    m.NVML_DEVICE_MIG_ENABLE = 1  # type: ignore[attr-defined]
    m.nvmlInit = lambda: None  # type: ignore[attr-defined]
    m.nvmlShutdown = lambda: None  # type: ignore[attr-defined]
    m.nvmlSystemGetDriverVersion = lambda: "550.54.15"  # type: ignore[attr-defined]
    m.nvmlDeviceGetCount = lambda: len(gpus)  # type: ignore[attr-defined]
    m.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    m.nvmlDeviceGetPciInfo = lambda h: types.SimpleNamespace(busId=gpus[h]["bus"].encode())  # type: ignore[attr-defined]
    m.nvmlDeviceGetUUID = uuid  # type: ignore[attr-defined]
    m.nvmlDeviceGetName = name  # type: ignore[attr-defined]
    m.nvmlDeviceGetMemoryInfo = memory  # type: ignore[attr-defined]
    m.nvmlDeviceGetNvLinkState = unsupported  # type: ignore[attr-defined]
    m.nvmlDeviceGetMinorNumber = lambda h: gpus[h]["minor"]  # type: ignore[attr-defined]
    m.nvmlDeviceGetMigMode = lambda h: (int(gpus[h]["mig_mode"]), int(gpus[h]["mig_mode"]))  # type: ignore[attr-defined]
    m.nvmlDeviceGetMaxMigDeviceCount = lambda h: 7 if gpus[h]["mig_mode"] else 0  # type: ignore[attr-defined]
    m.nvmlDeviceGetMigDeviceHandleByIndex = mig_handle  # type: ignore[attr-defined]
    m.nvmlDeviceGetGpuInstanceId = lambda h: mig_of(h)["gi"]  # type: ignore[attr-defined]
    m.nvmlDeviceGetComputeInstanceId = lambda h: mig_of(h)["ci"]  # type: ignore[attr-defined]
    procs = lambda h: [types.SimpleNamespace(pid=p) for p in gpus[h].get("pids", [])]  # noqa: E731
    m.nvmlDeviceGetComputeRunningProcesses = procs  # type: ignore[attr-defined]
    m.nvmlDeviceGetGraphicsRunningProcesses = lambda h: []  # type: ignore[attr-defined]
    return m


def scenario(name: str) -> dict[str, Any]:
    return dict(json.loads((JOBS / name / "scenario.json").read_text()))


def enter_job(
    monkeypatch: pytest.MonkeyPatch, name: str, env: dict[str, str] | None = None,
    pids: dict[int, list[int]] | None = None,
) -> None:  # fmt: skip
    """Make this test process look like one inside the job *name* (env: replaces the scenario's variables;
    pids: the processes NVML reports on its GPU N, N counted as NVML inside the job counts)."""
    spec = scenario(name)
    for i, found in (pids or {}).items():
        spec["nvml"][i]["pids"] = found
    real_load = engine_mod.load  # whichever engine runs (pyhwloc, or the built-in reader without it)
    # The node as sysfs shows it from inside (every GPU on the bus), labelled as discovery labels this machine.
    monkeypatch.setattr(engine_mod, "load", lambda **_: replace(real_load(xml_path=DGX), source="live"))
    monkeypatch.setattr(discovery_pkg, "LIVE", KernelFiles(str(JOBS / name)))
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(spec["nvml"]))
    for var in VISIBILITY:
        monkeypatch.delenv(var, raising=False)
    for var, value in (spec["env"] if env is None else env).items():
        monkeypatch.setenv(var, value)
