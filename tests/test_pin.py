"""``pinctl pin`` on real processes: every thread, partial failures named, EPERM, vanished PIDs."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from act_helpers import (
    ALL_CPUS,
    PYTHON,
    SPAWNER_SRC,
    THREADS_SRC,
    TWO_CPUS,
    pinctl,
    plan_dict,
    python_proc,
    rank,
    run_as_nobody,
    task_cpulists,
    write_plan,
)

from pinctl.cli.argtable import PIN, parse
from pinctl.cpuset import format_list
from pinctl.errors import ProcessError, UsageError

needs_two = pytest.mark.skipif(not TWO_CPUS, reason="needs two CPUs")
ALL = format_list(ALL_CPUS)
LAST = ALL_CPUS[-1]


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@needs_two
def test_repin_500_threads_and_back() -> None:
    with python_proc(THREADS_SRC, "500") as proc:
        res = pinctl("pin", str(proc.pid), "--cpus", str(LAST))
        assert res.returncode == 0, res.stderr
        assert "501 threads pinned" in res.stdout
        assert set(task_cpulists(proc.pid).values()) == {str(LAST)}
        res = pinctl("pin", str(proc.pid), "-c", ALL)
        assert res.returncode == 0, res.stderr
        assert set(task_cpulists(proc.pid).values()) == {ALL}


@needs_two
def test_threads_spawning_during_pin_end_up_pinned() -> None:
    with python_proc(SPAWNER_SRC) as proc:
        time.sleep(0.5)
        res = pinctl("pin", str(proc.pid), "--cpus", str(LAST))
        assert res.returncode == 0, res.stderr
        time.sleep(0.3)
        assert set(task_cpulists(proc.pid).values()) == {str(LAST)}


def test_vanished_pid_is_named_and_the_others_still_pinned() -> None:
    gone = _dead_pid()
    with subprocess.Popen(["sleep", "30"]) as live:
        try:
            res = pinctl("pin", str(live.pid), str(gone), "--cpus", str(ALL_CPUS[0]))
            assert res.returncode == ProcessError.exit_code
            assert f"process {gone} does not exist" in res.stderr
            assert set(task_cpulists(live.pid).values()) == {str(ALL_CPUS[0])}
        finally:
            live.kill()


def test_eperm_is_named_when_unprivileged() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to drop privileges")
    import pinctl.cli.fast
    import pinctl.cli.main
    import pinctl.kernel.proc  # loaded before the child loses access to the interpreter's files

    with subprocess.Popen(["sleep", "30"]) as target:
        try:
            before = task_cpulists(target.pid)
            code, err = run_as_nobody(lambda: pinctl.cli.main.main(["pin", str(target.pid), "--cpus", str(LAST)]))
            assert code == ProcessError.exit_code, err
            assert f"process {target.pid}" in err and "EPERM" in err and "not pinned" in err
            assert task_cpulists(target.pid) == before
        finally:
            target.kill()


def test_pin_by_plan_rank(tmp_path: Path) -> None:
    plan = write_plan(tmp_path / "p.json", plan_dict([rank(0, [ALL_CPUS[0]]), rank(1, [LAST])]))
    with subprocess.Popen(["sleep", "30"]) as target:
        try:
            res = pinctl("pin", str(target.pid), "--rank", "1", "--plan", plan)
            assert res.returncode == 0, res.stderr
            assert set(task_cpulists(target.pid).values()) == {str(LAST)}
            res = pinctl("pin", str(target.pid), "--gpu", "0", "--plan", plan)
            assert res.returncode == UsageError.exit_code
            assert "no rank on GPU 0" in res.stderr
        finally:
            target.kill()


def test_migrate_reports_pages_not_moved() -> None:
    with subprocess.Popen(["sleep", "30"]) as target:
        try:
            res = pinctl("pin", str(target.pid), "--cpus", ALL, "--migrate", "--mems", "0")
            assert res.returncode == 0, res.stderr
            assert "pages migrated to node 0;" in res.stdout and "could not be moved" in res.stdout
        finally:
            target.kill()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cpus", "0", "--mems", "0"], "only names the nodes for --migrate"),
        (["--cpus", "4000"], "not online"),
        (["--cpus", "0", "--rank", "0"], "exactly one of"),
        ([], "exactly one of"),
        # a plan beside --cpus was silently ignored
        (["--cpus", "0", "--plan", "p.json"], "--cpus names the CPUs itself: drop --plan"),
        (["--cpus", "0", "--ranks", "2"], "drop --ranks"),
    ],
)
def test_bad_pin_options_are_usage_errors(args: list[str], message: str) -> None:
    res = pinctl("pin", str(os.getpid()), *args)
    assert res.returncode == UsageError.exit_code
    assert message in res.stderr


def test_auto_without_nvml_says_so() -> None:
    from pinctl.discovery.nvml import gpu_processes

    if gpu_processes()[0] is not None:
        pytest.skip("NVML is available here")
    res = pinctl("pin", "--auto")
    assert res.returncode != 0
    assert "NVML" in res.stderr


def test_fast_pin_form_skips_click() -> None:
    parsed = parse(PIN, ["12", "13", "--cpus", "0-1"], interspersed=True)
    assert parsed is not None and parsed.rest == ("12", "13") and parsed.values["cpus_text"] == "0-1"
    parsed = parse(PIN, ["12", "-c", "1", "--migrate", "--mems", "0"], interspersed=True)
    assert parsed is not None and parsed.given == {"cpus_text", "migrate", "mems"} and parsed.values["mems"] == "0"
    assert parse(PIN, ["12", "-c=1"], interspersed=True) is None  # click reads "=1" as the value, and refuses it
    res = subprocess.run(
        [PYTHON, "-X", "importtime", "-m", "pinctl", "pin", str(os.getpid()), "--cpus", ALL],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    modules = {line.split("|")[-1].strip().split(".")[0] for line in res.stderr.splitlines() if "|" in line}
    assert modules & {"click", "rich", "pyhwloc", "pynvml", "psutil"} == set()


def test_init_and_kernel_threads_are_refused_without_force(tmp_path: Path) -> None:
    from pinctl.act.pin import system_process
    from pinctl.kernel.files import KernelFiles

    (tmp_path / "proc" / "2").mkdir(parents=True)
    (tmp_path / "proc" / "2" / "stat").write_text("2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0\n")
    (tmp_path / "proc" / "77").mkdir()
    (tmp_path / "proc" / "77" / "stat").write_text("77 (my (odd) app) S 1 77 77 0 -1 4194560 0 0 0 0\n")
    fs = KernelFiles(str(tmp_path))
    assert system_process(1, fs) == "is init"
    assert system_process(2, fs) == "is a kernel thread"
    assert system_process(77, fs) is None  # a user process, whatever its name holds
    before = os.sched_getaffinity(1)
    res = pinctl("pin", "1", "--cpus", str(LAST))
    assert res.returncode != 0 and "process 1 is init" in res.stderr and "--force" in res.stderr
    assert os.sched_getaffinity(1) == before
