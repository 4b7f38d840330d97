"""procs.mis-pinned: GPU processes (NVIDIA's binding over tests/nvmlshim) judged by ``pinctl check``'s own verdicts."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from doctor_helpers import levels
from nvml_helpers import findings, run_pinctl, shim_node

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


def run(shim: Path, pids: list[int]) -> list[dict[str, Any]]:
    """``pinctl doctor --only procs`` on a one-GPU node whose NVML lists *pids* on GPU 0."""
    env = shim_node(shim, "gpus = 1\n" + (f"gpu.0.procs = {','.join(map(str, pids))}\n" if pids else ""))
    return findings(run_pinctl(["doctor", "--json", "--only", "procs"], env))["procs.mis-pinned"]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_gpu_processes_pinned_apart_pass(nvmlshim: Path) -> None:
    cpus = sorted(os.sched_getaffinity(0))[:2]
    with sleepers(*cpus) as pids:
        found = run(nvmlshim, pids)
    assert [f["level"] for f in found] == ["ok"] and "2 GPU processes" in found[0]["summary"]


def test_gpu_processes_sharing_a_cpu_fire(nvmlshim: Path) -> None:
    cpu = min(os.sched_getaffinity(0))
    with sleepers(cpu, cpu) as pids:
        found = run(nvmlshim, pids)
    assert [f["level"] for f in found] == ["warn", "warn"]
    assert f"shares CPU {cpu} with process {pids[1]}" in found[0]["evidence"]


def test_skips_without_processes_nvml_or_live_root(nvmlshim: Path) -> None:
    assert "no processes" in run(nvmlshim, [])[0]["summary"]
    assert levels(procs.mis_pinned(DoctorContext(KernelFiles("/"), nvml_note="no NVML"))) == ["skipped"]
    rooted = procs.mis_pinned(DoctorContext(KernelFiles("/tmp"), health=HEALTH))
    assert levels(rooted) == ["skipped"] and "--root" in rooted[0].summary
