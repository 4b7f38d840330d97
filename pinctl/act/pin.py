"""Re-pinning running processes: every thread (``taskset -a -p``), and optionally their pages.

Another process's memory *policy* cannot be set from outside (set_mempolicy acts on
the calling thread only), so memory is moved with migrate_pages (``migratepages(8)``).
Nothing here prints: :func:`pin_targets` returns a :class:`PinReport` whose lines
the CLI prints and whose :meth:`~PinReport.error` it raises, so a partial failure
(some threads not re-pinned) is always reported, never hidden.
"""

from __future__ import annotations

import errno
import os

from pinctl.act.mempolicy import migrate_pages
from pinctl.cpuset import format_list
from pinctl.errors import BindError, PinctlError, ProcessError
from pinctl.kernel.files import KernelFiles
from pinctl.kernel.numa import online_nodes
from pinctl.kernel.proc import is_kernel_thread, pid_exists, read_status, task_ids
from pinctl.record import Record
from pinctl.words import count

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the pin fast path
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Final

Target = tuple[int, frozenset[int], frozenset[int]]  # pid, CPUs, memory nodes for --migrate
_MAX_PIN_PASSES = 50


class PinResult(Record):
    """What :func:`pin_threads` did to one process: threads pinned, gone meanwhile, refused
    (thread id, errno name), narrowed by the target's cpuset (thread id, CPUs), or no process;
    threads put back on their old CPUs after a refusal (``restored``), and those that could
    not be put back (``stuck``)."""

    __slots__ = ("exited", "failed", "mismatched", "missing", "pid", "pinned", "restored", "stuck")

    def __init__(
        self,
        pid: int,
        pinned: frozenset[int] = frozenset(),
        exited: frozenset[int] = frozenset(),
        failed: tuple[tuple[int, str], ...] = (),
        mismatched: tuple[tuple[int, frozenset[int]], ...] = (),
        missing: bool = False,
        restored: frozenset[int] = frozenset(),
        stuck: frozenset[int] = frozenset(),
    ) -> None:
        self.pid: Final = pid
        self.restored: Final = restored
        self.stuck: Final = stuck
        self.pinned: Final = pinned
        self.exited: Final = exited
        self.failed: Final = failed
        self.mismatched: Final = mismatched
        self.missing: Final = missing

    @property
    def ok(self) -> bool:
        return not self.missing and not self.failed and not self.mismatched and bool(self.pinned)


class PinReport(Record):
    """What :func:`pin_targets` did: a line per process for stdout, and what went wrong."""

    __slots__ = ("failures", "lines", "narrowed")

    def __init__(
        self, lines: tuple[str, ...] = (), failures: tuple[str, ...] = (), narrowed: tuple[str, ...] = ()
    ) -> None:
        self.lines: Final = lines
        self.failures: Final = failures
        self.narrowed: Final = narrowed

    def error(self) -> PinctlError | None:
        """The error to raise after the lines are printed, or None when every thread was pinned."""
        if self.failures:
            return ProcessError("not all pinned: " + "; ".join(self.failures))
        if self.narrowed:
            return BindError("binding narrowed by the target's cpuset: " + "; ".join(self.narrowed[:10]))
        return None


def pin_threads(
    pid: int, cpus: frozenset[int], *, files: KernelFiles | None = None, all_or_nothing: bool = False
) -> PinResult:
    """``taskset -a -p``: set every thread's affinity, re-listing /proc/PID/task until no new thread appears.

    Threads that exit meanwhile are fine (ESRCH); EPERM and other errors are recorded
    per thread; the new affinity is read back, since the kernel silently narrows a mask
    to the target's cpuset. With *all_or_nothing*, a refused thread (threads running under
    other credentials) puts the moved ones back on the CPUs they had: no process is left
    half-moved.
    """
    fs = files or KernelFiles()
    old: dict[int, frozenset[int]] = {}
    pinned: set[int] = set()
    exited: set[int] = set()
    failed: dict[int, str] = {}
    mismatched: dict[int, frozenset[int]] = {}
    seen: set[int] = set()
    for _ in range(_MAX_PIN_PASSES):
        new = [t for t in task_ids(fs, pid) if t not in seen]
        if not new:
            break
        for tid in new:
            seen.add(tid)
            try:
                old[tid] = frozenset(os.sched_getaffinity(tid))
                os.sched_setaffinity(tid, cpus)
            except ProcessLookupError:
                exited.add(tid)
            except OSError as exc:
                failed[tid] = errno.errorcode.get(exc.errno or 0, str(exc.errno))
            else:
                pinned.add(tid)
    if not seen and not pid_exists(fs, pid):
        return PinResult(pid, missing=True)
    if all_or_nothing and failed and pinned:
        restored, stuck = _put_back({tid: old[tid] for tid in pinned})
        return PinResult(pid, frozenset(), frozenset(exited), tuple(sorted(failed.items())), (), False, restored, stuck)
    for tid in sorted(pinned):
        try:
            got = frozenset(os.sched_getaffinity(tid))
        except OSError:
            exited.add(tid)
            continue
        if got != cpus:
            mismatched[tid] = got
    return PinResult(
        pid,
        frozenset(pinned - exited),
        frozenset(exited),
        tuple(sorted(failed.items())),
        tuple(sorted(mismatched.items())),
    )


def _put_back(old: dict[int, frozenset[int]]) -> tuple[frozenset[int], frozenset[int]]:
    """Set each thread back to its old CPUs: (put back or gone, could not be put back)."""
    restored: set[int] = set()
    stuck: set[int] = set()
    for tid, cpus in old.items():
        try:
            os.sched_setaffinity(tid, cpus)
        except ProcessLookupError:
            restored.add(tid)
        except OSError:
            stuck.add(tid)
        else:
            restored.add(tid)
    return frozenset(restored), frozenset(stuck)


def system_process(pid: int, files: KernelFiles) -> str | None:
    """Why *pid* must not be re-pinned by accident (init, a kernel thread), or None.

    taskset would do it as root; a typo in a PID list should not move init or kworkers.
    """
    if pid == 1:
        return "is init"
    if is_kernel_thread(files, pid):
        return "is a kernel thread"
    return None


def pin_targets(targets: Sequence[Target], *, migrate: bool, files: KernelFiles, force: bool = False) -> PinReport:
    """Pin every thread of each target (and move its pages with *migrate*); init and kernel
    threads are refused (named in the report) unless *force*."""
    lines: list[str] = []
    failures: list[str] = []
    narrowed: list[str] = []
    for pid, cpus, mems in targets:
        why = None if force else system_process(pid, files)
        if why is not None:
            failures.append(f"process {pid} {why}: not pinned (--force to pin it anyway)")
            continue
        result = pin_threads(pid, cpus, files=files, all_or_nothing=not force)
        if result.missing:
            failures.append(f"process {pid} does not exist")
            continue
        status = read_status(files, pid)
        name = f" ({status.name})" if status and status.name else ""
        lines.append(f"{pid}{name}: {count(len(result.pinned), 'thread')} pinned to {format_list(cpus)}")
        if result.failed:
            errors = ", ".join(sorted({err for _, err in result.failed}))
            tids = format_list(tid for tid, _ in result.failed)
            failures.append(f"process {pid}{name}: threads {tids} not pinned ({errors})")
        if result.restored:
            failures.append(
                f"process {pid}{name}: threads {format_list(result.restored)} put back on their old CPUs, "
                "so none is half-moved (--force keeps the threads that could be moved)"
            )
        if result.stuck:
            failures.append(
                f"process {pid}{name}: threads {format_list(result.stuck)} could not be put back "
                f"and stay on {format_list(cpus)}"
            )
        for tid, got in result.mismatched:
            narrowed.append(f"process {pid} thread {tid} runs on {format_list(got)}, not {format_list(cpus)}")
        if migrate and not result.failed:
            try:
                left = migrate_pages(pid, online_nodes(files), mems)
            except ProcessError as exc:
                failures.append(str(exc))
            else:
                moved = f"pages migrated to node {format_list(mems)}; {left} could not be moved"
                lines.append(f"{pid}{name}: {moved}")
    return PinReport(tuple(lines), tuple(failures), tuple(narrowed))
