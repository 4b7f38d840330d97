"""CPU-time counters: /proc/stat per CPU, and each thread's run time, CPU and context switches.

``watch`` and ``noise`` measure time lost on a CPU as the difference of two readings of these
counters (proc(5)): /proc/stat's per-CPU columns are in clock ticks (USER_HZ, 100 a second on
every common build), a thread's ``schedstat`` run time in nanoseconds (Documentation/scheduler/
sched-stats.rst), its ``stat`` utime/stime in ticks (the fallback where schedstat is off).
Pure parsers plus thin reads through :class:`KernelFiles`, so tests feed generated trees.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pinctl.cpuset import decimal, parse_list
from pinctl.errors import UsageError
from pinctl.kernel.files import KeptOpen, KernelFiles
from pinctl.kernel.proc import process_id

STAT = "/proc/stat"
# /proc/stat cpuN columns (proc(5)): user nice system idle iowait irq softirq steal guest guest_nice.
# guest time is already inside user (kernel/sched/cputime.c), so it is not added again.
_BUSY = (0, 1, 2, 5, 6)  # user, nice, system, irq, softirq: time something other than idle ran
_STEAL = 7


def clock_ticks() -> int:
    """USER_HZ, the unit of /proc/stat and of a thread's utime/stime."""
    try:
        return os.sysconf("SC_CLK_TCK") or 100
    except (ValueError, OSError):
        return 100


@dataclass(frozen=True)
class CpuTime:
    """One CPU's cumulative ticks: busy (user+nice+system+irq+softirq), idle (idle+iowait),
    irq (irq+softirq: the part interrupts took) and steal (what the hypervisor took)."""

    busy: int
    idle: int
    irq: int
    steal: int


def parse_stat(text: str) -> dict[int, CpuTime]:
    """The ``cpuN`` lines of /proc/stat; an offline CPU has no line and is left out."""
    out: dict[int, CpuTime] = {}
    for line in text.splitlines():
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        fields = line.split()
        cpu = decimal(fields[0][3:], limit=6)
        if cpu is None or len(fields) < 5:
            continue
        try:
            v = [int(x) for x in fields[1:11]] + [0] * (10 - min(10, len(fields) - 1))
        except ValueError:
            continue
        out[cpu] = CpuTime(busy=sum(v[i] for i in _BUSY), idle=v[3] + v[4], irq=v[5] + v[6], steal=v[_STEAL])
    return out


def read_cpu_times(files: KernelFiles) -> dict[int, CpuTime]:
    text = files.read(STAT)
    return {} if text is None else parse_stat(text)


@dataclass(frozen=True)
class TaskTime:
    """A thread's cumulative run time (ns), the CPU it last ran on, its name and state.

    ``run_ns`` comes from schedstat where the kernel keeps it, else from utime+stime ticks
    (``exact`` False: 10 ms steps); ``slices`` how many times it was put on a CPU (schedstat's
    third field: a thread that wakes often has many), None without schedstat."""

    comm: str
    run_ns: int
    processor: int
    exact: bool
    kernel_thread: bool = False
    slices: int | None = None


# include/linux/sched.h: PF_KTHREAD, in the 9th field of stat.
_PF_KTHREAD = 0x00200000


def parse_task_stat(text: str, ticks: int) -> TaskTime | None:
    """/proc/PID/task/TID/stat: comm, utime (14), stime (15), flags (9), processor (39), proc(5)."""
    left, sep, rest = text.rpartition(")")
    if not sep:
        return None
    comm = left.partition("(")[2]
    f = rest.split()
    # rest starts at field 3 (state): field N is f[N - 3]
    if len(f) < 37:
        return None
    try:
        utime, stime, cpu, flags = int(f[11]), int(f[12]), int(f[36]), int(f[6])
    except ValueError:
        return None
    return TaskTime(comm, (utime + stime) * (1_000_000_000 // ticks), cpu, False, bool(flags & _PF_KTHREAD))


def read_task(files: KernelFiles, pid: int, tid: int, ticks: int, *, schedstat: bool = True) -> TaskTime | None:
    """One thread's times; None when it is gone. *schedstat*: prefer the nanosecond counter."""
    base = f"/proc/{pid}/task/{tid}"
    stat = files.read_quick(f"{base}/stat")
    if stat is None:
        return None
    task = parse_task_stat(stat, ticks)
    if task is None or not schedstat:
        return task
    fields = (files.read_quick(f"{base}/schedstat") or "").split()
    first = decimal(fields[0], limit=20) if fields else None
    if first is None:
        return task
    slices = decimal(fields[2], limit=20) if len(fields) > 2 else None
    return TaskTime(task.comm, first, task.processor, True, task.kernel_thread, slices)


def _status_field(text: str, key: str) -> str | None:
    at = text.find(key)
    return None if at < 0 else text[at + len(key) :].split("\n", 1)[0].strip()


def read_watched(
    files: KernelFiles, pid: int, tid: int, ticks: int, cpus: frozenset[int], kept: KeptOpen | None = None
) -> tuple[TaskTime, int | None] | None:
    """A watched thread's times and involuntary switches, read every interval, so as few files as
    it takes: status (name, allowed CPUs, switches) and schedstat; stat only when the thread may
    run outside *cpus* (to see where it last ran; ``processor`` is -1 when it cannot be outside).
    *kept*: the files held open between intervals (pinctl.kernel.files.KeptOpen)."""
    read = kept.read if kept is not None else files.read_quick
    status = read(f"/proc/{pid}/task/{tid}/status")
    if status is None or (_status_field(status, "State:") or "").startswith("Z"):  # a zombie has ended
        return None
    switches = _status_field(status, "nonvoluntary_ctxt_switches:")
    involuntary = decimal(switches, limit=20) if switches else None
    allowed = _status_field(status, "Cpus_allowed_list:") or ""
    try:
        inside = bool(allowed) and parse_list(allowed) <= cpus
    except UsageError:
        inside = False
    fields = (read(f"/proc/{pid}/task/{tid}/schedstat") or "").split()
    run = decimal(fields[0], limit=20) if fields else None
    if not inside or run is None:
        task = read_task(files, pid, tid, ticks)
        return None if task is None else (task, involuntary)
    slices = decimal(fields[2], limit=20) if len(fields) > 2 else None
    return TaskTime(_status_field(status, "Name:") or "", run, -1, True, False, slices), involuntary


def involuntary_switches(files: KernelFiles, pid: int, tid: int) -> int | None:
    """``nonvoluntary_ctxt_switches`` of a thread's status: times it was pushed off its CPU."""
    text = files.read_quick(f"/proc/{pid}/task/{tid}/status")
    if text is None:
        return None
    at = text.find("nonvoluntary_ctxt_switches:")
    if at < 0:
        return None
    return decimal(text[at + 27 :].split("\n", 1)[0].strip(), limit=20)


def owner(files: KernelFiles, pid: int) -> int | None:
    """The user id owning /proc/PID (its real uid as ls shows it); None when gone."""
    try:
        return os.stat(files.path(f"/proc/{pid}")).st_uid
    except OSError:
        return None


def all_tasks(files: KernelFiles) -> list[tuple[int, int]]:
    """(pid, tid) of every thread on the node: the costly scan, done only to name offenders."""
    out: list[tuple[int, int]] = []
    for entry in files.listdir("/proc"):
        pid = process_id(entry)
        if pid is None:
            continue
        out.extend((pid, tid) for t in files.listdir(f"/proc/{pid}/task") if (tid := process_id(t)) is not None)
    return out
