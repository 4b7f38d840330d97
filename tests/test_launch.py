"""``pinctl launch`` run for real: the binding shows in /proc of the exec'd command."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from act_helpers import ALL_CPUS, PYTHON, TWO_CPUS, pinctl, plan_dict, rank, wait_for, write_plan
from real_launchers import ensure_packages

from pinctl.cli.argtable import LAUNCH, parse
from pinctl.errors import UsageError
from pinctl.job.localrank import detect_local_rank, rank_from_env
from pinctl.job.world import World, first_host, group_world
from pinctl.kernel.proc import parse_numa_maps, parse_status

needs_two = pytest.mark.skipif(not TWO_CPUS, reason="needs two CPUs")
LAST = ALL_CPUS[-1]


def _status(text: str) -> dict[str, str]:
    return parse_status(text)


def _policies(numa_maps: str) -> set[str]:
    return {str(p) for _, p in parse_numa_maps(numa_maps)}


@pytest.fixture
def plan_path(tmp_path: Path) -> str:
    ranks = [rank(0, [ALL_CPUS[0]]), rank(1, [LAST], mem_policy="interleave")]
    return write_plan(tmp_path / "plan.json", plan_dict(ranks))


# --- numactl-style, no plan --------------------------------------------------------------------


def test_physcpubind_shows_in_the_commands_status() -> None:
    res = pinctl("launch", "-C", str(LAST), "--", "cat", "/proc/self/status")
    assert res.returncode == 0, res.stderr
    assert _status(res.stdout)["Cpus_allowed_list"] == str(LAST)


def test_membind_shows_in_numa_maps() -> None:
    res = pinctl("launch", "-C", str(LAST), "--membind", "0", "--", "cat", "/proc/self/numa_maps")
    assert res.returncode == 0, res.stderr
    assert _policies(res.stdout) == {"bind:0"}


@pytest.mark.parametrize(
    ("options", "policy"),
    [(["--preferred", "0"], "prefer:0"), (["-i", "all"], "interleave:0"), (["-l"], "local"), (["-m", "0"], "bind:0")],
)
def test_memory_policy_options(options: list[str], policy: str) -> None:
    res = pinctl("launch", *options, "--", "cat", "/proc/self/numa_maps")
    assert res.returncode == 0, res.stderr
    assert _policies(res.stdout) == {policy}


def test_cpunodebind_uses_the_nodes_cpus() -> None:
    node0 = Path("/sys/devices/system/node/node0/cpulist").read_text().strip()
    res = pinctl("launch", "-N", "0", "--", "cat", "/proc/self/status")
    assert res.returncode == 0, res.stderr
    assert _status(res.stdout)["Cpus_allowed_list"] == node0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["-C", "4000"], "not in the allowed cpuset"),
        (["-C", "0-x"], "malformed"),
        (["-m", "63"], "not in the allowed mems"),
        (["-N", "63"], "not in the online nodes"),
        (["-m", "0", "-i", "0"], "one memory policy"),
        (["-C", "0", "-N", "0"], "not both"),
    ],
)
def test_bad_override_is_a_one_line_usage_error(options: list[str], message: str) -> None:
    res = pinctl("launch", *options, "--", "true")
    assert res.returncode == UsageError.exit_code
    assert message in res.stderr
    assert "Traceback" not in res.stderr


def test_numactl_line_from_dry_run_binds_the_same(tmp_path: Path) -> None:
    why = ensure_packages()  # the real numactl, from Debian's package, as the launcher tests' tools
    if why is not None:
        pytest.skip(why)
    marker = tmp_path / "ran"
    dry = pinctl("launch", "-C", str(LAST), "-m", "0", "--dry-run", "--", "touch", str(marker))
    assert dry.returncode == 0 and not marker.exists()
    line = next(x for x in dry.stdout.splitlines() if x.startswith("numactl: ")).removeprefix("numactl: ")
    argv = shlex.split(line)
    argv[-2:] = ["cat", "/proc/self/status"]
    via_numactl = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    via_pinctl = pinctl("launch", "-C", str(LAST), "-m", "0", "--", "cat", "/proc/self/status").stdout
    assert _status(via_numactl)["Cpus_allowed_list"] == _status(via_pinctl)["Cpus_allowed_list"] == str(LAST)


# --- the process: same PID, exit codes, signals --------------------------------------------------


def test_exec_keeps_the_pid(plan_path: str) -> None:
    proc = subprocess.Popen(
        [PYTHON, "-m", "pinctl", "launch", "--plan", plan_path, "--local-rank", "0", "--", "sh", "-c", "echo $$"],
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = proc.communicate(timeout=60)
    assert int(out) == proc.pid


def test_exit_status_passes_through(plan_path: str) -> None:
    assert pinctl("launch", "--plan", plan_path, "--local-rank", "0", "--", "sh", "-c", "exit 7").returncode == 7
    assert pinctl("launch", "-l", "--", "sh", "-c", "exit 9").returncode == 9


def test_signal_death_is_the_commands_own(plan_path: str) -> None:
    res = pinctl("launch", "--plan", plan_path, "--local-rank", "0", "--", "sh", "-c", "kill -TERM $$")
    assert res.returncode == -signal.SIGTERM


def test_missing_command_is_127() -> None:
    res = pinctl("launch", "-l", "--", "no-such-command-pinctl")
    assert res.returncode == 127
    assert "no-such-command-pinctl" in res.stderr


# --- plan files: the fast path ---------------------------------------------------------------------


def test_rank_from_env_picks_cpus_policy_and_environment(plan_path: str) -> None:
    script = "grep Cpus_allowed_list /proc/self/status; head -1 /proc/self/numa_maps; echo $OMP_NUM_THREADS"
    res = pinctl("launch", "--plan", plan_path, "-v", "--", "sh", "-c", script, env={"SLURM_LOCALID": "1"})
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[-1] == str(LAST)
    assert "interleave:0" in lines[1]
    assert lines[2] == "1"
    assert "local rank 1 (from SLURM_LOCALID)" in res.stderr


def test_local_rank_option_beats_env(plan_path: str) -> None:
    res = pinctl(
        "launch",
        "--plan",
        plan_path,
        "--local-rank",
        "0",
        "--",
        "grep",
        "Cpus_allowed_list",
        "/proc/self/status",
        env={"LOCAL_RANK": "1"},
    )
    assert res.stdout.split()[-1] == str(ALL_CPUS[0])


def test_missing_or_out_of_range_rank_is_a_clear_error(plan_path: str) -> None:
    res = pinctl("launch", "--plan", plan_path, "--", "true")
    assert res.returncode == 2
    assert "LOCAL_RANK" in res.stderr and "SLURM_LOCALID" in res.stderr and "FLUX_TASK_LOCAL_ID" in res.stderr
    res = pinctl("launch", "--plan", plan_path, "--", "true", env={"LOCAL_RANK": "5"})
    assert res.returncode == 2
    assert "local rank 5 (from LOCAL_RANK) is out of range" in res.stderr


def test_dry_run_prints_the_plan_and_runs_nothing(plan_path: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    res = pinctl("launch", "--plan", plan_path, "--local-rank", "1", "--dry-run", "--", "touch", str(marker))
    assert res.returncode == 0
    assert not marker.exists()
    assert f"cpus: {LAST}" in res.stdout
    assert "memory policy: interleave 0" in res.stdout
    assert f"numactl --physcpubind={LAST} --interleave=0 -- touch" in res.stdout


def test_fast_path_imports_nothing_heavy(plan_path: str) -> None:
    res = subprocess.run(
        [
            PYTHON,
            "-X",
            "importtime",
            "-m",
            "pinctl",
            "launch",
            "--plan",
            plan_path,
            "--local-rank",
            "0",
            "--dry-run",
            "--",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    modules = {line.split("|")[-1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
    assert "pinctl.cli.fast" in modules and "pinctl.planfile.load" in modules
    heavy = {m.split(".")[0] for m in modules} & {"click", "rich", "pyhwloc", "pynvml", "psutil", "jsonschema"}
    assert heavy == set()


def test_launch_table_parser_forms() -> None:
    parsed = parse(LAUNCH, ["--plan", "p", "--local-rank=1", "-v", "--", "a", "b"], interspersed=False)
    assert parsed is not None and parsed.rest == ("a", "b") and parsed.given == {"plan_file", "local_rank", "verbose"}
    assert parsed.values["plan_file"] == "p" and parsed.values["local_rank"] == 1 and parsed.values["verbose"]
    parsed = parse(LAUNCH, ["--plan=p", "-C", "1", "a", "--x"], interspersed=False)
    assert parsed is not None and parsed.values["physcpubind"] == "1" and parsed.rest == ("a", "--x")
    assert parse(LAUNCH, ["--plan", "p", "-lv", "--", "a"], interspersed=False) is None  # click reads -lv
    assert parse(LAUNCH, ["--local-rank", "x", "--plan", "p", "--", "a"], interspersed=False) is None  # click says why
    assert parse(LAUNCH, ["--plan", "p", "--help"], interspersed=False) is None


@pytest.mark.parametrize(
    ("env", "rank"),
    [
        # torchrun inside srun: torchrun is inner
        ({"SLURM_LOCALID": "0", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}, (1, "LOCAL_RANK")),
        # mpirun / mpiexec inside sbatch: the batch shell's SLURM_LOCALID=0 reaches every rank
        ({"SLURM_LOCALID": "0", "OMPI_COMM_WORLD_LOCAL_RANK": "1"}, (1, "OMPI_COMM_WORLD_LOCAL_RANK")),
        ({"SLURM_LOCALID": "0", "MPI_LOCALRANKID": "1", "PMI_RANK": "1"}, (1, "MPI_LOCALRANKID")),
        ({"FLUX_TASK_LOCAL_ID": "0", "PALS_LOCAL_RANKID": "1"}, (1, "PALS_LOCAL_RANKID")),
        ({"SLURM_LOCALID": "1"}, (1, "SLURM_LOCALID")),
        ({"MV2_COMM_WORLD_LOCAL_RANK": "1", "MPI_LOCALRANKID": "1"}, (1, "MPI_LOCALRANKID")),  # agree: fine
        ({"LOCAL_RANK": "1", "SLURM_LOCALID": "1"}, (1, "LOCAL_RANK")),  # a bare LOCAL_RANK that agrees
    ],
)
def test_the_innermost_launcher_gives_the_rank(env: dict[str, str], rank: tuple[int, str]) -> None:
    assert detect_local_rank(env, None, 2) == rank


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OMPI_COMM_WORLD_LOCAL_RANK": "1", "MPI_LOCALRANKID": "0"}, "OMPI_COMM_WORLD_LOCAL_RANK=1 .* disagree"),
        ({"LOCAL_RANK": "0", "OMPI_COMM_WORLD_LOCAL_RANK": "1"}, "unset the stale LOCAL_RANK"),
        ({"LOCAL_RANK": "0", "SLURM_LOCALID": "1"}, "no torchrun variable"),
        ({"PALS_LOCAL_RANKID": "one"}, "not a local rank"),
        ({}, "cannot tell the local rank"),
    ],
)
def test_launchers_that_disagree_are_refused_not_guessed(env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        detect_local_rank(env, None, 2)
    assert rank_from_env(env) is None


def test_an_explicit_local_rank_wins() -> None:
    assert detect_local_rank({"LOCAL_RANK": "0", "OMPI_COMM_WORLD_LOCAL_RANK": "1"}, 1, 2) == (1, "--local-rank")


# --- one bound child per rank ---------------------------------------------------------------------


def test_nproc_per_node_sets_rank_variables_and_binds_each(plan_path: str, tmp_path: Path) -> None:
    script = (
        f'out={tmp_path}/r$LOCAL_RANK; echo "$LOCAL_RANK $RANK $LOCAL_WORLD_SIZE $WORLD_SIZE $GROUP_RANK '
        '$GROUP_WORLD_SIZE $MASTER_ADDR $MASTER_PORT" > $out; grep Cpus_allowed_list /proc/self/status >> $out'
    )
    res = pinctl("launch", "--plan", plan_path, "--nproc-per-node", "all", "--nnodes", "2", "--node-rank", "1",
                 "--master-addr", "node0", "--", "sh", "-c", script)  # fmt: skip
    assert res.returncode == 0, res.stderr
    r0 = (tmp_path / "r0").read_text().splitlines()
    r1 = (tmp_path / "r1").read_text().splitlines()
    # torch.distributed's env:// init has what it needs: ranks, sizes, and where to meet
    assert r0[0] == "0 2 2 4 1 2 node0 29500" and r1[0] == "1 3 2 4 1 2 node0 29500"
    assert r0[1].split()[-1] == str(ALL_CPUS[0])
    assert r1[1].split()[-1] == str(LAST)


def test_nproc_per_node_failing_child_stops_the_rest() -> None:
    start = time.monotonic()
    res = pinctl(
        "launch",
        "-l",
        "--nproc-per-node",
        "3",
        "--grace",
        "5",
        "--",
        "sh",
        "-c",
        '[ "$LOCAL_RANK" = 1 ] && exit 5; sleep 60',
    )
    assert res.returncode == 5
    assert time.monotonic() - start < 30


@needs_two
def test_nproc_per_node_forwards_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "pinctl",
            "launch",
            "-l",
            "--nproc-per-node",
            "2",
            "--",
            "sh",
            "-c",
            f"echo $$ > {tmp_path}/pid$LOCAL_RANK; exec sleep 60",
        ],
    )
    try:
        assert wait_for(
            lambda: all((tmp_path / f"pid{i}").exists() and (tmp_path / f"pid{i}").read_text() for i in range(2))
        )
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
        for i in range(2):
            assert not os.path.exists(f"/proc/{int((tmp_path / f'pid{i}').read_text())}/status")
    finally:
        proc.kill()


def _pids(folder: Path, name: str, count: int) -> list[int]:
    assert wait_for(lambda: all((folder / f"{name}{i}").exists() and (folder / f"{name}{i}").read_text().strip()
                                for i in range(count)))  # fmt: skip
    return [int((folder / f"{name}{i}").read_text()) for i in range(count)]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def test_grace_then_sigkill_for_ranks_that_ignore_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen([PYTHON, "-m", "pinctl", "launch", "-l", "--nproc-per-node", "2", "--grace", "1", "--",
                             "sh", "-c", f"trap '' TERM; echo $$ > {tmp_path}/pid$LOCAL_RANK; "
                             "while :; do sleep 1; done"])  # fmt: skip
    try:
        ranks = _pids(tmp_path, "pid", 2)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
        assert time.monotonic() - start < 10
        assert all(_gone(pid) for pid in ranks)
    finally:
        proc.kill()


def test_a_signalled_launcher_says_so_even_when_its_ranks_exit_0(tmp_path: Path) -> None:
    """A preempted job must not look finished: ranks that exit 0 on SIGTERM still give 128+15."""
    proc = subprocess.Popen([PYTHON, "-m", "pinctl", "launch", "-l", "--nproc-per-node", "2", "--", "sh", "-c",
                             f"trap 'exit 0' TERM; echo $$ > {tmp_path}/pid$LOCAL_RANK; "
                             "while :; do sleep 0.1; done"])  # fmt: skip
    try:
        _pids(tmp_path, "pid", 2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        proc.kill()


def test_no_rank_or_its_children_outlive_a_killed_launcher(tmp_path: Path) -> None:
    """SIGKILL (or the OOM killer) gives the launcher no chance to forward anything."""
    proc = subprocess.Popen([PYTHON, "-m", "pinctl", "launch", "-l", "--nproc-per-node", "2", "--", "sh", "-c",
                             f"sleep 60 & echo $! > {tmp_path}/child$LOCAL_RANK; echo $$ > {tmp_path}/pid$LOCAL_RANK; "
                             "wait"])  # fmt: skip
    try:
        everyone = _pids(tmp_path, "pid", 2) + _pids(tmp_path, "child", 2)
        proc.kill()
        proc.wait()
        assert wait_for(lambda: all(_gone(pid) for pid in everyone)), [p for p in everyone if not _gone(p)]
    finally:
        proc.kill()


# --- a plan computed now (the planner's path) -------------------------------------------------------


def _planner() -> tuple[object, object]:
    plan_mod = pytest.importorskip("pinctl.plan.make")
    export = pytest.importorskip("pinctl.render.export")
    from pinctl.discovery import discover

    plan = plan_mod.make_plan(discover(), plan_mod.PlanRequest(ranks=len(ALL_CPUS)))
    return plan, export


def test_computed_plan_binds_as_the_planner_says_and_leaks_no_hwloc_env() -> None:
    plan, _ = _planner()
    want = plan.ranks[-1]
    res = pinctl(
        "launch",
        "--ranks",
        str(len(ALL_CPUS)),
        "--local-rank",
        str(want.local_rank),
        "--",
        "sh",
        "-c",
        "grep Cpus_allowed_list /proc/self/status; env",
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[-1] == want.cpulist
    if "HWLOC_PLUGINS_PATH" not in os.environ:
        assert not any(line.startswith("HWLOC_PLUGINS_PATH=") for line in lines)
    assert f"LOCAL_RANK={want.local_rank}" in lines


def test_planner_json_launches_on_the_fast_path(tmp_path: Path) -> None:
    plan, export = _planner()
    path = tmp_path / "plan.json"
    path.write_text(export.plan_to_json(plan))
    res = pinctl(
        "launch", "--plan", str(path), "--", "grep", "Cpus_allowed_list", "/proc/self/status", env={"LOCAL_RANK": "0"}
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[-1] == plan.ranks[0].cpulist


def test_debug_after_the_command_belongs_to_the_command() -> None:
    """`--debug` is pinctl's only before the command name; after it, it is the launched command's word."""
    res = pinctl("launch", "--ranks", "2", "--local-rank", "9", "--", "echo", "--debug")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().count("\n") == 0 and "out of range" in res.stderr


def test_a_plan_computed_from_another_machine_is_refused_here() -> None:
    """launch/pin/check with --topology plan for that machine; acting on this one needs --force."""
    dgx = str(Path(__file__).resolve().parents[1] / "fixtures" / "hwloc" / "dgx-h100.xml")
    res = pinctl("launch", "--topology", dgx, "--local-rank", "0", "--", "true")
    assert res.returncode == 4 and "plan does not fit this node" in res.stderr and "dgx-h100" in res.stderr
    res = pinctl("pin", str(os.getpid()), "--rank", "0", "--topology", dgx)
    assert res.returncode == 4


@pytest.mark.skipif(not TWO_CPUS, reason="needs two CPUs")
def test_an_inherited_affinity_is_no_limit(plan_path: str) -> None:
    """A launcher's own binding (srun --cpu-bind, mpirun's bind-to-core, taskset) is replaced, not obeyed:
    only the cgroup cpuset limits a rank."""
    taskset = shutil.which("taskset")
    if taskset is None:
        pytest.skip("taskset is not installed")
    res = subprocess.run([taskset, "-c", str(ALL_CPUS[1]), PYTHON, "-m", "pinctl", "launch", "--plan", plan_path,
                          "--local-rank", "0", "--", "grep", "Cpus_allowed_list", "/proc/self/status"],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[-1] == str(ALL_CPUS[0])


@pytest.mark.parametrize(
    ("nodelist", "first"),
    [("vm", "vm"), ("gpu[003-010,12]-ib,login1", "gpu003-ib"), ("a1,b[2-3]", "a1"), ("n[7,9]", "n7")],
)
def test_first_host_of_a_slurm_host_list(nodelist: str, first: str) -> None:
    assert first_host(nodelist) == first


def test_the_world_under_an_srun_step() -> None:
    step = {"SLURM_STEP_ID": "0", "SLURM_STEP_NUM_NODES": "4", "SLURM_STEP_NUM_TASKS": "4", "SLURM_NODEID": "2",
            "SLURM_STEP_NODELIST": "gpu[01-04]", "SLURM_LOCALID": "0"}  # fmt: skip
    world = group_world(step)
    assert (world.nnodes, world.node_rank, world.master_addr, world.master_port) == (4, 2, "gpu01", 29500)
    assert world.rank_env(1, 8)["RANK"] == "17" and world.rank_env(1, 8)["WORLD_SIZE"] == "32"
    assert group_world({**step, "MASTER_ADDR": "head", "MASTER_PORT": "1234"}).master_addr == "head"
    # options win, as torchrun's do
    assert group_world(step, nnodes=2, node_rank=0, master_port=4000).master_port == 4000
    # a batch script is no step: one node on loopback
    assert group_world({"SLURM_JOB_ID": "7", "SLURM_NNODES": "4"}) == World(1, 0, "127.0.0.1", 29500)


@pytest.mark.parametrize(
    ("option", "env", "said"),
    [
        ("a b", {}, "--master-addr 'a b' is not a host name or address"),
        ("", {}, "--master-addr '' is not a host name or address"),
        (None, {"MASTER_ADDR": "x\ny"}, "MASTER_ADDR 'x\\ny' is not a host name or address"),
    ],
)
def test_a_master_addr_that_names_no_host_is_refused(option: str | None, env: dict[str, str], said: str) -> None:
    """It was passed to every rank, whose torchrun-style init then failed (or hung) much later."""
    with pytest.raises(UsageError) as caught:
        group_world(env, master_addr=option)
    assert str(caught.value) == said
    for host in ("node-1", "10.0.0.1", "[fe80::1]", "gpu003-ib.cluster"):
        assert group_world({}, master_addr=host).master_addr == host


@pytest.mark.parametrize(
    ("env", "options", "message"),
    [
        ({"SLURM_STEP_ID": "0", "SLURM_STEP_NUM_NODES": "1", "SLURM_STEP_NUM_TASKS": "2"}, {}, "one task per node"),
        ({}, {"nnodes": 2}, "needs --master-addr"),
        ({}, {"nnodes": 2, "node_rank": 2, "master_addr": "h"}, "out of range"),
    ],
)
def test_worlds_that_cannot_work_are_refused(env: dict[str, str], options: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        group_world(env, **options)
