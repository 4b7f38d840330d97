"""pinctl under the real launchers users run it under: srun, sbatch (with srun, mpirun, mpiexec inside),
Open MPI's mpirun and MPICH's mpiexec.hydra, on a single-node Slurm the tests bring up (tests/real_launchers.py).

Each rank reports what the kernel says it got (/proc/self/status) and which variables it
saw; the assertions are what a user would check with taskset -p and env.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from act_helpers import ALL_CPUS, PYTHON, TWO_CPUS, plan_dict, rank, write_plan
from real_launchers import Slurm, ensure_packages, torchrun, which

pytestmark = pytest.mark.skipif(not TWO_CPUS or ALL_CPUS[:2] != [0, 1], reason="needs CPUs 0 and 1")

PINCTL = f"{shlex.quote(PYTHON)} -m pinctl"
# What each rank prints: its launcher's rank variables, the CPUs it may run on, what launch set.
REPORT = ('echo "report localid=${SLURM_LOCALID:-} rank=${LOCAL_RANK:-} '
          'cpus=$(grep Cpus_allowed_list /proc/self/status | cut -f2) omp=${OMP_NUM_THREADS:-}"')  # fmt: skip


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slurm]:
    why = ensure_packages()
    if why is not None:
        pytest.skip(why)
    cluster = Slurm(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def reports(text: str) -> list[dict[str, str]]:
    out = []
    for line in text.splitlines():
        if line.startswith("report "):
            out.append(dict(field.split("=", 1) for field in line.split()[1:]))
    return out


def sbatch(slurm: Slurm, folder: Path, script: str, *options: str) -> str:
    """Run a batch script to its end (sbatch -W) and return its output."""
    path = folder / "job.sh"
    path.write_text("#!/bin/bash\n" + script)
    path.chmod(0o755)
    out = folder / "job.out"
    res = slurm.run("sbatch", "-W", "-o", str(out), *options, str(path), timeout=120)
    assert res.returncode == 0, res.stderr
    return out.read_text()


def swapped_plan(folder: Path) -> str:
    """Rank 0 on CPU 1, rank 1 on CPU 0: the opposite of every launcher's own default binding."""
    return write_plan(folder / "swapped.json", plan_dict([rank(0, [1]), rank(1, [0])]))


def test_mpirun_inside_sbatch_binds_each_rank_as_its_mpi_rank(slurm: Slurm, tmp_path: Path) -> None:
    """The batch shell's SLURM_LOCALID=0 reaches every rank; Open MPI's own variable is the inner one,
    and mpirun's default bind-to-core is replaced, not taken for a limit."""
    plan = swapped_plan(tmp_path)
    mpirun = which("mpirun.openmpi")
    out = sbatch(slurm, tmp_path, f"{mpirun} --allow-run-as-root -np 2 {PINCTL} launch --plan {plan} -v -- "
                                  f"sh -c {shlex.quote(REPORT)}\n", "--exclusive", "-n", "2")  # fmt: skip
    got = {r["rank"]: r["cpus"] for r in reports(out)}
    assert got == {"0": "1", "1": "0"}, out
    assert {r["localid"] for r in reports(out)} == {"0"}  # the batch shell's, passed on by mpirun
    assert out.count("(from OMPI_COMM_WORLD_LOCAL_RANK)") == 2


def test_mpiexec_hydra_inside_sbatch_with_its_own_binding(slurm: Slurm, tmp_path: Path) -> None:
    plan = write_plan(tmp_path / "plan.json", plan_dict([rank(0, [0]), rank(1, [1])]))
    mpiexec = which("mpiexec.hydra")
    out = sbatch(slurm, tmp_path, f"{mpiexec} -n 2 -bind-to user:1,0 {PINCTL} launch --plan {plan} -v -- "
                                  f"sh -c {shlex.quote(REPORT)}\n", "--exclusive", "-n", "2")  # fmt: skip
    assert {r["rank"]: r["cpus"] for r in reports(out)} == {"0": "0", "1": "1"}, out
    assert out.count("(from MPI_LOCALRANKID)") == 2


def test_srun_with_its_own_cpu_binding(slurm: Slurm, tmp_path: Path) -> None:
    """srun --cpu-bind=map_cpu:1,0 sets an affinity pinctl replaces: the step's cgroup holds both CPUs."""
    plan = write_plan(tmp_path / "plan.json", plan_dict([rank(0, [0]), rank(1, [1])]))
    res = slurm.run("srun", "-n", "2", "--cpu-bind=map_cpu:1,0", *shlex.split(PINCTL), "launch", "--plan", plan,
                    "--", "sh", "-c", REPORT)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert {r["localid"]: r["cpus"] for r in reports(res.stdout)} == {"0": "0", "1": "1"}


def test_a_step_too_small_for_the_rank_is_refused_with_the_fix(slurm: Slurm, tmp_path: Path) -> None:
    """`srun -n1` holds one CPU; a rank of two cannot fit, and the message says how to ask for two."""
    plan = write_plan(tmp_path / "plan.json", plan_dict([rank(0, [0, 1])]))
    res = slurm.run("srun", "-n", "1", *shlex.split(PINCTL), "launch", "--plan", plan, "--", "true")
    assert res.returncode != 0
    assert "outside the CPUs this job step or container may use" in res.stderr and "srun -c 2" in res.stderr
    ok = slurm.run("srun", "-n", "1", "-c", "2", *shlex.split(PINCTL), "launch", "--plan", plan, "--", "sh", "-c",
                   REPORT)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert reports(ok.stdout)[0]["cpus"] == "0-1"


def test_check_inside_a_job_judges_the_ranks_only(slurm: Slurm, tmp_path: Path) -> None:
    """The batch shell and the srun client carry SLURM_LOCALID, and each rank has a child that shares
    its CPUs: none of them is a rank, so correctly pinned ranks check ok."""
    plan = write_plan(tmp_path / "plan.json", plan_dict([rank(0, [0]), rank(1, [1])]))
    script = f"""
srun -n 2 {PINCTL} launch --plan {plan} -- sh -c 'sleep 30 & exec sleep 31' &
for i in $(seq 200); do [ "$(pgrep -cfx 'sleep 31')" = 2 ] && break; sleep 0.1; done
{PINCTL} check --plan {plan} --json > {tmp_path}/check.json
echo "check rc=$?"
kill %1; wait
"""
    out = sbatch(slurm, tmp_path, script, "--exclusive", "-n", "2")
    assert "check rc=0" in out, out
    doc = json.loads((tmp_path / "check.json").read_text())
    assert doc["ok"] is True and len(doc["processes"]) == 2
    assert sorted(p["local_rank"] for p in doc["processes"]) == [0, 1]


def _slurm_lines(tmp_path: Path, ranks: int) -> tuple[str, list[str]]:
    """A real plan of this machine and its --format slurm srun lines, pinctl spelled as this interpreter."""
    plan = tmp_path / f"plan{ranks}.json"
    subprocess.run([PYTHON, "-m", "pinctl", "plan", "--ranks", str(ranks), "--json", "-o", str(plan)], check=True)
    text = subprocess.run([PYTHON, "-m", "pinctl", "plan", "--ranks", str(ranks), "--format", "slurm", "--", "sh",
                           "-c", REPORT], check=True, capture_output=True, text=True).stdout  # fmt: skip
    lines = [re.sub(r"\bpinctl launch --plan plan\.json", f"{PINCTL} launch --plan {plan}", line)
             for line in text.splitlines() if line.startswith("srun ")]  # fmt: skip
    return str(plan), lines


@pytest.mark.parametrize("ranks", [2, 1])
def test_plan_format_slurm_works_as_printed(slurm: Slurm, tmp_path: Path, ranks: int) -> None:
    """Both srun lines, standalone and inside sbatch: each task on its plan rank's CPUs; the launch
    form also sets the rank's environment."""
    plan_path, lines = _slurm_lines(tmp_path, ranks)
    plan = json.loads(Path(plan_path).read_text())
    want = {str(r["local_rank"]): r["cpulist"] for r in plan["ranks"]}
    omp = {str(r["local_rank"]): r["env"]["OMP_NUM_THREADS"] for r in plan["ranks"]}
    for line in lines:
        res = slurm.run(*shlex.split(line))
        assert res.returncode == 0, f"{line}\n{res.stderr}"
        assert {r["localid"]: r["cpus"] for r in reports(res.stdout)} == want, line
    launched = reports(slurm.run(*shlex.split(lines[1])).stdout)
    assert {r["rank"]: r["omp"] for r in launched} == omp
    out = sbatch(slurm, tmp_path, "\n".join(lines) + "\n", "--exclusive")
    got = reports(out)
    assert len(got) == 2 * ranks and all(r["cpus"] == want[r["localid"]] for r in got), out


def test_nproc_per_node_under_srun(slurm: Slurm, tmp_path: Path) -> None:
    """One task per node starts the node's ranks, with the step's world; two tasks would start them twice."""
    plan = write_plan(tmp_path / "plan.json", plan_dict([rank(0, [0]), rank(1, [1])]))
    report = REPORT.replace('echo "report ', 'echo "report world=$WORLD_SIZE grank=$RANK master=$MASTER_ADDR ')
    ok = slurm.run("srun", "-N", "1", "-n", "1", "-c", "2", *shlex.split(PINCTL), "launch", "--plan", plan,
                   "--nproc-per-node", "all", "--", "sh", "-c", report)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    got = {r["rank"]: r for r in reports(ok.stdout)}
    assert {k: r["cpus"] for k, r in got.items()} == {"0": "0", "1": "1"}
    assert {r["world"] for r in got.values()} == {"2"} and {r["master"] for r in got.values()} == {"127.0.0.1"}
    twice = slurm.run("srun", "-n", "2", *shlex.split(PINCTL), "launch", "--plan", plan, "--nproc-per-node",
                      "all", "--", "true")  # fmt: skip
    assert twice.returncode != 0 and "run one task per node (srun --ntasks-per-node=1)" in twice.stderr


@pytest.fixture(scope="module")
def torchrun_exe() -> str:
    exe, why = torchrun()
    if exe is None:
        pytest.skip(why)
    return exe


def test_torchrun_no_python_wraps_pinctl_launch(torchrun_exe: str, tmp_path: Path) -> None:
    """The documented form: torchrun starts pinctl launch for each worker, which binds it and execs the command."""
    plan = write_plan(tmp_path / "plan.json", plan_dict([rank(0, [1]), rank(1, [0])]))
    pinctl_exe = str(Path(PYTHON).with_name("pinctl"))
    res = subprocess.run([torchrun_exe, "--standalone", "--nproc-per-node", "2", "--no-python", pinctl_exe, "launch",
                          "--plan", plan, "-v", "--", "sh", "-c", REPORT], capture_output=True, text=True,
                         timeout=120, check=False)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert {r["rank"]: r["cpus"] for r in reports(res.stdout)} == {"0": "1", "1": "0"}
    assert res.stderr.count("(from LOCAL_RANK)") == 2


def test_torchrun_inside_srun_is_the_inner_launcher(torchrun_exe: str, slurm: Slurm, tmp_path: Path) -> None:
    """srun's task has SLURM_LOCALID=0 for both of torchrun's workers: torchrun's LOCAL_RANK wins."""
    plan = write_plan(tmp_path / "plan.json", plan_dict([rank(0, [0]), rank(1, [1])]))
    pinctl_exe = str(Path(PYTHON).with_name("pinctl"))
    res = slurm.run("srun", "-n", "1", "-c", "2", torchrun_exe, "--standalone", "--nproc-per-node", "2",
                    "--no-python", pinctl_exe, "launch", "--plan", plan, "--", "sh", "-c", REPORT,
                    timeout=180)  # fmt: skip
    assert res.returncode == 0, res.stderr
    got = reports(res.stdout)
    assert {r["rank"]: r["cpus"] for r in got} == {"0": "0", "1": "1"} and {r["localid"] for r in got} == {"0"}


@pytest.mark.parametrize(("launcher", "variable"), [("mpirun", "OMPI_COMM_WORLD_LOCAL_RANK"),
                                                    ("mpiexec", "MPI_LOCALRANKID")])  # fmt: skip
def test_mpi_launchers_alone(slurm: Slurm, tmp_path: Path, launcher: str, variable: str) -> None:
    """Outside Slurm too (the fixture provides the packages): each MPI rank on its plan rank's CPUs."""
    del slurm
    plan = swapped_plan(tmp_path)
    argv = ([which("mpirun.openmpi") or "mpirun.openmpi", "--allow-run-as-root", "-np", "2"]
            if launcher == "mpirun" else [which("mpiexec.hydra") or "mpiexec.hydra", "-n", "2"])  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "LOCAL_RANK"))}
    res = subprocess.run([*argv, PYTHON, "-m", "pinctl", "launch", "--plan", plan, "-v", "--", "sh", "-c", REPORT],
                         capture_output=True, text=True, timeout=120, env=env, check=False)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert {r["rank"]: r["cpus"] for r in reports(res.stdout)} == {"0": "1", "1": "0"}
    assert res.stderr.count(f"(from {variable})") == 2


def test_mpirun_with_a_plan_made_in_each_rank(slurm: Slurm) -> None:
    """Issue 18, item 1: `mpirun -np 2 pinctl launch --ranks 2 -- CMD`. mpirun binds each rank to one
    core before pinctl runs; that binding is no limit (the cgroup is), so each rank plans the node as
    a plan file would and gets its own CPU, instead of "2 ranks but only 1 usable core"."""
    del slurm  # the fixture provides the packages
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "LOCAL_RANK"))}
    res = subprocess.run([which("mpirun.openmpi") or "mpirun.openmpi", "--allow-run-as-root", "-np", "2",
                          "--bind-to", "core", PYTHON, "-m", "pinctl", "launch", "--ranks", "2", "-v", "--", "sh",
                          "-c", REPORT], capture_output=True, text=True, timeout=120, env=env, check=False)  # fmt: skip
    assert res.returncode == 0, res.stderr
    got = reports(res.stdout)
    assert sorted(r["cpus"] for r in got) == ["0", "1"] and {r["omp"] for r in got} == {"1"}
    assert res.stderr.count("(from OMPI_COMM_WORLD_LOCAL_RANK)") == 2


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for its (re-)parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def test_a_stopped_cluster_leaves_no_process_even_one_ignoring_sigterm(slurm: Slurm, tmp_path: Path) -> None:
    """A second private cluster beside the module's (its own node name, ports and folders: no collision),
    with a job whose task ignores SIGTERM; stop() leaves nothing of it running."""
    del slurm
    other = Slurm(tmp_path / "other")
    (tmp_path / "other").mkdir()
    try:
        other.start()
        script = tmp_path / "stubborn.sh"
        script.write_text("#!/bin/sh\ntrap '' TERM\nsleep 300\n")
        script.chmod(0o755)
        res = other.run("sbatch", "-o", str(tmp_path / "out"), str(script))
        assert res.returncode == 0, res.stderr
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
            "sleep" in Path(f"/proc/{pid}/comm").read_text() for pid in other.leftovers()
            if Path(f"/proc/{pid}/comm").exists()
        ):  # fmt: skip
            time.sleep(0.2)
        before = other.leftovers()
        assert before, "the job never started"
    finally:
        other.stop()
    assert other.leftovers() == []
    deadline = time.monotonic() + 10
    while [pid for pid in before if _running(pid)] and time.monotonic() < deadline:
        time.sleep(0.1)  # SIGKILL is delivered at once, but a process ends a moment later
    assert not [pid for pid in before if _running(pid)]
    assert not list(Path("/sys/fs/cgroup").glob(f"*/slurm_{other.node}"))


def test_slurm_cpuspeclist_keeps_jobs_off_the_housekeeping_cores(slurm: Slurm) -> None:
    """Issue 13: the node line pinctl writes for a plan with housekeeping CPUs, put into this
    cluster's slurm.conf: scontrol shows the specialized core and a job never gets it. Last in
    this module: the cluster's configuration is restored after, but its daemons were reconfigured."""
    from pinctl import api
    from pinctl.render.export import plan_to_slurm

    plan = api.make_plan(api.discover(nvml=False), ranks=1, reserve="1")
    line = next(w for w in plan_to_slurm(plan).splitlines() if w.startswith("NodeName="))
    spec = line.split()[1]
    assert spec == "CpuSpecList=1"  # one thread per core here: Slurm's id of core 1 is 1
    original = slurm.conf.read_text()
    try:
        slurm.conf.write_text(re.sub(r"^(NodeName=\S+ .*?) NodeAddr=", rf"\1 {spec} NodeAddr=", original,
                                     flags=re.MULTILINE))  # fmt: skip
        assert slurm.run("scontrol", "reconfigure").returncode == 0
        shown = ""
        for _ in range(300):  # slurmd reports the specialized cores back a moment after the reconfigure
            shown = slurm.run("scontrol", "show", "node", slurm.node).stdout
            if "CPUSpecList=" in shown:
                break
            time.sleep(0.1)
        assert "CPUSpecList=1 " in shown and "CoreSpecCount=1" in shown
        res = slurm.run("srun", "-n", "1", "sh", "-c", REPORT, timeout=120)
        assert res.returncode == 0, res.stderr
        assert [r["cpus"] for r in reports(res.stdout)] == ["0"]
    finally:
        slurm.conf.write_text(original)
        slurm.run("scontrol", "reconfigure")
