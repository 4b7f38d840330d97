"""Finding and ending every descendant of this process, without ever hitting a reused PID.

A process that made itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER) gets every
orphan among its descendants as its own child: a rank's ``setsid`` or double-forked
child cannot slip away to init while the subreaper lives. Descendants are found through
the parent links in /proc; each is signalled through a pidfd opened *before* checking
that the PID still belongs to the tree, so a process that ended and whose PID went to
someone else is never signalled (pidfd_send_signal fails on the ended one instead).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from pinctl.kernel.files import KernelFiles
from pinctl.kernel.proc import parent_id, parent_ids

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_PR_SET_CHILD_SUBREAPER = 36
_FILES = KernelFiles()
_POLL_S = 0.02


def _prctl(option: int, value: int) -> bool:
    import ctypes

    return int(ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)) == 0


def become_subreaper() -> bool:
    """Orphaned descendants reparent to this process instead of init (Linux 3.4+)."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """In a forked child: get *sig* when the parent (the thread that forked) ends."""
    return _prctl(_PR_SET_PDEATHSIG, sig)


def descendants(root: int) -> list[int]:
    """Every live process below *root* (children first), from one pass over /proc."""
    below: dict[int, list[int]] = {}
    for pid, ppid in parent_ids(_FILES).items():
        below.setdefault(ppid, []).append(pid)
    found: list[int] = []
    todo = [root]
    while todo:
        for pid in below.get(todo.pop(), ()):
            if pid not in found:
                found.append(pid)
                todo.append(pid)
    return found


def _in_tree(pid: int, root: int) -> bool:
    """Whether *pid* has *root* among its ancestors now."""
    seen = 0
    while pid > 1 and seen < 4096:
        ppid = parent_id(_FILES, pid)
        if ppid is None:
            return False
        if ppid == root:
            return True
        pid, seen = ppid, seen + 1
    return False


def signal_tree(root: int, sig: int) -> int:
    """Send *sig* to every descendant of *root* through pidfds; return how many were found."""
    found = descendants(root)
    for pid in found:
        try:
            fd = os.pidfd_open(pid)
        except OSError:  # ended meanwhile
            continue
        try:
            if _in_tree(pid, root):  # the pidfd is this PID's process as of now: not a newcomer on a reused PID
                signal.pidfd_send_signal(fd, sig)
        except OSError:
            pass
        finally:
            os.close(fd)
    return len(found)


def reap_orphans() -> None:
    """Collect every ended child of this process without waiting (ranks are reaped by their supervisor first)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] != 0:
            pass


def end_tree(root: int, grace: float) -> None:
    """SIGTERM what runs below *root*, SIGKILL what is left after *grace* seconds, until nothing is.

    Only for a subreaper (*root* is this process): the descendants it kills reparent to it
    and are reaped here, so a forking process cannot outrun the loop for long.
    """
    if grace > 0 and signal_tree(root, signal.SIGTERM):
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            reap_orphans()
            if not descendants(root):
                return
            time.sleep(_POLL_S)
    for _ in range(500):  # each round kills everything seen; a fork bomb gets ~10 s
        reap_orphans()
        if not signal_tree(root, signal.SIGKILL):
            return
        time.sleep(_POLL_S)
