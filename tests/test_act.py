"""The OS side effects, done for real on this machine: affinity, mempolicy, re-pinning, exec, child groups."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from act_helpers import (
    ALL_CPUS,
    PYTHON,
    SPAWNER_SRC,
    THREADS_SRC,
    TWO_CPUS,
    python_proc,
    run_as_nobody,
    task_cpulists,
)

from pinctl.act import mempolicy
from pinctl.act.pin import pin_threads
from pinctl.act.supervise import Child, run_children
from pinctl.cpuset import format_list
from pinctl.errors import CommandError, ProcessError, UsageError
from pinctl.kernel.proc import parse_numa_maps
from pinctl.plan.binding import Binding

needs_two = pytest.mark.skipif(not TWO_CPUS, reason="needs two CPUs")


def _in_child(code: str) -> str:
    """Run *code* in a fresh interpreter (policy changes must not leak into the test process)."""
    res = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_binding_values_are_checked() -> None:
    with pytest.raises(UsageError, match="needs at least one NUMA node"):
        Binding(mem_policy="bind")
    with pytest.raises(UsageError, match="unknown memory policy"):
        Binding(mem_policy="steal", mems=frozenset({0}))
    with pytest.raises(UsageError, match="empty CPU set"):
        Binding(cpus=frozenset())


@pytest.mark.parametrize(
    ("policy", "mems", "numa_maps"),
    [
        ("bind", "{0}", "bind:0"),
        ("interleave", "{0}", "interleave:0"),
        ("preferred", "{0}", "prefer:0"),
        ("local", "frozenset()", "local"),
    ],
)
def test_mempolicy_is_set_read_back_and_survives_exec(policy: str, mems: str, numa_maps: str) -> None:
    out = _in_child(
        "import os, sys\n"
        "from pinctl.act import mempolicy\n"
        f"mempolicy.set_mempolicy({policy!r}, frozenset({mems}))\n"
        "print(mempolicy.get_mempolicy())\n"
        "sys.stdout.flush()\n"
        "os.execvp('cat', ['cat', '/proc/self/numa_maps'])\n"
    )
    first, _, maps = out.partition("\n")
    want_nodes = "frozenset({0})" if policy != "local" else "frozenset()"
    assert first == f"({policy!r}, {want_nodes})"
    policies = {str(p) for _, p in parse_numa_maps(maps)}
    assert policies == {numa_maps}  # every mapping of the exec'd cat carries the policy


def test_unavailable_node_is_a_bind_error() -> None:
    out = _in_child(
        "from pinctl.act import mempolicy\nfrom pinctl.errors import BindError\n"
        "try:\n    mempolicy.set_mempolicy('bind', frozenset({999}))\nexcept BindError as e:\n    print(e)\n"
    )
    assert "set_mempolicy(bind, nodes 999) failed" in out


@needs_two
def test_verify_reports_a_binding_that_did_not_take() -> None:
    out = _in_child(
        "import os\nfrom pinctl.act.bind import verify_binding\n"
        "from pinctl.plan.binding import Binding\n"
        "os.sched_setaffinity(0, {0})\n"
        "print(verify_binding(Binding(cpus=frozenset({0, 1}), mem_policy='bind', mems=frozenset({0}))))\n"
    )
    assert "CPU affinity is 0, asked for 0-1" in out
    assert "memory policy is default, asked for bind:0" in out


@needs_two
def test_pin_every_thread_of_a_500_thread_process_and_back() -> None:
    with python_proc(THREADS_SRC, "500") as proc:
        assert len(task_cpulists(proc.pid)) == 501
        result = pin_threads(proc.pid, frozenset({1}))
        assert result.ok and len(result.pinned) == 501
        assert set(task_cpulists(proc.pid).values()) == {"1"}
        back = frozenset(ALL_CPUS)
        assert pin_threads(proc.pid, back).ok
        assert set(task_cpulists(proc.pid).values()) == {format_list(back)}


@needs_two
def test_pin_catches_threads_spawned_while_pinning() -> None:
    with python_proc(SPAWNER_SRC) as proc:
        time.sleep(0.5)
        result = pin_threads(proc.pid, frozenset({1}))
        assert result.ok, result
        time.sleep(0.3)  # threads started after the pin inherit it from their pinned parents
        lists = task_cpulists(proc.pid)
        assert len(lists) > 5
        assert set(lists.values()) == {"1"}


def test_vanished_pid_is_reported_missing() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    result = pin_threads(proc.pid, frozenset({0}))
    assert result.missing and not result.ok


def test_unprivileged_pin_of_a_root_process_is_eperm() -> None:
    with subprocess.Popen(["sleep", "30"]) as target:
        try:
            if os.geteuid() != 0:
                pytest.skip("needs root to own the target and drop privileges")

            def attempt() -> int:
                res = pin_threads(target.pid, frozenset({0}))
                sys.stderr.write(repr(sorted({err for _, err in res.failed})))
                return 0 if res.failed and not res.pinned else 1

            code, err = run_as_nobody(attempt)
            assert code == 0, err
            assert "EPERM" in err
        finally:
            target.kill()


def test_migrate_pages_moves_this_process_and_reports_what_stayed() -> None:
    left = mempolicy.migrate_pages(os.getpid(), frozenset({0}), frozenset({0}))
    assert left >= 0
    proc = subprocess.Popen(["true"])
    proc.wait()
    with pytest.raises(ProcessError, match="does not exist"):
        mempolicy.migrate_pages(proc.pid, frozenset({0}), frozenset({0}))


def _child(*argv: str, cpus: set[int] | None = None) -> Child:
    env = tuple((k, v) for k, v in os.environ.items())
    return Child(tuple(argv), env, Binding(cpus=frozenset(cpus) if cpus else None))


def test_children_are_bound_and_all_succeeding_gives_zero(tmp_path: Path) -> None:
    outs = [tmp_path / f"c{i}" for i in range(2)]
    cpus = [ALL_CPUS[0], ALL_CPUS[-1]]
    kids = [
        _child("sh", "-c", f"grep Cpus_allowed_list /proc/self/status > {o}", cpus={c})
        for o, c in zip(outs, cpus, strict=False)
    ]
    before = os.sched_getaffinity(0)
    assert run_children(kids) == 0
    assert os.sched_getaffinity(0) == before  # the parent's own binding is restored
    for out, cpu in zip(outs, cpus, strict=True):
        assert out.read_text().split()[-1] == str(cpu)


def test_first_failure_stops_the_others() -> None:
    start = time.monotonic()
    rc = run_children([_child("sleep", "30"), _child("sh", "-c", "sleep 0.2; exit 3")], grace=5)
    assert rc == 3
    assert time.monotonic() - start < 10


def test_signal_death_is_128_plus_signal_and_sigkill_after_grace() -> None:
    rc = run_children([_child("sh", "-c", "kill -TERM $$")])
    assert rc == 128 + signal.SIGTERM
    start = time.monotonic()
    stubborn = _child("sh", "-c", "trap '' TERM; sleep 30")
    rc = run_children([stubborn, _child("false")], grace=0.5)
    assert rc == 1
    assert time.monotonic() - start < 10  # SIGKILL ended the child that ignored SIGTERM


def test_spawn_failure_is_127() -> None:
    with pytest.raises(CommandError) as info:
        run_children([_child("no-such-command-pinctl")])
    assert info.value.exit_code == 127


def test_exec_restores_sigpipe_for_the_command() -> None:
    out = _in_child(
        "from pinctl.act import launch\nimport os\n"
        "launch.exec_command(['grep', 'SigIgn', '/proc/self/status'], os.environ)\n"
    )
    ignored = int(out.split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1))
