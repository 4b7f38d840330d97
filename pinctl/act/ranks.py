"""The rank supervisor: the forked process that starts the ranks bound, waits for them and ends what they leave.

It runs in a process of its own (see pinctl.act.supervise) that is a child subreaper, so
everything the ranks start stays below it whatever they do (``setsid``, double fork), and
it outlives a launcher killed with SIGKILL long enough to end them all.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pinctl.act.bind import bind_self
from pinctl.act.launch import RESET_SIGNALS
from pinctl.act.reaper import become_subreaper, die_with_parent, end_tree, signal_tree
from pinctl.errors import CommandError

if TYPE_CHECKING:
    from pinctl.act.supervise import Child

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_POLL_S = 0.02


def _spawn(child: Child, null_stdin: bool) -> int:
    """Fork, lead a new process group, die with the supervisor, exec; an exec failure is a CommandError."""
    parent = os.getpid()
    report_r, report_w = os.pipe2(os.O_CLOEXEC)  # stays open (and empty) only if exec fails
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child leaves through exec or os._exit
        try:
            os.close(report_r)
            os.setpgid(0, 0)
            die_with_parent()
            if os.getppid() != parent:  # the supervisor died before prctl took
                os._exit(137)
            for sig in (*RESET_SIGNALS, *FORWARDED, signal.SIGTTOU):
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            if null_stdin:  # a rank in a background group that read the terminal would stop (SIGTTIN)
                fd = os.open(os.devnull, os.O_RDONLY)
                os.dup2(fd, 0)
                os.close(fd)
            os.execvpe(child.argv[0], list(child.argv), dict(child.env))
        except OSError as exc:
            os.write(report_w, str(exc.errno or errno.ENOEXEC).encode())
        finally:
            os._exit(127)
    os.close(report_w)
    with os.fdopen(report_r, "rb") as report:
        failed = report.read()
    if failed:
        os.waitpid(pid, 0)
        code = int(failed)
        raise CommandError(f"cannot run {child.argv[0]!r}: {os.strerror(code)}", 127 if code == errno.ENOENT else 126)
    return pid


def supervise(
    children: Sequence[Child], launcher: int, grace: float, force: bool, warn: Callable[[str], None] | None
) -> int:
    """Start every child bound, wait for them all, end whatever they left; the launcher's exit status.

    Runs in the forked supervisor with FORWARDED blocked (the launcher blocked them around
    the fork); they are unblocked once the handlers are in place.
    """
    me = os.getpid()
    become_subreaper()
    alive: dict[int, int] = {}  # pid -> local rank; unreaped, so each PID (and group) is still theirs
    received: list[int] = []

    def send(sig: int) -> None:
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        send(signum)

    for sig in FORWARDED:
        signal.signal(sig, on_signal)
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # warnings from a background group must not stop it (tostop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    null_stdin = _is_terminal(0)
    try:
        for i, child in enumerate(children):
            if received or os.getppid() != launcher:  # stop spawning at the first signal
                break
            for problem in bind_self(child.binding, force=force):
                if warn is not None:
                    warn(f"child {i}: binding did not take: {problem} (--force)")
            alive[_spawn(child, null_stdin)] = i
        first_failure = _wait(alive, received, send, grace, launcher, warn)
    except BaseException:
        send(signal.SIGKILL)
        end_tree(me, 0)
        raise
    orphaned = os.getppid() != launcher
    end_tree(me, 0 if orphaned else grace)
    if orphaned:
        return 128 + signal.SIGKILL
    return 128 + received[0] if received else first_failure or 0


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _is_terminal(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _wait(
    alive: dict[int, int],
    received: list[int],
    send: Callable[[int], None],
    grace: float,
    launcher: int,
    warn: Callable[[str], None] | None,
) -> int | None:
    """Reap the ranks; after a signal or a failure, SIGKILL whatever still runs after *grace* seconds.

    A rank's exit is seen before it is reaped (WNOWAIT), so its process group can still be
    signalled safely: a failed rank's own children are stopped with the rest.
    """
    first_failure: int | None = None
    deadline: float | None = None
    me = os.getpid()
    while alive:
        if os.getppid() != launcher:  # the launcher was killed (SIGKILL, the OOM killer): end everything now
            send(signal.SIGKILL)
            signal_tree(me, signal.SIGKILL)
            for pid in list(alive):
                os.waitpid(pid, 0)
                del alive[pid]
            return None
        if deadline is None and received:
            deadline = time.monotonic() + grace
        info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WSTOPPED | os.WNOHANG | os.WNOWAIT)
        if info is None:
            if deadline is not None and time.monotonic() >= deadline:
                send(signal.SIGKILL)
                signal_tree(me, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(_POLL_S)
            continue
        pid = info.si_pid
        if info.si_code == os.CLD_STOPPED:
            os.waitpid(pid, os.WUNTRACED | os.WNOHANG)  # consume the report
            if pid in alive and warn is not None:
                name = _signal_name(info.si_status)
                warn(f"child {alive[pid]} (pid {pid}) stopped by {name}; the launch waits for it (SIGCONT resumes it)")
            continue
        rc = info.si_status if info.si_code == os.CLD_EXITED else 128 + info.si_status
        if pid in alive and rc != 0 and first_failure is None:
            first_failure = rc
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)  # its group, still held by the unreaped rank
            send(signal.SIGTERM)
            deadline = time.monotonic() + grace
        os.waitpid(pid, 0)
        alive.pop(pid, None)
    return first_failure
