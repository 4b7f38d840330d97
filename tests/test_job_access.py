"""Part of a node: inside a pod, a docker --gpus container or a MIG host, show, plan and launch
agree on the GPUs, CPUs and memory nodes the job was given, and every GPU variable names a
GPU the process can see (fixtures/jobs, built by fixtures/gen_jobs.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
from job_helpers import DGX, JOBS, enter_job, scenario
from test_fixtures_fresh import snapshot

import pinctl.cli.pin as cli_pin
from pinctl import api
from pinctl.cli.app import run
from pinctl.cli.options import PLAN_OPTION_NAMES
from pinctl.cpuset import parse_list
from pinctl.discovery import discover
from pinctl.discovery.access import JobAccess, apply_access
from pinctl.discovery.nvml import query_nvml
from pinctl.model import Node

REPO = Path(__file__).resolve().parents[1]
NODE_SCHEMA = json.loads((REPO / "pinctl" / "schemas" / "node-v1.json").read_text())


def cuda_env(rank: dict[str, object]) -> str | None:
    env = rank["env"]
    assert isinstance(env, dict)
    value = env.get("CUDA_VISIBLE_DEVICES")
    return None if value is None else str(value)


def test_job_fixtures_regenerate_identically(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(REPO / "fixtures" / "gen_jobs.py"), str(tmp_path)], check=True)
    assert snapshot(tmp_path) == snapshot(JOBS)


def test_pod_show_lists_every_gpu_and_marks_the_others(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    enter_job(monkeypatch, "k8s-two-gpus")
    assert run(["show", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    jsonschema.validate(data, NODE_SCHEMA)
    assert len(data["gpus"]) == 8
    assert [g["index"] for g in data["gpus"] if g["usable"]] == [2, 5]
    assert all("NVML does not list it" in g["unusable"] for g in data["gpus"] if not g["usable"])
    assert [g["runtime_index"] for g in data["gpus"] if g["usable"]] == [0, 1]
    assert data["allowed_cpulist"] == "8-11,64-67,120-123,176-179"
    assert data["allowed_mems"] == [0, 1]
    assert run(["show"]) == 0
    text = capsys.readouterr().out
    assert "8 GPUs (2 usable by this job)" in text
    gpu0 = next(line for line in text.splitlines() if line.lstrip().startswith("GPU0 "))
    assert "not usable by this job: NVML does not list it" in gpu0


def test_pod_plan_and_launch_use_only_its_gpus_and_cpus(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    enter_job(monkeypatch, "k8s-two-gpus")
    allowed = parse_list("8-11,64-67,120-123,176-179")
    assert run(["plan", "--json", "--isolate-gpus"]) == 0
    ranks = json.loads(capsys.readouterr().out)["ranks"]
    assert [r["gpu"]["index"] for r in ranks] == [2, 5]
    assert [r["gpu"]["visible_index"] for r in ranks] == [0, 1]
    assert all(set(r["cpus"]) <= allowed for r in ranks)
    assert set(ranks[0]["cpus"]) == parse_list("8-11,120-123")  # GPU 2's socket
    assert set(ranks[1]["cpus"]) == parse_list("64-67,176-179")
    assert [r["mems"] for r in ranks] == [[0], [1]]
    uuids = {g["uuid"] for g in scenario("k8s-two-gpus")["nvml"]}
    assert {cuda_env(r) for r in ranks} == uuids
    # launch plans the same ranks (torchrun style, dry run: the environment each child gets).
    assert run(["launch", "--nproc-per-node", "all", "--isolate-gpus", "--dry-run", "--", "true"]) == 0
    out = capsys.readouterr().out
    assert out.count("[local rank") == 2
    assert all(u in out for u in uuids)


def test_without_uuids_an_index_counts_the_jobs_gpus_not_the_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    enter_job(monkeypatch, "k8s-two-gpus")
    node = api.discover()
    bare = replace(node, gpus=tuple(replace(g, uuid=None) for g in node.gpus))
    plan = api.make_plan(bare, isolate_gpus=True)
    assert [(r.gpu.index if r.gpu else None, dict(r.env)["CUDA_VISIBLE_DEVICES"]) for r in plan.ranks] == [
        (2, "0"), (5, "1")]  # fmt: skip


def test_single_numa_pod_follows_cuda_order_and_its_memory_node(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    enter_job(monkeypatch, "k8s-single-numa")  # CUDA_VISIBLE_DEVICES=1,0: CUDA's device 0 is GPU 5
    assert run(["plan", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    ranks = plan["ranks"]
    assert [(r["local_rank"], r["gpu"]["index"], r["gpu"]["visible_index"]) for r in ranks] == [(0, 5, 0), (1, 4, 1)]
    assert all(r["mems"] == [1] and set(r["cpus"]) <= parse_list("60-63,172-175") for r in ranks)
    assert not any("LOCAL_RANK does not equal" in w for w in plan["warnings"])
    node = api.discover()
    bare = replace(node, gpus=tuple(replace(g, uuid=None) for g in node.gpus))
    # A new CUDA_VISIBLE_DEVICES replaces the old one: it counts the pod's GPUs in PCI order.
    env = [dict(r.env)["CUDA_VISIBLE_DEVICES"] for r in api.make_plan(bare, isolate_gpus=True).ranks]
    assert env == ["1", "0"]


def test_plan_refuses_a_gpu_the_job_was_not_given(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    enter_job(monkeypatch, "k8s-two-gpus")
    assert run(["plan", "--json", "--gpus", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pinctl: error: --gpus: GPU 0 cannot be used by this job: NVML does not list it")
    assert "Traceback" not in err


def test_docker_cgroup_v1(monkeypatch: pytest.MonkeyPatch) -> None:
    enter_job(monkeypatch, "docker-v1")
    node = api.discover()
    assert [g.index for g in node.usable_gpus] == [3]
    assert node.allowed_cpus == parse_list("0-7") and node.allowed_mems == frozenset({0})
    (rank,) = api.make_plan(node).ranks
    assert rank.cpus <= parse_list("0-7") and rank.mems == frozenset({0})


def test_memory_node_outside_the_cgroup_is_never_bound() -> None:
    # docker --gpus device=5 --cpuset-mems 0: GPU 5 sits on node 1, whose memory the job may not use.
    node = apply_access(discover(topology=DGX), JobAccess(env=(("NVIDIA_VISIBLE_DEVICES", "5"),), mems=frozenset({0})))
    assert [g.index for g in node.usable_gpus] == [5] and node.allowed_mems == frozenset({0})
    for policy in ("bind", "preferred", "interleave"):
        plan = api.make_plan(node, mem_policy=policy)
        assert [r.numa_node for r in plan.ranks] == [1]  # CPUs stay by the GPU
        assert all(r.mems == frozenset({0}) for r in plan.ranks), policy
    assert any("not among this job's memory nodes" in w for w in api.make_plan(node).warnings)


def test_mig_ranks_per_instance_share_their_gpus_cpus_and_nic(monkeypatch: pytest.MonkeyPatch) -> None:
    enter_job(monkeypatch, "mig")
    node = api.discover()
    assert [len(g.mig) for g in node.gpus] == [2, 2, 0, 0, 0, 0, 0, 0]
    plan = api.make_plan(node)
    assert len(plan.ranks) == 10
    migs = [r for r in plan.ranks if r.gpu is not None and r.gpu.mig is not None]
    assert [dict(r.env)["CUDA_VISIBLE_DEVICES"] for r in migs] == [m.uuid for g in node.gpus for m in g.mig]
    for gpu in (0, 1):
        pair = [r for r in migs if r.gpu is not None and r.gpu.index == gpu]
        assert len(pair) == 2 and pair[0].nics == pair[1].nics and pair[0].nics
        assert not pair[0].cpus & pair[1].cpus
        assert pair[0].numa_node == pair[1].numa_node == node.gpus[gpu].numa_node
    assert len(api.make_plan(node, procs_per_gpu=2).ranks) == 20


def test_show_names_mig_instances(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    enter_job(monkeypatch, "mig")
    assert run(["show"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.lstrip().startswith(("GPU0 ", "GPU2 "))]
    assert "MIG: 2 instances" in rows[0] and "MIG" not in rows[1]


def test_mig_instance_named_by_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    one = scenario("mig")["nvml"][1]["mig"][1]["uuid"]
    enter_job(monkeypatch, "mig", env={"CUDA_VISIBLE_DEVICES": one})
    node = api.discover()
    assert [(g.index, [m.uuid for m in g.mig]) for g in node.usable_gpus] == [(1, [one])]
    (rank,) = api.make_plan(node).ranks
    assert dict(rank.env)["CUDA_VISIBLE_DEVICES"] == one


def test_query_nvml_reads_minor_numbers_and_mig_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    enter_job(monkeypatch, "mig")
    result, reason = query_nvml()
    assert reason is None and result is not None
    assert [g.minor for g in result.gpus] == list(range(8))
    assert [m.gpu_instance for m in result.gpus[0].mig] == [1, 2] and result.gpus[0].mig_mode
    assert result.gpus[2].mig == () and result.gpus[2].mig_mode is False


def test_a_topology_file_is_not_this_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    enter_job(monkeypatch, "k8s-two-gpus")
    node: Node = discover(topology=DGX)
    assert all(g.usable for g in node.gpus) and node.allowed_mems is None


def test_pin_auto_joins_nvml_and_plan_on_bus_ids(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    # Inside the pod NVML's GPU 0 is the node's GPU 2 and NVML's GPU 1 the node's GPU 5.
    enter_job(monkeypatch, "k8s-two-gpus", pids={0: [4242], 1: [4343]})
    params: dict[str, object] = {name: None for name in PLAN_OPTION_NAMES}
    params.update(plan_file=None, topology=None, root=None, procs_per_gpu=1, reserve_per_numa=0, smt="all",
                  mem_policy="bind", nic_link_layer="ib", nics_per_gpu=1, local_rails=False, isolate_gpus=False,
                  helpers=False, force=False, gpus="2")  # fmt: skip
    ((pid, cpus, mems),) = cli_pin._auto_targets(params)
    assert (pid, cpus, mems) == (4242, parse_list("8-11,120-123"), frozenset({0}))
    err = capsys.readouterr().err
    assert "NVML's GPU 1 (0000:c3:00.0) is not in the plan: its processes 4343 are left alone" in err


def test_check_gpu_procs_names_the_nodes_gpu_not_nvmls(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    # This test process stands for a rank on NVML's GPU 0 inside the pod: the node's GPU 2.
    enter_job(monkeypatch, "k8s-two-gpus", pids={0: [os.getpid()]})
    assert run(["check", "--gpu-procs", "--json"]) in (0, 1)
    (proc,) = json.loads(capsys.readouterr().out)["processes"]
    assert proc["gpus"] == [2]
    assert [e["cpulist"] for e in proc["expected"]] == ["8-11,120-123"]  # GPU 2's rank, not GPU 0's
