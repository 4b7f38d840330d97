"""A group of bound children (``launch --nproc-per-node``), supervised as torchrun does.

The launcher forks one supervisor (pinctl.act.ranks) in a process group of its own, and
waits for it; the supervisor starts the ranks and is a child subreaper, so nothing a rank
starts can leave its tree. docs/launch.md states the guarantees:

- Each rank is forked with its own binding and leads its own process group, so a signal
  reaches whatever it started (``sh -c ...``). A rank's stdin is /dev/null when the
  launcher's is a terminal (a rank cannot own the terminal); a rank stopped all the same
  (SIGTTIN, SIGSTOP) is reported.
- SIGINT, SIGTERM and SIGHUP are forwarded to every rank's group; no rank starts after the
  first one; ranks still running after ``grace`` seconds get SIGKILL. A launcher that was
  signalled exits 128+signal, whatever its ranks returned (a preempted job must not look
  finished); otherwise it exits with the first failing rank's status, after stopping the
  others (and the failed rank's group) the same way.
- No process started by the launch outlives it. When the ranks are done, whatever they
  left running (background, ``setsid``, double-forked children) gets SIGTERM, then SIGKILL
  after ``grace``. A launcher killed with SIGKILL: the supervisor sees it within 20 ms and
  SIGKILLs everything below it. A supervisor killed: each rank has PR_SET_PDEATHSIG=SIGKILL,
  and the launcher, a subreaper too, ends whatever reparents to it. Descendants are
  signalled through pidfds, never by a PID or group that may have been reused.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pinctl.act.ranks import FORWARDED, supervise
from pinctl.act.reaper import become_subreaper, end_tree
from pinctl.errors import CommandError
from pinctl.plan.binding import Binding


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


def run_children(
    children: Sequence[Child], *, grace: float = 10.0, force: bool = False, warn: Callable[[str], None] | None = None
) -> int:
    """Start every child bound and supervise them (see the module docstring); return the exit status."""
    launcher = os.getpid()
    become_subreaper()
    result_r, result_w = os.pipe2(os.O_CLOEXEC)
    received: list[int] = []
    pid_box: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid_box[0], signum)  # unreaped until waitpid below: the PID is still the supervisor's

    previous = {sig: signal.signal(sig, on_signal) for sig in FORWARDED}
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)  # no signal between fork and the handlers on either side
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the supervisor leaves through os._exit
        code = 70
        try:
            os.close(result_r)
            os.setpgid(0, 0)  # a terminal's Ctrl-C is the launcher's to forward, once
            code = supervise(children, launcher, grace, force, warn)
        except CommandError as exc:
            code = exc.exit_code
            os.write(result_w, str(exc).encode("utf-8", "replace"))
        except BaseException:
            code = 70
        finally:
            os._exit(code)  # warnings went out line by line; the launcher's unflushed output is the launcher's
    pid_box.append(pid)
    os.close(result_w)
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
        with os.fdopen(result_r, "rb") as result:
            message = result.read().decode("utf-8", "replace")  # EOF when the supervisor ends
        _, status = os.waitpid(pid, 0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if os.WIFSIGNALED(status):  # the supervisor itself was killed: its ranks' orphans reparented here
        end_tree(launcher, 0)
    code = exit_status(status)
    if message:
        raise CommandError(message, code)
    return 128 + received[0] if received else code
