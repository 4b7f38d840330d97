"""``launch --nproc-per-node``: nothing it starts outlives it, whatever the ranks do and however the launcher ends.

Real processes throughout: ranks that start a background child, a ``setsid`` child and a
double-forked one; each records its PID, and /proc must show none of them left (bounded waits).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from act_helpers import PYTHON, wait_for

RANK_SRC = """
import os, signal, subprocess, sys, time
out, mode, rank = sys.argv[1], sys.argv[2], os.environ["LOCAL_RANK"]

def record(name, pid):
    path = f"{out}/{name}{rank}"
    with open(path + ".tmp", "w") as f:
        f.write(str(pid))
    os.rename(path + ".tmp", path)

record("bg", subprocess.Popen(["sleep", "60"]).pid)
record("sid", subprocess.Popen(["sleep", "60"], start_new_session=True).pid)
middle = os.fork()
if middle == 0:  # double fork: the grandchild's parent ends at once
    os.setsid()
    grandchild = os.fork()
    if grandchild == 0:
        os.execvp("sleep", ["sleep", "60"])
    record("dbl", grandchild)
    os._exit(0)
os.waitpid(middle, 0)
record("rank", os.getpid())
if mode == "exit0" or (mode == "crash" and rank == "1"):
    time.sleep(0.3)
    if mode == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    sys.exit(0)
time.sleep(60)
"""
KINDS = ("rank", "bg", "sid", "dbl")


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def _recorded(folder: Path, ranks: int) -> list[int]:
    names = [f"{kind}{i}" for kind in KINDS for i in range(ranks)]
    assert wait_for(lambda: all((folder / n).exists() for n in names), timeout=30), sorted(os.listdir(folder))
    return [int((folder / n).read_text()) for n in names]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "SLURM_LOCALID")}


@contextlib.contextmanager
def _launch(tmp_path: Path, mode: str, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
    script = tmp_path / "rank.py"
    script.write_text(RANK_SRC)
    out = tmp_path / "out"
    out.mkdir()
    argv = [PYTHON, "-m", "pinctl", "launch", "-l", "--nproc-per-node", "2", *extra, "--", PYTHON, str(script),
            str(out), mode]  # fmt: skip
    proc = subprocess.Popen(argv, env=_env(), stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_no_descendant_outlives_a_signalled_launcher(tmp_path: Path, sig: signal.Signals) -> None:
    with _launch(tmp_path, "sleep", "--grace", "2") as proc:
        everyone = _recorded(tmp_path / "out", 2)
        proc.send_signal(sig)
        code = proc.wait(timeout=30)
        assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 128 + sig)
        assert wait_for(lambda: all(_gone(p) for p in everyone)), [p for p in everyone if not _gone(p)]


def test_ranks_that_exit_0_leave_nothing_running(tmp_path: Path) -> None:
    with _launch(tmp_path, "exit0") as proc:
        everyone = _recorded(tmp_path / "out", 2)
        assert proc.wait(timeout=30) == 0
        assert all(_gone(p) for p in everyone), [p for p in everyone if not _gone(p)]


def test_a_crashed_ranks_own_children_are_ended_too(tmp_path: Path) -> None:
    with _launch(tmp_path, "crash", "--grace", "2") as proc:
        everyone = _recorded(tmp_path / "out", 2)
        assert proc.wait(timeout=30) == 128 + signal.SIGSEGV
        assert all(_gone(p) for p in everyone), [p for p in everyone if not _gone(p)]


def test_a_signal_during_start_up_stops_further_ranks(tmp_path: Path) -> None:
    ranks = 256
    proc = subprocess.Popen([PYTHON, "-m", "pinctl", "launch", "-l", "--nproc-per-node", str(ranks), "--grace", "5",
                             "--", "sh", "-c", f"echo $$ > {tmp_path}/r$LOCAL_RANK; exec sleep 60"],
                            env=_env(), stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        assert wait_for(lambda: (tmp_path / "r0").exists(), timeout=30)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
        assert time.monotonic() - start < 4  # ranks started after the signal would wait out the 5 s grace
        time.sleep(0.2)
        started = list(tmp_path.glob("r*"))
        assert len(started) < ranks
        pids = [int(t) for p in started if (t := p.read_text().strip())]
        assert all(_gone(p) for p in pids)
    finally:
        proc.kill()
        proc.wait()


def _in_pty(*args: str, timeout: float = 30) -> tuple[int | None, str]:
    """Run pinctl with a pseudo-terminal as its controlling terminal and stdio: (exit status or None, output)."""
    master, slave = os.openpty()

    def own_terminal() -> None:  # pragma: no cover - in the child
        import fcntl
        import termios

        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([PYTHON, "-m", "pinctl", *args], stdin=slave, stdout=slave, stderr=slave, env=_env(),
                            start_new_session=True, preexec_fn=own_terminal)  # fmt: skip
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                with contextlib.suppress(OSError):
                    chunks.append(os.read(master, 65536))
        return proc.poll(), b"".join(chunks).decode(errors="replace")
    finally:
        os.close(master)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_a_rank_reading_the_terminal_does_not_hang_the_launch() -> None:
    code, text = _in_pty("launch", "-l", "--nproc-per-node", "2", "--", "sh", "-c", "read x; echo read-done")
    assert code == 0, text
    assert text.count("read-done") == 2


def test_a_stopped_rank_is_reported(tmp_path: Path) -> None:
    proc = subprocess.Popen([PYTHON, "-m", "pinctl", "launch", "-l", "--nproc-per-node", "2", "--", "sh", "-c",
                             '[ "$LOCAL_RANK" = 1 ] && kill -STOP $$; exit 0'],
                            env=_env(), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stderr is not None
        ready, _, _ = select.select([proc.stderr], [], [], 20)
        assert ready, "no word about the stopped rank"
        line = proc.stderr.readline()
        assert "child 1" in line and "stopped by SIGSTOP" in line, line
        os.kill(int(line.split("(pid ")[1].split(")")[0]), signal.SIGCONT)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()


def _start_on_pid(target: int, tries: int = 50) -> subprocess.Popen[bytes] | None:
    """Another user's ``setsid sleep`` whose PID (and so its group id) is *target* (ns_last_pid), or None."""
    for _ in range(tries):
        try:
            Path("/proc/sys/kernel/ns_last_pid").write_text(str(target - 1))
        except OSError:
            return None
        proc = subprocess.Popen(["sleep", "60"], user=65534, group=65534, start_new_session=True)
        if proc.pid == target:
            return proc
        proc.kill()
        proc.wait()
    return None


@pytest.mark.skipif(os.geteuid() != 0, reason="placing a process on a chosen PID (ns_last_pid) needs root")
def test_a_reused_pid_of_an_ended_rank_is_never_signalled(tmp_path: Path) -> None:
    """Rank 0 ends and is reaped; another user's new session gets its PID; then the launcher is killed."""
    proc = subprocess.Popen([PYTHON, "-m", "pinctl", "launch", "-l", "--nproc-per-node", "2", "--", "sh", "-c",
                             f'echo $$ > {tmp_path}/r$LOCAL_RANK; [ "$LOCAL_RANK" = 0 ] || exec sleep 60'],
                            env=_env(), stdin=subprocess.DEVNULL)  # fmt: skip
    bystander = None
    try:
        assert wait_for(lambda: all((tmp_path / f"r{i}").exists() for i in range(2)), timeout=30)
        first, second = (int((tmp_path / f"r{i}").read_text()) for i in range(2))
        assert wait_for(lambda: not os.path.exists(f"/proc/{first}"))
        bystander = _start_on_pid(first)
        if bystander is None:
            pytest.skip("could not place a process on the ended rank's PID (ns_last_pid not writable, or a busy host)")
        proc.kill()
        proc.wait()
        assert wait_for(lambda: _gone(second))
        time.sleep(0.3)
        assert bystander.poll() is None, "the launch killed another user's process that got an ended rank's PID"
    finally:
        proc.kill()
        proc.wait()
        if bystander is not None:
            bystander.kill()
            bystander.wait()


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry))
    return out


def test_a_killed_supervisor_leaves_nothing_either(tmp_path: Path) -> None:
    """The OOM killer may pick the supervisor: the ranks die with it, the launcher ends what they left."""
    with _launch(tmp_path, "sleep", "--grace", "2") as proc:
        everyone = _recorded(tmp_path / "out", 2)
        supervisor = _children(proc.pid)
        assert len(supervisor) == 1, supervisor
        os.kill(supervisor[0], signal.SIGKILL)
        assert proc.wait(timeout=30) == 128 + signal.SIGKILL
        assert all(_gone(p) for p in everyone), [p for p in everyone if not _gone(p)]
