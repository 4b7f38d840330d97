"""Kernel readers on small hand-made trees: what each file format means, and what is unknown."""

from __future__ import annotations

from pathlib import Path

import pytest

from pinctl.kernel.cgroup import cpuset
from pinctl.kernel.files import KernelFiles


def tree(root: Path, files: dict[str, str]) -> KernelFiles:
    for rel, text in files.items():
        path = root / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return KernelFiles(str(root))


def test_cgroup_v1_cpuset_of_a_slurm_step(tmp_path: Path) -> None:
    step = "/slurm_vm/uid_0/job_7/step_0"
    files = tree(tmp_path, {
        "/proc/self/cgroup": f"9:name=systemd:/\n3:cpuset:{step}\n2:memory:/",
        f"/sys/fs/cgroup/cpuset{step}/cpuset.effective_cpus": "2-3",
        f"/sys/fs/cgroup/cpuset{step}/cpuset.effective_mems": "0",
        f"/sys/fs/cgroup/cpuset{step}/cpuset.cpus": "2-5",
    })  # fmt: skip
    got = cpuset(files)
    assert got is not None and got.cpus == {2, 3} and got.mems == {0}
    assert got.path.endswith("job_7/step_0/cpuset.effective_cpus")


def test_cgroup_v2_walks_up_to_the_nearest_cpuset(tmp_path: Path) -> None:
    files = tree(tmp_path, {
        "/proc/1234/cgroup": "0::/kubepods/pod1/ctr",
        "/sys/fs/cgroup/kubepods/pod1/cpuset.cpus.effective": "0-15",
        "/sys/fs/cgroup/kubepods/pod1/cpuset.mems.effective": "0-1",
        "/sys/fs/cgroup/cpuset.cpus.effective": "0-223",
    })  # fmt: skip
    got = cpuset(files, 1234)
    assert got is not None and got.cpus == frozenset(range(16)) and got.mems == {0, 1}


@pytest.mark.parametrize("cgroup", ["", "0::/gone", "3:cpuset:/nowhere", "garbage without colons"])
def test_no_readable_cpuset_is_unknown_not_empty(tmp_path: Path, cgroup: str) -> None:
    assert cpuset(tree(tmp_path, {"/proc/self/cgroup": cgroup})) is None


def test_this_process_has_a_cpuset_that_holds_its_affinity() -> None:
    import os

    got = cpuset(KernelFiles())
    if got is None:
        pytest.skip("no cpuset cgroup visible here")
    assert frozenset(os.sched_getaffinity(0)) <= got.cpus
