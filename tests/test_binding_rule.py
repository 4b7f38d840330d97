"""One binding rule on every path (issue 18, item 1): the cgroup cpuset limits what a rank may
use; the affinity pinctl inherited (taskset, mpirun's bind-to-core, srun --cpu-bind) does not.

These run the real taskset around pinctl: a plan made in-process must fit as a plan file does.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from act_helpers import PYTHON, plan_dict, rank, write_plan

from pinctl.cpuset import format_list
from pinctl.kernel.cgroup import cpuset
from pinctl.kernel.files import KernelFiles

LIMIT = cpuset(KernelFiles("/"))
CGROUP_CPUS = sorted(LIMIT.cpus) if LIMIT is not None else []
pytestmark = [
    pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset (util-linux)"),
    pytest.mark.skipif(len(CGROUP_CPUS) < 2, reason="needs a cgroup cpuset of two CPUs or more"),
]
FIRST = str(CGROUP_CPUS[0]) if CGROUP_CPUS else "0"
REPORT = "echo report $LOCAL_RANK $(grep Cpus_allowed_list /proc/self/status | cut -f2)"


def under_taskset(*args: str) -> subprocess.CompletedProcess[str]:
    """pinctl with its affinity narrowed to one CPU, as mpirun's bind-to-core or taskset leave it."""
    return subprocess.run(["taskset", "-c", FIRST, PYTHON, "-m", "pinctl", *args], capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_show_reports_the_cgroup_not_the_inherited_binding() -> None:
    res = under_taskset("show", "--json")
    assert res.returncode == 0, res.stderr
    assert sorted(json.loads(res.stdout)["allowed_cpus"]) == CGROUP_CPUS


def test_launch_with_an_in_process_plan_ignores_the_inherited_binding() -> None:
    res = under_taskset("launch", "--ranks", "2", "--nproc-per-node", "all", "--", "sh", "-c", REPORT)
    assert res.returncode == 0, res.stderr
    got = dict(line.split()[1:] for line in res.stdout.splitlines() if line.startswith("report "))
    assert sorted(got) == ["0", "1"]
    # each rank holds CPUs of its own, and together they reach beyond the one CPU taskset gave
    cpus = [set(got[r].split(",")) for r in ("0", "1")]
    assert not cpus[0] & cpus[1]
    assert cpus[0] | cpus[1] != {FIRST}


def test_in_process_plan_and_plan_file_agree(tmp_path: Path) -> None:
    """The same binding by both paths: a plan file's rank 1 and an in-process rank 1 are both bound
    outside the CPU taskset left."""
    other = str(CGROUP_CPUS[1])
    plan = write_plan(tmp_path / "p.json", plan_dict([rank(0, [int(FIRST)]), rank(1, [int(other)])]))
    by_file = under_taskset("launch", "--plan", plan, "--local-rank", "1", "--", "sh", "-c", REPORT)
    assert by_file.returncode == 0, by_file.stderr
    assert by_file.stdout.split()[-1] == format_list([int(other)])
    in_process = under_taskset("launch", "--ranks", "2", "--local-rank", "1", "--", "sh", "-c", REPORT)
    assert in_process.returncode == 0, in_process.stderr
    assert FIRST not in in_process.stdout.split()[-1].split(",")
