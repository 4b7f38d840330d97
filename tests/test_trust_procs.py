"""``check`` and ``pin`` on a shared node: other users' processes, threads under other credentials, ranks that end.

Two local users are created with useradd when the tests run as root; otherwise these skip.
pinctl runs in a forked child that dropped to one of them (the venv's interpreter may be
unreadable to them, so no new interpreter is started as another user).
"""

from __future__ import annotations

import json
import os
import platform
import pwd
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from act_helpers import ALL_CPUS, PYTHON, TWO_CPUS, plan_dict, rank, task_cpulists, wait_for, write_plan

from pinctl.cpuset import format_list

USERS = ("pinctl-t20a", "pinctl-t20b")


def _user(name: str) -> tuple[int, int]:
    """(uid, gid) of local user *name*, created with useradd when missing (as root)."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        if os.geteuid() != 0:
            pytest.skip("needs two local users: run as root so the test can create them with useradd")
        if shutil.which("useradd") is None:
            pytest.skip("needs two local users and there is no useradd to create them")
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                       check=False, capture_output=True)  # fmt: skip
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            pytest.skip(f"useradd could not create {name}")
    return entry.pw_uid, entry.pw_gid


def _as_user(uid: int, gid: int, args: list[str]) -> tuple[int, str]:
    """Run ``pinctl ARGS`` in a forked child as *uid*; (exit code, stdout and stderr together)."""
    from pinctl.cli.main import main

    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 99
        try:
            os.close(read_fd)
            os.dup2(write_fd, 1)
            os.dup2(write_fd, 2)
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - pytest replaced sys.stdout
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            code = main(args)
        except BaseException as exc:
            os.write(2, f"child raised {exc!r}".encode())
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        text = f.read().decode()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), text


@pytest.fixture
def users() -> tuple[tuple[int, int], tuple[int, int]]:
    return _user(USERS[0]), _user(USERS[1])


# --- check --------------------------------------------------------------------------------------


def test_check_of_a_process_it_may_not_read_is_not_ok(users: tuple[tuple[int, int], tuple[int, int]]) -> None:
    (a_uid, a_gid), (b_uid, b_gid) = users
    target = subprocess.Popen(["sleep", "60"], user=a_uid, group=a_gid)
    try:
        code, text = _as_user(b_uid, b_gid, ["check", str(target.pid)])
        assert code == 5, text
        assert f"/proc/{target.pid}/environ" in text and "numa_maps" in text, text
        assert "not ok" in text and "\nok\n" not in text, text
        code, text = _as_user(b_uid, b_gid, ["check", "--json", str(target.pid)])
        assert code == 5, text
        proc = json.loads(text[text.index("{") :])["processes"][0]
        assert proc["unreadable"] == ["environ", "numa_maps"] and proc["ok"] is False
        code, text = _as_user(a_uid, a_gid, ["check", str(target.pid)])  # its own user reads it all
        assert code == 0, text
    finally:
        target.kill()
        target.wait()


def test_a_rank_that_ends_while_ranks_are_listed_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = write_plan(tmp_path / "plan.json", plan_dict([rank(0, [ALL_CPUS[0]])]))
    live = subprocess.Popen([PYTHON, "-m", "pinctl", "launch", "--plan", plan, "--", "sleep", "60"],
                            env={**os.environ, "LOCAL_RANK": "0"})  # fmt: skip
    ended = subprocess.Popen(["true"])
    ended.wait()
    try:
        assert wait_for(lambda: Path(f"/proc/{live.pid}/comm").read_text().strip() == "sleep")
        import pinctl.cli.check as check_cli

        # The listing found both; the second ended before its /proc files were read.
        monkeypatch.setattr(check_cli, "launched_ranks", lambda *a, **k: [live.pid, ended.pid])
        code, text = _as_user(os.geteuid(), os.getegid(), ["check", "--plan", plan])
        assert code == 0, text
        assert f"{ended.pid} ended while checking: skipped" in text, text
    finally:
        live.kill()
        live.wait()


# --- pin ----------------------------------------------------------------------------------------

_SETRESUID = {"x86_64": 117, "aarch64": 147}.get(platform.machine())
THREADS_AS_TWO_USERS = """
import ctypes, sys, threading, time
libc = ctypes.CDLL(None, use_errno=True)
a, b = int(sys.argv[1]), int(sys.argv[2])
def as_user(uid, ready):
    libc.syscall({nr}, uid, uid, uid)  # this thread only (glibc's setresuid would change them all)
    ready.set()
    time.sleep(120)
events = [threading.Event(), threading.Event()]
threading.Thread(target=as_user, args=(a, events[0]), daemon=True).start()
threading.Thread(target=as_user, args=(b, events[1]), daemon=True).start()
for e in events:
    e.wait()
libc.syscall({nr}, a, a, a)  # the main thread joins user a
print("ready", flush=True)
time.sleep(120)
"""


@pytest.fixture
def mixed(users: tuple[tuple[int, int], tuple[int, int]]) -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    """A process whose main thread and one thread run as user a, and one thread as user b."""
    if _SETRESUID is None or os.geteuid() != 0:
        pytest.skip("needs root on x86_64 or aarch64 to give one thread other credentials")
    (a_uid, _), (b_uid, _) = users
    src = THREADS_AS_TWO_USERS.replace("{nr}", str(_SETRESUID))
    proc = subprocess.Popen([PYTHON, "-c", src, str(a_uid), str(b_uid)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc, a_uid, b_uid
    finally:
        proc.kill()
        proc.wait()


def _thread_uid(pid: int, tid: int) -> int:
    for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


@pytest.mark.skipif(not TWO_CPUS, reason="needs two CPUs to move a thread")
def test_pin_leaves_no_thread_half_moved(mixed: tuple[subprocess.Popen[str], int, int]) -> None:
    proc, a_uid, b_uid = mixed
    a_gid = pwd.getpwuid(a_uid).pw_gid
    before = task_cpulists(proc.pid)
    foreign = [tid for tid in before if _thread_uid(proc.pid, tid) == b_uid]
    assert len(foreign) == 1 and len(before) >= 3
    target = str(ALL_CPUS[-1])
    code, text = _as_user(a_uid, a_gid, ["pin", str(proc.pid), "--cpus", target])
    assert code == 5, text
    assert f"threads {foreign[0]} not pinned (EPERM)" in text, text
    moved = sorted(set(before) - set(foreign))
    assert f"threads {format_list(moved)} put back on their old CPUs" in text, text
    assert task_cpulists(proc.pid) == before  # nothing half-moved
    code, text = _as_user(a_uid, a_gid, ["pin", "--force", str(proc.pid), "--cpus", target])
    assert code == 5, text
    after = task_cpulists(proc.pid)
    assert all(after[t] == target for t in moved) and after[foreign[0]] == before[foreign[0]], after
