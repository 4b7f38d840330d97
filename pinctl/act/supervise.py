"""A group of bound children (``launch --nproc-per-node``), supervised as torchrun does.

- Each child is forked with its own binding (this process binds itself in turn before each
  fork and restores itself afterwards) and leads its own process group, so a signal reaches
  whatever it started (``sh -c ...``).
- SIGINT, SIGTERM and SIGHUP are forwarded to every group; children still running after
  ``grace`` seconds get SIGKILL. A launcher that was signalled exits 128+signal, whatever its
  ranks returned (a preempted job must not look finished); otherwise it exits with the first
  failing child's status, after stopping the others the same way.
- No rank outlives the launcher: each child has PR_SET_PDEATHSIG=SIGKILL, and a guard
  process (which holds the children's process groups and a pipe from the launcher) kills
  the groups, grandchildren included, when the pipe closes without a goodbye: the launcher
  was killed (SIGKILL, the OOM killer).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pinctl.act.bind import bind_self
from pinctl.act.launch import RESET_SIGNALS
from pinctl.act.mempolicy import get_mempolicy, set_mempolicy
from pinctl.errors import CommandError
from pinctl.plan.binding import Binding

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_POLL_S = 0.02
_GOODBYE = b"done\n"


@dataclass(frozen=True)
class Child:
    """One command to start bound: argv, its full environment, its binding."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    binding: Binding


def exit_status(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128 + signal number."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _die_with_parent() -> None:
    """In a forked child: SIGKILL when the launcher dies (prctl(2) PR_SET_PDEATHSIG)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _spawn(child: Child) -> int:
    """Fork, lead a new process group, die with the launcher, exec; an exec failure is a CommandError."""
    parent = os.getpid()
    report_r, report_w = os.pipe2(os.O_CLOEXEC)  # stays open (and empty) only if exec fails
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child leaves through exec or os._exit
        try:
            os.close(report_r)
            os.setpgid(0, 0)
            _die_with_parent()
            if os.getppid() != parent:  # the launcher died before prctl took
                os._exit(137)
            for sig in (*RESET_SIGNALS, *FORWARDED):
                signal.signal(sig, signal.SIG_DFL)
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


class _Guard:
    """A process that kills the children's groups if the launcher dies without saying goodbye."""

    def __init__(self) -> None:
        read, self._write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the guard leaves through os._exit
            os.close(self._write)
            _guard_main(read)
        os.close(read)

    def watch(self, group: int) -> None:
        os.write(self._write, f"{group}\n".encode())

    def goodbye(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._write, _GOODBYE)
        os.close(self._write)
        with contextlib.suppress(ChildProcessError):  # reaped already, had it ended early
            os.waitpid(self.pid, 0)


def _guard_main(read: int) -> None:  # pragma: no cover - runs in the forked guard
    code = 0
    try:
        for sig in FORWARDED:  # a terminal's Ctrl-C is the launcher's to forward, not the guard's
            signal.signal(sig, signal.SIG_IGN)
        data = b""
        while chunk := os.read(read, 4096):
            data += chunk
        if not data.endswith(_GOODBYE):
            for line in data.split():
                if line.isdigit():
                    with contextlib.suppress(OSError):
                        os.killpg(int(line), signal.SIGKILL)
    except BaseException:
        code = 70
    finally:
        os._exit(code)


def run_children(
    children: Sequence[Child], *, grace: float = 10.0, force: bool = False, warn: Callable[[str], None] | None = None
) -> int:
    """Start every child bound and supervise them (see the module docstring); return the exit status."""
    saved_cpus = frozenset(os.sched_getaffinity(0))
    needs_mem = any(c.binding.mem_policy != "none" for c in children)
    saved_mem = get_mempolicy() if needs_mem else None
    alive: set[int] = set()
    received: list[int] = []

    def send(sig: int) -> None:
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        send(signum)

    guard = _Guard()
    previous = {sig: signal.signal(sig, on_signal) for sig in FORWARDED}
    try:
        try:
            for i, child in enumerate(children):
                for problem in bind_self(child.binding, force=force):
                    if warn is not None:
                        warn(f"child {i}: binding did not take: {problem} (--force)")
                pid = _spawn(child)
                alive.add(pid)
                guard.watch(pid)
        except BaseException:
            send(signal.SIGKILL)
            for pid in alive:
                os.waitpid(pid, 0)
            raise
        finally:
            os.sched_setaffinity(0, saved_cpus)
            if saved_mem is not None:
                mode, nodes = saved_mem
                set_mempolicy(mode if mode != "preferred" or nodes else "local", nodes)
        first_failure = _wait(alive, received, send, grace)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        guard.goodbye()
    return 128 + received[0] if received else first_failure or 0


def _wait(alive: set[int], received: list[int], send: Callable[[int], None], grace: float) -> int | None:
    """Reap the children; after a signal or a failure, SIGKILL whatever still runs after *grace* seconds."""
    first_failure: int | None = None
    deadline: float | None = None
    while alive:
        if deadline is None and received:
            deadline = time.monotonic() + grace
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            if deadline is not None and time.monotonic() >= deadline:
                send(signal.SIGKILL)
                deadline = float("inf")
            time.sleep(_POLL_S)
            continue
        if pid not in alive:
            continue
        alive.discard(pid)
        rc = exit_status(status)
        if rc != 0 and first_failure is None:
            first_failure = rc
            send(signal.SIGTERM)
            deadline = time.monotonic() + grace
    return first_failure
