"""Exporters: what a user pastes into a shell, a job script or gres.conf must mean the plan."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from dataclasses import replace

import pytest
from nodes import Layout, NicSpec, build_node

from pinctl.cpuset import parse_list, parse_mask
from pinctl.plan.make import make_plan
from pinctl.plan.request import PlanRequest
from pinctl.planfile.load import parse_plan_text
from pinctl.planfile.types import Plan
from pinctl.render.export import numactl_argv, plan_to_env, plan_to_json, plan_to_numactl, plan_to_slurm

LAYOUT = Layout(
    packages=2,
    numa_per_package=2,
    l3_per_numa=1,
    cores_per_l3=3,
    smt=2,
    interleaved=True,
    gpus=((0, 0, 0), (1, 0, 0), (2, 0, 0), (3, 0, 0)),
    nics=(NicSpec((0, 0, 0)), NicSpec((2, 0, 0))),
)


def make(**kw: object) -> Plan:
    return make_plan(build_node(LAYOUT), PlanRequest(**kw))  # type: ignore[arg-type]


def test_json_is_stable_sorted_and_valid_for_launch() -> None:
    a, b = plan_to_json(make()), plan_to_json(make())
    assert a == b and a.endswith("}\n")
    obj = json.loads(a)
    assert list(obj) == sorted(obj)
    assert obj["schema"] == "pinctl.plan/v2"
    parsed = parse_plan_text(a)
    assert parsed == make()  # the same Plan, every field


def test_json_fields() -> None:
    node = build_node(LAYOUT)
    r = make().to_dict()["ranks"][0]
    assert r["gpu"] == {
        "index": 0,
        "pci_bus_id": "0000:10:00.0",
        "uuid": "GPU-00000000-0000",
        "minor": 0,
        "vendor": "nvidia",
    }
    assert parse_list(r["cpulist"]) == set(r["cpus"]) and r["cpus"] == sorted(r["cpus"])
    mlx5_0 = next(n for n in node.nics if n.name == "mlx5_0")
    assert mlx5_0.pci is not None
    assert r["nics"] == [
        {
            "name": "mlx5_0",
            "port": 1,
            "netdev": "ib0p0",
            "pci_bus_id": str(mlx5_0.pci.address),
            "distance": "PIX",
            "kind": mlx5_0.kind,
        }
    ]


def test_env_blocks_source_in_bash() -> None:
    text = plan_to_env(make(isolate_gpus=True))
    blocks = text.strip().split("\n\n")
    assert len(blocks) == 4 and blocks[1].startswith("# rank 1")
    for line in blocks[1].splitlines()[1:]:
        assert re.match(r"^export [A-Z_]+=\S+$", line)
    out = subprocess.run(
        ["bash", "-c", blocks[1] + '\nprintf "%s|%s|%s" "$NCCL_IB_HCA" "$CUDA_VISIBLE_DEVICES" "$LOCAL_RANK"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    env = dict(make(isolate_gpus=True).ranks[1].env)
    assert out == f"{env['NCCL_IB_HCA']}|{env['CUDA_VISIBLE_DEVICES']}|1"


def test_env_quotes_hostile_values() -> None:
    p = make()
    r = p.ranks[0]
    weird = r.replace(env=(("PINCTL_X", "a b'$(rm -rf /)"),))
    text = plan_to_env(p.replace(ranks=(weird,)))
    line = text.splitlines()[1]
    assert shlex.split(line) == ["export", "PINCTL_X=a b'$(rm -rf /)"]


@pytest.mark.parametrize(
    ("policy", "flag"),
    [("bind", "--membind="), ("preferred", "--preferred="), ("interleave", "--interleave="), ("local", "--localalloc")],
)
def test_numactl_flag_per_policy(policy: str, flag: str) -> None:
    p = make(mem_policy=policy)
    lines = plan_to_numactl(p, ["python", "train.py", "--x=a b"]).splitlines()
    assert len(lines) == len(p.ranks)
    for line, r in zip(lines, p.ranks, strict=True):
        argv = shlex.split(line)
        assert argv[0] == "numactl" and argv[-4:] == ["--", "python", "train.py", "--x=a b"]
        assert parse_list(argv[1].split("=", 1)[1]) == set(r.cpus)
        assert any(a.startswith(flag) for a in argv)
        if "=" in flag:
            arg = next(a for a in argv if a.startswith(flag))
            assert parse_list(arg.split("=", 1)[1]) == set(r.mems)


def test_numactl_none_policy_has_no_memory_flag() -> None:
    argv = numactl_argv(make(mem_policy="none").ranks[0])
    assert len(argv) == 2
    assert plan_to_numactl(make()).splitlines()[0].endswith(" -- CMD")


def test_slurm_masks_gpus_and_gres_core_indexes() -> None:
    p = make(procs_per_gpu=2)
    text = plan_to_slurm(p)
    srun = next(line for line in text.splitlines() if line.startswith("srun "))
    args = dict(a.split("=", 1) for a in shlex.split(srun)[1:-1])
    masks = args["--cpu-bind"].removeprefix("mask_cpu:").split(",")
    assert [parse_mask(m) for m in masks] == [set(r.cpus) for r in p.ranks]
    assert args["--gpu-bind"] == "map_gpu:" + ",".join(str(r.gpu.index) for r in p.ranks if r.gpu)
    assert args["--mem-bind"] == "map_mem:" + ",".join(str(r.numa_node) for r in p.ranks)
    gres = [line for line in text.splitlines() if line.startswith("Name=gpu")]
    assert len(gres) == 4
    # Cores= are logical core indexes: socket 1's GPU (numa 2) gets cores 6-8, though its CPUs are odd numbers
    node = build_node(LAYOUT)
    assert node.gpus[2].numa_node == 2
    assert gres[2] == "Name=gpu File=/dev/nvidia2 Cores=6-8"
    assert set(p.ranks[4].cpus) <= node.packages[1].cpus
    assert any("logical core indexes" in line for line in text.splitlines() if line.startswith("#"))


def test_slurm_cpu_only_has_no_gpu_bind_and_local_memory_is_preferred_local() -> None:
    p = make_plan(build_node(replace(LAYOUT, gpus=())), PlanRequest(ranks=3, mem_policy="local"))
    text = plan_to_slurm(p)
    assert "--gpu-bind" not in text and "Name=gpu" not in text
    # Slurm's plain "local" is a strict bind; the kernel's local policy falls back to other nodes
    assert "--mem-bind=prefer,local" in text


@pytest.mark.parametrize(("policy", "mem_bind"), [("preferred", "--mem-bind=prefer,map_mem:"), ("interleave", None),
                                                  ("none", None)])  # fmt: skip
def test_slurm_memory_policies(policy: str, mem_bind: str | None) -> None:
    text = plan_to_slurm(make(mem_policy=policy))
    srun = next(line for line in text.splitlines() if line.startswith("srun "))
    if mem_bind is None:
        assert "--mem-bind" not in srun
    else:
        assert mem_bind in srun
    assert ("has no srun --mem-bind spelling" in text) == (policy == "interleave")


def test_slurm_asks_for_the_cpus_and_prints_the_launch_form() -> None:
    p = make(procs_per_gpu=2)
    lines = [line for line in plan_to_slurm(p, "/jobs/plan.json", ["python", "train.py"]).splitlines()
             if line.startswith("srun ")]  # fmt: skip
    width = max(len(r.cpus) for r in p.ranks)
    assert all(f"--ntasks-per-node={len(p.ranks)} --cpus-per-task={width}" in line for line in lines)
    assert lines[0].endswith(" python train.py")
    assert lines[1].endswith("--cpu-bind=none pinctl launch --plan /jobs/plan.json -- python train.py")
