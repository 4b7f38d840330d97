"""Issue 13, the whole node: every CPU named by class, --helpers, storage nearest first, and the
housekeeping exports (systemd, Slurm, irqbalance) checked with the real tools where Debian has them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from nodes import Layout, build_node, two_sockets
from test_plan_properties import FAST, VALIDATOR, planned

from pinctl import api
from pinctl.cpuset import parse_list
from pinctl.doctor import irq
from pinctl.doctor.finding import DoctorContext
from pinctl.errors import PlanError, UsageError
from pinctl.kernel.files import KernelFiles
from pinctl.model import Node
from pinctl.plan.make import make_plan
from pinctl.plan.request import PlanRequest
from pinctl.planfile.types import Plan
from pinctl.render.housekeeping import plan_to_irqbalance, plan_to_systemd, systemd_files
from pinctl.render.plan import plan_table
from pinctl.render.table import plain

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures" / "hwloc"
PASCAL = REPO.parent / "shared" / "topologies" / "mpibind-cts1-pascal.xml"
SOCKET1 = parse_list("18-35,54-71")


def fixture(name: str) -> Node:
    return api.discover(topology=str(FIXTURES / name), nvml=False)


def classes_partition(node: Node, plan: Plan) -> None:
    """Ranks, helpers, housekeeping and idle partition the allowed CPUs; not_allowed is the rest."""
    c = plan.cpu_classes
    assert c is not None
    parts = [r.cpus for r in plan.ranks] + [r.helpers for r in plan.ranks] + [c.housekeeping, c.idle]
    assert sum(len(p) for p in parts) == len(node.allowed_cpus & node.cpus)
    assert frozenset().union(*parts) == node.allowed_cpus & node.cpus
    assert c.not_allowed == node.cpus - node.allowed_cpus


# --- the CPU classes -------------------------------------------------------------------------------


@pytest.mark.skipif(not PASCAL.is_file(), reason="no /work/shared/topologies (LLNL cts1-pascal capture)")
def test_cts1_pascal_plan_names_the_idle_socket() -> None:
    node = api.discover(topology=str(PASCAL), nvml=False)
    plan = api.make_plan(node)
    assert plan.cpu_classes is not None
    assert plan.cpu_classes.idle == SOCKET1  # both GPUs on NUMA 0: socket 1's 18 cores idle
    assert plan.rank_cpus == parse_list("0-17,36-53")
    assert any("18 cores used by no rank" in w and "all of NUMA node 1" in w for w in plan.warnings)
    classes_partition(node, plan)


def test_gpus_on_one_socket_idle_cores_go_to_helpers_nearest_first() -> None:
    node = fixture("gpus-one-socket.xml")
    plan = api.make_plan(node, helpers=True, reserve_per_numa=1)
    c = plan.cpu_classes
    assert c is not None and c.housekeeping == {0, 18, 36, 54} and c.idle == frozenset()
    r0, r1 = plan.ranks
    assert r0.helpers == parse_list("19-27,55-63") and r1.helpers == parse_list("28-35,64-71")
    assert dict(r0.env)["PINCTL_HELPER_CPUS"] == "19-27,55-63"
    assert not any("used by no rank" in w for w in plan.warnings)
    classes_partition(node, plan)


def test_helpers_take_the_gpus_own_node_before_the_far_one() -> None:
    # Two NUMA nodes per socket; GPU 0 on node 0 (socket 0), GPU 1 on node 2 (socket 1): nodes 1 and
    # 3 are idle, and each rank's helpers come from the idle node of its own socket.
    node = build_node(Layout(numa_per_package=2, gpus=((0, 0, 0), (2, 0, 0))))
    plan = make_plan(node, PlanRequest(helpers=True))
    numa_cpus = {n.os_index: n.cpus for n in node.numa_nodes}
    r0, r1 = plan.ranks
    assert r0.helpers == numa_cpus[1] and r1.helpers == numa_cpus[3]


def test_helpers_without_idle_cpus_warn() -> None:
    node = fixture("uneven-nvme.xml")
    plan = api.make_plan(node, helpers=True)
    assert all(not r.helpers and "PINCTL_HELPER_CPUS" not in dict(r.env) for r in plan.ranks)
    assert any("no rank has helper CPUs" in w for w in plan.warnings)


@FAST
@given(planned())
def test_cpu_classes_partition_the_allowed_cpus(case: tuple[Node, PlanRequest, Plan]) -> None:
    node, request, plan = case
    classes_partition(node, plan)
    c = plan.cpu_classes
    assert c is not None
    helpers = [r.helpers for r in plan.ranks]
    assert sum(map(len, helpers)) == len(frozenset().union(*helpers))  # no helper CPU shared
    if request.helpers:
        assert c.idle == frozenset()  # every idle CPU put to work
        per_rank = [sum(1 for core in node.cores if h.intersection(core.pus)) for h in helpers]
        assert max(per_rank) - min(per_rank) <= 1  # the idle cores shared out evenly
    else:
        assert not any(helpers)
    assert Plan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    VALIDATOR.validate(plan.to_dict())


def test_helpers_fewer_idle_cores_than_ranks_are_named() -> None:
    # three ranks on socket 0; socket 1 (cores 4-7 with siblings 12-15) has three cores reserved
    node = build_node(Layout(gpus=((0, 0, 0), (0, 0, 1), (0, 0, 2))))
    plan = make_plan(node, PlanRequest(reserve=frozenset({4, 5, 6, 12, 13, 14}), helpers=True))
    assert [r.helpers for r in plan.ranks] == [frozenset({7, 15}), frozenset(), frozenset()]
    assert any(w.startswith("--helpers: fewer idle cores than ranks: ranks 1-2 get no helper CPUs")
               for w in plan.warnings)  # fmt: skip


# --- JSON and table --------------------------------------------------------------------------------


def test_plan_json_v2_round_trips_and_v1_files_are_still_read() -> None:
    plan = api.make_plan(fixture("gpus-one-socket.xml"), helpers=True, reserve="0")
    obj = plan.to_dict()
    assert obj["schema"] == "pinctl.plan/v2" and obj["cpus"]["housekeeping"] == [0]
    v1 = {k: v for k, v in obj.items() if k != "cpus"} | {"schema": "pinctl.plan/v1"}
    v1["ranks"] = [{k: v for k, v in r.items() if k != "helpers"} for r in obj["ranks"]]
    old = Plan.from_dict(v1)
    assert old.cpu_classes is None and old.ranks[0].cpus == plan.ranks[0].cpus
    assert old.to_dict()["cpus"] is None
    with pytest.raises(PlanError, match="v1 file has no cpus"):
        Plan.from_dict(v1 | {"cpus": obj["cpus"]})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda o: o["cpus"].update(idle=o["ranks"][0]["cpus"][:1]), "is a rank's and also idle"),
        (lambda o: o["cpus"].update(idle=o["cpus"]["housekeeping"]), "in two classes"),
        (lambda o: o["ranks"][1].update(helpers=o["ranks"][0]["cpus"][:1]), "is a rank's own"),
        (lambda o: o["ranks"][0].update(helpers=o["ranks"][0]["cpus"][:1]), "also the rank's own"),
    ],
)
def test_plan_file_with_a_cpu_in_two_classes_is_refused(change: object, message: str) -> None:
    obj = api.make_plan(fixture("gpus-one-socket.xml"), reserve_per_numa=1).to_dict()
    change(obj)  # type: ignore[operator]
    with pytest.raises(PlanError, match=message):
        Plan.from_dict(obj)


def test_table_lists_every_cpu_class_and_helpers() -> None:
    text = plain(plan_table(api.make_plan(fixture("gpus-one-socket.xml"), helpers=True, reserve_per_numa=1)))
    assert "helpers" in text.splitlines()[1]
    lines = {line.split()[0]: line for line in text.splitlines() if line.split()}
    assert "0,18,36,54" in lines["housekeeping"] and "19-35,55-71" in lines["helpers"]
    assert "ranks" in lines and "idle" in lines


# --- storage ---------------------------------------------------------------------------------------


def test_uneven_nvme_every_gpu_gets_its_sockets_disk() -> None:
    plan = api.make_plan(fixture("uneven-nvme.xml"))
    disks = {r.gpu.index: (r.storage[0].name, r.storage[0].distance) for r in plan.ranks if r.gpu}
    assert {g: d[0] for g, d in disks.items()} == {0: "nvme0n1", 1: "nvme0n1", 2: "nvme0n1", 3: "nvme1n1"}
    assert all(d[1] != "SYS" for d in disks.values())
    assert not any("storage" in w for w in plan.warnings)


def test_far_storage_is_named_in_the_warnings() -> None:
    plan = api.make_plan(fixture("gpus-one-socket.xml"))
    assert all(r.storage[0].distance == "SYS" for r in plan.ranks)
    assert any(w.startswith("GPUs 0-1: storage nvme0n1") and "SYS" in w for w in plan.warnings)
    cpu_only = make_plan(build_node(Layout(storage=((1, 0, 0),))), PlanRequest(ranks=4))
    assert any(w.startswith("ranks 0-1: storage nvme0n1") for w in cpu_only.warnings)


# --- exports ---------------------------------------------------------------------------------------


def _pinctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pinctl", *args], capture_output=True, text=True, timeout=120)


def test_systemd_export_confines_the_system_slices(tmp_path: Path) -> None:
    plan = api.make_plan(fixture("gpus-one-socket.xml"), reserve_per_numa=1)
    files = dict(systemd_files(plan))
    assert files["system/system.slice.d/50-pinctl-housekeeping.conf"].endswith("[Slice]\nAllowedCPUs=0,18,36,54\n")
    assert files["system/init.scope.d/50-pinctl-housekeeping.conf"].endswith("[Scope]\nAllowedCPUs=0,18,36,54\n")
    assert files["system.conf.d/50-pinctl-housekeeping.conf"].endswith("[Manager]\nCPUAffinity=0,18,36,54\n")
    assert "# /etc/systemd/system/user.slice.d/50-pinctl-housekeeping.conf" in plan_to_systemd(plan)
    res = _pinctl("plan", "--topology", str(FIXTURES / "gpus-one-socket.xml"), "--reserve-per-numa", "1",
                  "--format", "systemd", "-o", str(tmp_path / "out"))  # fmt: skip
    assert res.returncode == 0, res.stderr
    written = {str(p.relative_to(tmp_path / "out")): p.read_text() for p in (tmp_path / "out").rglob("*.conf")}
    assert written == files


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_dropins_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    plan = api.make_plan(fixture("gpus-one-socket.xml"), reserve="0-1,36-37")
    for rel, text in systemd_files(plan):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path / 'system'}:"}
    res = subprocess.run(["systemd-analyze", "verify", "system.slice", "user.slice"], env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 0 and "50-pinctl" not in res.stderr + res.stdout, res.stderr
    # the same check catches a key systemd would not take
    bad = tmp_path / "system" / "system.slice.d" / "50-pinctl-housekeeping.conf"
    bad.write_text("[Slice]\nAllowedCPUs=0-x\n")
    res = subprocess.run(["systemd-analyze", "verify", "system.slice"], env=env, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert "50-pinctl" in res.stderr


def test_exports_without_housekeeping_are_a_one_line_error() -> None:
    for fmt in ("systemd", "irqbalance"):
        res = _pinctl("plan", "--topology", str(FIXTURES / "gpus-one-socket.xml"), "--format", fmt)
        assert res.returncode == 2
        assert res.stderr.startswith(f"pinctl: error: --format {fmt}: the plan has no housekeeping CPUs")
        assert "Traceback" not in res.stderr
    with pytest.raises(UsageError, match="v1"):
        plan_to_systemd(api.make_plan(fixture("gpus-one-socket.xml"), reserve="0").replace(cpu_classes=None))


def test_irqbalance_bans_every_cpu_but_housekeeping() -> None:
    text = plan_to_irqbalance(api.make_plan(fixture("gpus-one-socket.xml"), reserve_per_numa=1))
    assert "IRQBALANCE_BANNED_CPULIST=1-17,19-35,37-53,55-71\n" in text
    mask = next(line for line in text.splitlines() if line.startswith("#IRQBALANCE_BANNED_CPUS="))
    value = int(mask.split("=")[1].replace(",", ""), 16)
    assert {i for i in range(72) if value >> i & 1} == set(parse_list("1-17,19-35,37-53,55-71"))


def test_slurm_export_names_the_housekeeping_cores() -> None:
    from pinctl.render.export import plan_to_slurm

    text = plan_to_slurm(api.make_plan(fixture("gpus-one-socket.xml"), reserve_per_numa=1))
    # cores 0 and 18 (first of each socket), two threads each: Slurm ids 0-1 and 36-37
    assert "NodeName=pascal-like-01 CpuSpecList=0-1,36-37\n" in text
    assert "CoreSpecCount=2" in text
    assert "CpuSpecList" not in plan_to_slurm(api.make_plan(fixture("gpus-one-socket.xml")))


def test_housekeeping_missing_on_a_device_node_is_warned() -> None:
    plan = api.make_plan(fixture("uneven-nvme.xml"), reserve="0")
    assert any(w.startswith("no housekeeping CPU on NUMA node 1 (GPU 3, mlx5_1, nvme1n1)") for w in plan.warnings)
    assert not any("no housekeeping" in w for w in api.make_plan(fixture("uneven-nvme.xml"),
                                                                 reserve_per_numa=1).warnings)  # fmt: skip


# --- doctor and the API ----------------------------------------------------------------------------


def _irq_tree(tmp_path: Path, cpus: list[int]) -> KernelFiles:
    dev = tmp_path / "sys/bus/pci/devices/0000:19:00.0/msi_irqs"  # two_sockets' mlx5_0, NUMA 0 (CPUs 0-3)
    dev.mkdir(parents=True)
    for i, cpu in enumerate(cpus):
        (dev / str(100 + i)).write_text("msix\n")
        (tmp_path / f"proc/irq/{100 + i}").mkdir(parents=True)
        (tmp_path / f"proc/irq/{100 + i}/effective_affinity_list").write_text(f"{cpu}\n")
    return KernelFiles(str(tmp_path))


@pytest.mark.parametrize(("cpus", "severity"), [([0, 0], "ok"), ([0, 2], "warn"), ([4, 4], "warn")])
def test_doctor_irq_judges_nic_irqs_against_the_plans_housekeeping(
    tmp_path: Path, cpus: list[int], severity: str
) -> None:
    node = two_sockets(gpus=(), storage=())
    plan = make_plan(node, PlanRequest(ranks=2, reserve=frozenset({0, 4})))
    found = irq.remote_numa(DoctorContext(_irq_tree(tmp_path, cpus), node, plan=plan))
    assert [f.severity for f in found] == [severity]
    if severity == "warn":
        assert "outside the plan's housekeeping CPUs 0" in found[0].summary
    # without a plan, IRQs on local CPU 2 are fine
    if cpus == [0, 2]:
        assert [f.severity for f in irq.remote_numa(DoctorContext(_irq_tree(tmp_path / "b", cpus), node))] == ["ok"]


def test_bind_helper_binds_a_worker_to_its_helper_cpus() -> None:
    cpu = min(os.sched_getaffinity(0))
    code = ("import os, pinctl; got = pinctl.bind_helper(3); "
            "print(sorted(got), sorted(os.sched_getaffinity(0)))")  # fmt: skip
    env = {**os.environ, "PINCTL_HELPER_CPUS": str(cpu)}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("] [") == [f"[{cpu}", f"{cpu}]\n"]
    with pytest.raises(UsageError, match="PINCTL_HELPER_CPUS is not set"):
        api.bind_helper(env={})
