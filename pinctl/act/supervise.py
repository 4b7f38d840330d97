"""A group of bound children (``launch --nproc-per-node``), supervised torchrun style.

Each child is spawned with its own binding (this process binds itself in turn before
each spawn and restores itself afterwards), runs in its own process group, gets
SIGINT/SIGTERM/SIGHUP forwarded, and when one fails the others are stopped.
"""

from __future__ import annotations

import contextlib
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
    """Start every child bound, forward SIGINT/SIGTERM/SIGHUP, and stop the rest when one fails.

    Children run in process groups of their own (signals go to the whole group), so a
    terminal's Ctrl-C reaches them through this process's forwarding, torchrun style.

    Each child inherits its binding from this process (bound in turn before each spawn,
    restored afterwards). Returns 0 or the first failing child's status (128+signal for
    signal deaths); the others get SIGTERM, then SIGKILL after *grace* seconds.
    """
    saved_cpus = frozenset(os.sched_getaffinity(0))
    needs_mem = any(c.binding.mem_policy != "none" for c in children)
    saved_mem = get_mempolicy() if needs_mem else None
    alive: dict[int, int] = {}  # pid -> child index

    def send(sig: int) -> None:
        # Each child leads its own process group, so what it started (sh -c ...) is stopped with it.
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)

    try:
        for i, child in enumerate(children):
            for problem in bind_self(child.binding, force=force):
                if warn is not None:
                    warn(f"child {i}: binding did not take: {problem} (--force)")
            try:
                pid = os.posix_spawnp(
                    child.argv[0], list(child.argv), dict(child.env), setsigdef=RESET_SIGNALS, setpgroup=0
                )
            except OSError as exc:
                code = 127 if isinstance(exc, FileNotFoundError) else 126
                raise CommandError(f"cannot run {child.argv[0]!r}: {exc.strerror}", code) from None
            alive[pid] = i
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

    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, lambda signum, _frame: send(signum)) for sig in forwarded}
    first_failure: int | None = None
    deadline: float | None = None
    try:
        while alive:
            if deadline is None:
                pid, status = os.waitpid(-1, 0)
            else:
                pid, status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    if time.monotonic() >= deadline:
                        send(signal.SIGKILL)
                        deadline = float("inf")
                    time.sleep(0.02)
                    continue
            if alive.pop(pid, None) is None:
                continue
            rc = exit_status(status)
            if rc != 0 and first_failure is None:
                first_failure = rc
                send(signal.SIGTERM)
                deadline = time.monotonic() + grace
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return first_failure or 0
