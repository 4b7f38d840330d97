"""A Slurm job step given GPUs with --gres, under the real Slurm (tests/real_launchers.py): gres.conf
points File= at fake device files (character devices with /dev/null's numbers, which Slurm accepts
with ConstrainDevices=no), so Slurm itself sets SLURM_STEP_GPUS and CUDA_VISIBLE_DEVICES, and the
step's cgroup cpuset is Slurm's. The node is fixtures/hwloc/dgx-h100.xml as seen from that step."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from real_launchers import Slurm, ensure_packages

REPO = Path(__file__).resolve().parents[1]
DGX = REPO / "fixtures" / "hwloc" / "dgx-h100.xml"
# Run inside the step: this job's view of the DGX (its variables and cgroup), then a plan of it.
PROBE = f"""
import json, os
from dataclasses import replace
from pinctl import api
from pinctl.discovery import discover, job_access
from pinctl.discovery.access import apply_access
from pinctl.kernel.files import KernelFiles
node = apply_access(discover(topology={str(DGX)!r}), job_access(KernelFiles("/"), os.environ, None))
plan = api.make_plan(node, isolate_gpus=True)
bare = replace(node, gpus=tuple(replace(g, uuid=None) for g in node.gpus))
by_index = [dict(r.env)["CUDA_VISIBLE_DEVICES"] for r in api.make_plan(bare, isolate_gpus=True).ranks]
print(json.dumps({{
    "env": {{k: os.environ.get(k) for k in ("SLURM_STEP_GPUS", "CUDA_VISIBLE_DEVICES")}},
    "usable": [g.index for g in node.usable_gpus], "allowed": sorted(node.allowed_cpus),
    "ranks": [[r.gpu.index, sorted(r.cpus), dict(r.env)["CUDA_VISIBLE_DEVICES"]] for r in plan.ranks],
    "by_index": by_index,
}}))
"""


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slurm]:
    why = ensure_packages()
    if why is not None:
        pytest.skip(why)
    if (os.cpu_count() or 0) < 2:
        pytest.skip("needs two CPUs: one job holds GPUs while another runs")
    dev = tmp_path_factory.mktemp("dev")
    files = []
    for n in range(8, 16):  # numbered 8-15 on purpose: Slurm's GPU numbers are gres indexes, not these
        try:
            os.mknod(dev / f"nvidia{n}", 0o20666, os.makedev(1, 3))
        except OSError as e:
            pytest.skip(f"cannot make a character device for gres.conf ({e})")
        files.append(str(dev / f"nvidia{n}"))
    cluster = Slurm(tmp_path_factory.mktemp("slurm"), tuple(files))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def test_gres_step_plans_only_its_gpus_and_cpus(slurm: Slurm, tmp_path: Path) -> None:
    # A first job holds three GPUs (gres indexes 0-2) and a core, so the step below gets GPU 3.
    hold = slurm.run("sbatch", "--parsable", "-c1", "--gres=gpu:3", "-o", "/dev/null", "--wrap", "sleep 60")
    assert hold.returncode == 0, hold.stderr
    job = hold.stdout.strip().split(";")[0]
    try:
        deadline = time.monotonic() + 30
        while slurm.run("squeue", "-h", "-j", job, "-o", "%T").stdout.strip() != "RUNNING":
            assert time.monotonic() < deadline, "the holding job did not start"
            time.sleep(0.2)
        res = slurm.run("srun", "-c1", "-n1", "--gres=gpu:1", sys.executable, "-c", PROBE, timeout=120, cwd=REPO)
    finally:
        slurm.run("scancel", job)
    assert res.returncode == 0, res.stderr
    seen = json.loads(res.stdout.strip().splitlines()[-1])
    # gres index 3 (File=.../nvidia11); ConstrainDevices=no, so CUDA_VISIBLE_DEVICES holds the same number.
    assert seen["env"] == {"SLURM_STEP_GPUS": "3", "CUDA_VISIBLE_DEVICES": "3"}
    assert seen["usable"] == [3]
    step_cpus = set(seen["allowed"])
    assert len(step_cpus) == 1  # the step's cgroup cpuset, not the DGX's 224 CPUs
    ((gpu, cpus, cuda),) = seen["ranks"]
    assert gpu == 3 and set(cpus) <= step_cpus
    assert cuda.startswith("GPU-")  # the UUID: names this GPU whatever CUDA_VISIBLE_DEVICES was
    assert seen["by_index"] == ["3"]  # without one: CUDA opens all eight GPUs here, so GPU 3 is still 3
