"""procs.mis-pinned: GPU processes (from a fake NVML) judged by ``pinctl check``'s own verdicts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from doctor_helpers import levels
from test_doctor_gpu import FakeGpu, fake_pynvml

from pinctl.discovery.nvml import GpuHealth, NvmlHealth
from pinctl.doctor import procs
from pinctl.doctor.finding import DoctorContext
from pinctl.kernel.files import KernelFiles

HEALTH = NvmlHealth("550", (GpuHealth(0),))


@contextmanager
def sleepers(*cpus: int) -> Iterator[list[int]]:
    """One sleeping process pinned to each CPU given."""
    kids = [subprocess.Popen(["sleep", "30"]) for _ in cpus]
    try:
        for kid, cpu in zip(kids, cpus, strict=True):
            os.sched_setaffinity(kid.pid, {cpu})
        yield [k.pid for k in kids]
    finally:
        for kid in kids:
            kid.kill()
            kid.wait()


def run(monkeypatch: pytest.MonkeyPatch, pids: list[int]) -> list[procs.Finding]:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([FakeGpu("0000:18:00.0", pids=pids)]))
    return procs.mis_pinned(DoctorContext(KernelFiles("/"), health=HEALTH))


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_gpu_processes_pinned_apart_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    cpus = sorted(os.sched_getaffinity(0))[:2]
    with sleepers(*cpus) as pids:
        found = run(monkeypatch, pids)
    assert levels(found) == ["ok"] and "2 GPU processes" in found[0].summary


def test_gpu_processes_sharing_a_cpu_fire(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = min(os.sched_getaffinity(0))
    with sleepers(cpu, cpu) as pids:
        found = run(monkeypatch, pids)
    assert [f.severity for f in found] == ["warn", "warn"]
    assert f"shares CPU {cpu} with process {pids[1]}" in found[0].evidence


def test_skips_without_processes_nvml_or_live_root(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "no processes" in run(monkeypatch, [])[0].summary
    assert levels(procs.mis_pinned(DoctorContext(KernelFiles("/"), nvml_note="no NVML"))) == ["skipped"]
    rooted = procs.mis_pinned(DoctorContext(KernelFiles("/tmp"), health=HEALTH))
    assert levels(rooted) == ["skipped"] and "--root" in rooted[0].summary
