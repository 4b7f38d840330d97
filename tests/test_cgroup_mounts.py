"""Issue 22 item 4: the cpuset cgroup is read wherever it is mounted (cgroup v2 off /sys/fs/cgroup, v1
with a namespace root or noprefix, the legacy cpuset filesystem at /dev/cpuset), so a plan never binds
memory to a node the cgroup forbids (set_mempolicy would fail with EINVAL). Fixtures: fixtures/jobs
(fixtures/gen_jobs.py) and small trees written here."""

from __future__ import annotations

from pathlib import Path

import pytest
from job_helpers import enter_job

from pinctl import api
from pinctl.cpuset import parse_list
from pinctl.kernel.cgroup import cpuset, mounts
from pinctl.kernel.files import KernelFiles


def put(top: Path, rel: str, text: str) -> None:
    path = top / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


@pytest.mark.parametrize(("name", "mems"), [("slurm-cgroup2-elsewhere", {1}), ("legacy-cpuset", {0})])
def test_job_memory_nodes_come_from_the_mounted_cpuset(monkeypatch: pytest.MonkeyPatch, name: str,
                                                       mems: set[int]) -> None:  # fmt: skip
    enter_job(monkeypatch, name)
    node = api.discover()
    assert node.allowed_mems == frozenset(mems)
    assert node.allowed_cpus == parse_list("0-7,56-63")
    assert [g.index for g in node.usable_gpus] == [0, 4]
    for policy in ("bind", "preferred", "interleave"):
        plan = api.make_plan(node, mem_policy=policy)
        assert [r.numa_node for r in plan.ranks] == [0, 1]  # CPUs stay by each GPU
        assert all(r.mems == frozenset(mems) for r in plan.ranks), policy
        assert all(r.cpus <= node.allowed_cpus for r in plan.ranks)
    assert any("not among this job's memory nodes" in w for w in api.make_plan(node).warnings)


def test_v1_mount_with_a_namespace_root_and_noprefix(tmp_path: Path) -> None:
    """A container's v1 cpuset bind-mounted at its own cgroup (mountinfo root /docker/abc), noprefix files."""
    put(tmp_path, "proc/self/cgroup", "7:cpuset,cpu:/docker/abc\n0::/")
    put(tmp_path, "proc/self/mountinfo",
        "30 25 0:27 /docker/abc /sys/fs/cgroup/cpuset ro,nosuid - cgroup cgroup rw,cpuset,noprefix")  # fmt: skip
    put(tmp_path, "sys/fs/cgroup/cpuset/cpus", "2-3")
    put(tmp_path, "sys/fs/cgroup/cpuset/mems", "1")
    limit = cpuset(KernelFiles(str(tmp_path)))
    assert limit is not None and (limit.cpus, limit.mems) == (frozenset({2, 3}), frozenset({1}))
    assert limit.path == "/sys/fs/cgroup/cpuset/cpus"


def test_mount_points_with_escaped_spaces_and_other_filesystems(tmp_path: Path) -> None:
    put(tmp_path, "proc/mounts", "proc /proc proc rw 0 0\ncgroup2 /my\\040cgroups cgroup2 rw,nsdelegate 0 0\n"
                                 "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0")  # fmt: skip
    found = mounts(KernelFiles(str(tmp_path)))
    assert [(m.kind, m.point) for m in found] == [("v2", "/my cgroups")]
    put(tmp_path, "proc/self/cgroup", "0::/a/b")
    put(tmp_path, "my cgroups/a/cpuset.cpus.effective", "0-1")
    put(tmp_path, "my cgroups/a/cpuset.mems.effective", "0")
    limit = cpuset(KernelFiles(str(tmp_path)))
    assert limit is not None and limit.mems == frozenset({0}) and limit.path == "/my cgroups/a/cpuset.cpus.effective"


def test_without_a_mount_table_the_usual_place_is_read(tmp_path: Path) -> None:
    put(tmp_path, "proc/self/cgroup", "0::/job")
    put(tmp_path, "sys/fs/cgroup/job/cpuset.cpus.effective", "4-5")
    put(tmp_path, "sys/fs/cgroup/job/cpuset.mems.effective", "0")
    limit = cpuset(KernelFiles(str(tmp_path)))
    assert limit is not None and limit.cpus == frozenset({4, 5})
