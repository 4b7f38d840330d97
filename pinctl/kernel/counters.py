"""One reading of every counter ``watch`` and ``noise`` difference: a :class:`Sample`.

Each interval reads the per-CPU counters (/proc/stat, /proc/interrupts, /proc/softirqs,
for the CPUs watched only) and the watched processes' own threads; the costly walk of every
thread on the node (``scan``) happens only when asked, to name the offenders once foreign time
is notable, and numa_maps (the kernel walks page tables to write it) only now and then.
What could not be read is named in ``denied``, never guessed.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from pinctl.kernel.files import KeptOpen, KernelFiles
from pinctl.kernel.interrupts import Memo, read_interrupts, read_softirqs
from pinctl.kernel.proc import read_numa_pages, task_ids
from pinctl.kernel.stat import CpuTime, TaskTime, all_tasks, owner, read_cpu_times, read_task, read_watched


@dataclass(frozen=True)
class ThreadSample:
    """A watched thread: its times, and its involuntary context switches (None when unreadable)."""

    time: TaskTime
    involuntary: int | None


@dataclass(frozen=True)
class Sample:
    """Cumulative counters at ``t_ns`` (CLOCK_MONOTONIC). ``threads``: pid -> tid -> its sample for
    the watched processes; ``scan``: (pid, tid) -> times of every thread when scanned, with each
    process's owner (``owners``); ``numa``: pid -> [(policy nodes, pages per node)]."""

    t_ns: int
    cpus: Mapping[int, CpuTime]
    irqs: Mapping[str, Mapping[int, int]] | None
    softirqs: Mapping[str, Mapping[int, int]] | None
    threads: Mapping[int, Mapping[int, ThreadSample]] = field(default_factory=dict)
    scan: Mapping[tuple[int, int], TaskTime] | None = None
    owners: Mapping[int, int] = field(default_factory=dict)
    numa: Mapping[int, list[tuple[frozenset[int], dict[int, int]]]] = field(default_factory=dict)
    denied: tuple[str, ...] = ()


def take(
    files: KernelFiles,
    cpus: Collection[int],
    pids: Collection[int],
    ticks: int,
    *,
    scan: bool = False,
    numa: bool = False,
    clock: int | None = None,
    memo: Memo | None = None,
    homes: Mapping[int, frozenset[int]] | None = None,
    kept: KeptOpen | None = None,
) -> Sample:
    """Read the counters for *cpus* and the threads of *pids*; *scan* every thread; *numa* maps too.

    *clock*: the timestamp to record (tests); else CLOCK_MONOTONIC halfway through the reads.
    *memo*: kept by the caller between samples of the same *cpus*, so /proc/interrupts rows
    that did not change are not parsed again (pinctl.kernel.interrupts.parse_counts). *homes*: each
    watched process's own CPUs (default *cpus*): a thread that may run only there is not asked where
    it last ran (one file fewer a thread, every interval). *kept*: the watched threads' files held
    open between samples (pinctl.kernel.files.KeptOpen); swept of ended threads here."""
    start = time.monotonic_ns()
    denied: list[str] = []
    cpu_times = read_cpu_times(files)
    if not cpu_times:
        denied.append("/proc/stat (no per-CPU counters)")
    irqs = read_interrupts(files, cpus, memo)
    if irqs is None:
        denied.append("/proc/interrupts")
    soft = read_softirqs(files, cpus)
    if soft is None:
        denied.append("/proc/softirqs")
    threads: dict[int, dict[int, ThreadSample]] = {}
    watched = frozenset(cpus)
    for pid in pids:
        mine: dict[int, ThreadSample] = {}
        for tid in task_ids(files, pid):
            got = read_watched(files, pid, tid, ticks, homes.get(pid, watched) if homes else watched, kept)
            if got is not None:
                mine[tid] = ThreadSample(*got)
        threads[pid] = mine
    if kept is not None:
        kept.sweep()
    maps: dict[int, list[tuple[frozenset[int], dict[int, int]]]] = {}
    if numa:
        for pid in pids:
            pages = read_numa_pages(files, pid)
            if pages is None:
                if threads.get(pid):
                    denied.append(f"numa_maps of process {pid}")
            else:
                maps[pid] = pages
    every: dict[tuple[int, int], TaskTime] | None = None
    owners: dict[int, int] = {}
    if scan:
        every = {}
        for pid, tid in all_tasks(files):
            t = read_task(files, pid, tid, ticks)
            if t is not None:
                every[(pid, tid)] = t
                if pid not in owners and (uid := owner(files, pid)) is not None:
                    owners[pid] = uid
    stamp = clock if clock is not None else (start + time.monotonic_ns()) // 2
    return Sample(stamp, cpu_times, irqs, soft, threads, every, owners, maps, tuple(denied))
