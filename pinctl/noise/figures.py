"""Per-target figures from two samples: the arithmetic of ``watch`` and ``noise``, and nothing else.

Foreign time is exact where the kernel's counters are: the target CPUs' busy ticks in /proc/stat
(user, nice, system, irq, softirq) less the run time of the target's own threads (schedstat, ns).
Offenders need two scans of every thread; a thread counts on a target when it was last seen on
one of its CPUs at either scan (a thread that hopped in and out between scans is missed, one that
hopped out is counted whole: the figure names who, the foreign percentage says how much).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pinctl.kernel.counters import Sample

TOP_SOURCES = 8
TOP_OFFENDERS = 10
MIN_OFFENDER_PCT = 0.5  # below this an offender is rounding, not a neighbour ...
MIN_WAKEUPS = 50.0  # ... unless it is put on the CPUs this often a second (a frequent waker)


@dataclass(frozen=True)
class Target:
    """What is watched: a set of CPUs and the processes that own them (none for ``--cpus``).

    ``kind``: rank, process, cpus or class (a plan's housekeeping/idle CPUs); ``mems``: the
    memory nodes the plan gives it (judges mappings with the default policy)."""

    name: str
    kind: str
    cpus: frozenset[int]
    pids: tuple[int, ...] = ()
    mems: frozenset[int] = frozenset()
    local_rank: int | None = None


@dataclass(frozen=True)
class Offender:
    """A process whose threads ran on the target's CPUs: its share of those CPUs' time, and how
    often a second its threads were put on a CPU (None where schedstat is not kept)."""

    pid: int
    comm: str
    cpu_pct: float
    uid: int | None
    threads: int
    wakeups_per_s: float | None = None


@dataclass(frozen=True)
class Figures:
    """One target over one interval. ``offenders`` is None when no scan covered the interval."""

    target: Target
    seconds: float
    foreign_cpu_pct: float
    own_cpu_pct: float
    per_cpu_busy_pct: Mapping[int, float]
    irq_per_s: float | None
    irq_sources: tuple[tuple[str, float], ...]
    softirq_per_s: Mapping[str, float] | None
    steal_pct: float
    involuntary_switches_per_s: float | None
    outside: tuple[tuple[int, int], ...]
    remote_memory_pct: float | None
    offenders: tuple[Offender, ...] | None


Rows = list[tuple[str, dict[int, int]]]


def changed_rows(
    prev: Mapping[str, Mapping[int, int]] | None, cur: Mapping[str, Mapping[int, int]] | None
) -> Rows | None:
    """(source, {CPU: events since *prev*}) for the counts that moved: a row the reader kept (the same
    object, its text unchanged) did not, and within a row only the CPUs whose count changed are
    compared (a set difference), so a quiet device queue costs nothing and a busy one little."""
    if prev is None or cur is None:
        return None
    out: Rows = []
    for name, counts in cur.items():
        before = prev.get(name)
        if before is None or before is counts:
            continue
        moved = {c: v - before.get(c, v) for c, v in counts.items() - before.items()}
        out.append((name, {c: d for c, d in moved.items() if d > 0}))  # backwards (a CPU replugged) is 0
    return out


def _per_s(rows: Rows | None, cpus: frozenset[int], seconds: float) -> dict[str, float] | None:
    """Per source, events per second on *cpus*."""
    if rows is None:
        return None
    out: dict[str, float] = {}
    for name, moved in rows:
        n = sum(d for c, d in moved.items() if c in cpus)
        if n:
            out[name] = n / seconds
    return out


def own_run_ns(prev: Sample, cur: Sample, pids: tuple[int, ...]) -> tuple[int, list[tuple[int, int]]]:
    """The run time of *pids*' threads between the samples, and (tid, cpu) of those that ran."""
    total = 0
    ran: list[tuple[int, int]] = []
    for pid in pids:
        before = prev.threads.get(pid, {})
        for tid, now in cur.threads.get(pid, {}).items():
            was = before.get(tid)
            delta = now.time.run_ns - (was.time.run_ns if was is not None else now.time.run_ns)
            if delta > 0:
                total += delta
                ran.append((tid, now.time.processor))
    return total, ran


def offenders(
    prev: Sample, cur: Sample, target: Target, capacity_ns: float, foreign_ns: float | None = None
) -> tuple[Offender, ...] | None:
    """Processes (not the target's) that ran on the target's CPUs between two scans, biggest first.

    A thread seen there at both scans is counted whole though it may have run elsewhere between:
    where the shares so found add up to more than *foreign_ns* (the counters' exact total), they
    are scaled down to it, so the named shares never exceed the foreign time they explain."""
    if prev.scan is None or cur.scan is None or capacity_ns <= 0:
        return None
    mine = set(target.pids)
    per: dict[int, list[int]] = {}
    seconds = max((cur.t_ns - prev.t_ns) / 1e9, 1e-9)
    for key, now in cur.scan.items():
        pid = key[0]
        was = prev.scan.get(key)
        if pid in mine or was is None:
            continue
        # Half its time to each end of the interval it was seen on the target's CPUs: a thread that
        # hopped between two watched CPUs is split between them, not counted whole on both.
        weight = (now.processor in target.cpus) + (was.processor in target.cpus)
        delta = now.run_ns - was.run_ns
        if weight and delta > 0:
            acc = per.setdefault(pid, [0, 0, -1])
            acc[0] += delta * weight // 2
            acc[1] += 1
            if now.slices is not None and was.slices is not None:
                acc[2] = max(acc[2], 0) + (now.slices - was.slices) * weight // 2
    named = sum(acc[0] for acc in per.values())
    scale = foreign_ns / named if foreign_ns is not None and named > foreign_ns else 1.0
    out = []
    for pid, (ns, threads, slices) in per.items():
        pct = 100.0 * ns * scale / capacity_ns
        wakeups = round(slices / seconds, 1) if slices >= 0 else None
        if pct >= MIN_OFFENDER_PCT or (wakeups or 0) >= MIN_WAKEUPS:
            lead = cur.scan.get((pid, pid))
            comm = lead.comm if lead is not None else next(t.comm for (p, _), t in cur.scan.items() if p == pid)
            out.append(Offender(pid, comm, round(pct, 1), cur.owners.get(pid), threads, wakeups))
    out.sort(key=lambda o: (-o.cpu_pct, o.pid))
    return tuple(out[:TOP_OFFENDERS])


def remote_memory_pct(sample: Sample, target: Target) -> float | None:
    """Share of the target's mapped pages on nodes its policy does not name (the plan's nodes for
    mappings with no policy of their own); None when numa_maps was not read or says nothing."""
    total = remote = 0
    seen = False
    for pid in target.pids:
        for nodes, pages in sample.numa.get(pid, ()):
            seen = True
            allowed = nodes or target.mems
            if not allowed:
                continue
            for node, n in pages.items():
                total += n
                if node not in allowed:
                    remote += n
    if not seen or total == 0:
        return None
    return round(100.0 * remote / total, 1)


def compute_all(prev: Sample, cur: Sample, targets: list[Target], ticks: int) -> list[Figures]:
    """Every target's figures, the rows that moved found once for all of them."""
    rows = (changed_rows(prev.irqs, cur.irqs), changed_rows(prev.softirqs, cur.softirqs))
    return [compute(prev, cur, t, ticks, rows=rows) for t in targets]


def compute(
    prev: Sample,
    cur: Sample,
    target: Target,
    ticks: int,
    *,
    own_extra_ns: int = 0,
    rows: tuple[Rows | None, Rows | None] | None = None,
) -> Figures:
    """*target*'s figures between *prev* and *cur*. *own_extra_ns*: run time to count as the
    target's own beside its threads' (the probe's children, which report their own); *rows*:
    the interrupt and softirq rows that moved, when already found (:func:`compute_all`)."""
    if rows is None:
        rows = (changed_rows(prev.irqs, cur.irqs), changed_rows(prev.softirqs, cur.softirqs))
    seconds = max((cur.t_ns - prev.t_ns) / 1e9, 1e-9)
    cpus = frozenset(c for c in target.cpus if c in cur.cpus and c in prev.cpus)
    capacity_ns = len(cpus) * seconds * 1e9
    tick_ns = 1e9 / ticks
    busy = steal = 0
    per_cpu: dict[int, float] = {}
    for c in sorted(cpus):
        b = max(0, cur.cpus[c].busy - prev.cpus[c].busy)
        busy += b
        steal += max(0, cur.cpus[c].steal - prev.cpus[c].steal)
        per_cpu[c] = round(min(100.0, 100.0 * b * tick_ns / (seconds * 1e9)), 1)
    own_ns, ran = own_run_ns(prev, cur, target.pids)
    own_ns += own_extra_ns
    foreign = max(0.0, busy * tick_ns - own_ns)
    pct = (lambda ns: round(min(100.0, 100.0 * ns / capacity_ns), 1)) if capacity_ns else (lambda ns: 0.0)
    irq = _per_s(rows[0], cpus, seconds)
    sources = tuple(sorted(((n, round(v, 1)) for n, v in (irq or {}).items() if v > 0), key=lambda s: -s[1]))
    soft = _per_s(rows[1], cpus, seconds)
    switches = None
    if target.pids:
        n = 0
        for pid in target.pids:
            before = prev.threads.get(pid, {})
            for tid, now in cur.threads.get(pid, {}).items():
                was = before.get(tid)
                if now.involuntary is not None and was is not None and was.involuntary is not None:
                    n += max(0, now.involuntary - was.involuntary)
        switches = round(n / seconds, 1)
    return Figures(
        target=target,
        seconds=round(seconds, 3),
        foreign_cpu_pct=pct(foreign),
        own_cpu_pct=pct(own_ns),
        per_cpu_busy_pct=per_cpu,
        irq_per_s=None if irq is None else round(sum(irq.values()), 1),
        irq_sources=sources[:TOP_SOURCES],
        softirq_per_s=None if soft is None else {k: round(v, 1) for k, v in soft.items() if v > 0},
        steal_pct=pct(steal * tick_ns),
        involuntary_switches_per_s=switches,
        outside=tuple(sorted((tid, cpu) for tid, cpu in ran if cpu >= 0 and cpu not in target.cpus)),
        remote_memory_pct=remote_memory_pct(cur, target) if cur.numa else None,
        offenders=offenders(prev, cur, target, capacity_ns, foreign),
    )
