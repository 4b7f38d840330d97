"""The JSON documents of ``watch`` (pinctl.watch/v1, one per interval) and ``noise`` (pinctl.noise/v1),
and the bounds that make either exit 1 (for scripts and health checks)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pinctl.cpuset import format_list
from pinctl.noise.figures import Figures, Offender

WATCH_SCHEMA = "pinctl.watch/v1"
NOISE_SCHEMA = "pinctl.noise/v1"
NOISY_PCT = 2.0  # a CPU losing less than this to others is quiet: timer ticks and rounding
NOTABLE_PCT = 5.0  # foreign time worth naming offenders for when no bound is given
NOTABLE_IRQ_PER_CPU = 1000.0  # ~4x a 250 Hz tick: something wakes the CPUs often (hrtimers fire as LOC)


@dataclass(frozen=True)
class Bounds:
    """The user's limits; None: not checked."""

    max_foreign: float | None = None
    max_irq: float | None = None
    max_steal: float | None = None
    max_lost: float | None = None

    @property
    def scan_at(self) -> float:
        """Foreign time past which offenders are worth a scan of every thread (the cost rule)."""
        return min(NOTABLE_PCT, self.max_foreign) if self.max_foreign is not None else NOTABLE_PCT

    def notable(self, f: Figures) -> bool:
        """Whether *f* is worth naming who: foreign time past ``scan_at``, a bound crossed, or
        interrupts past NOTABLE_IRQ_PER_CPU on each CPU (a frequent waker takes little time)."""
        per_cpu = (f.irq_per_s or 0) / max(1, len(f.target.cpus))
        return f.foreign_cpu_pct >= self.scan_at or per_cpu >= NOTABLE_IRQ_PER_CPU or bool(crossed(f, self))


def crossed(f: Figures, b: Bounds) -> list[str]:
    """One sentence per bound *f* crosses."""
    out = []
    name = f.target.name
    if b.max_foreign is not None and f.foreign_cpu_pct > b.max_foreign:
        out.append(f"{name}: other threads took {f.foreign_cpu_pct:g}% of its CPUs (bound {b.max_foreign:g}%)")
    if b.max_irq is not None and f.irq_per_s is not None and f.irq_per_s > b.max_irq:
        out.append(f"{name}: {f.irq_per_s:g} interrupts/s on its CPUs (bound {b.max_irq:g})")
    if b.max_steal is not None and f.steal_pct > b.max_steal:
        out.append(f"{name}: the hypervisor stole {f.steal_pct:g}% (bound {b.max_steal:g}%)")
    return out


def _offender(o: Offender, users: Mapping[int, str]) -> dict[str, Any]:
    user = users.get(o.uid) if o.uid is not None else None
    return {
        "pid": o.pid,
        "comm": o.comm,
        "cpu_pct": o.cpu_pct,
        "uid": o.uid,
        "user": user,
        "threads": o.threads,
        "wakeups_per_s": o.wakeups_per_s,
    }


def target_dict(f: Figures, users: Mapping[int, str]) -> dict[str, Any]:
    t = f.target
    return {
        "name": t.name,
        "kind": t.kind,
        "cpus": sorted(t.cpus),
        "cpulist": format_list(t.cpus),
        "pids": list(t.pids),
        "local_rank": t.local_rank,
        "foreign_cpu_pct": f.foreign_cpu_pct,
        "own_cpu_pct": f.own_cpu_pct,
        "per_cpu_busy_pct": {str(c): v for c, v in f.per_cpu_busy_pct.items()},
        "offenders": None if f.offenders is None else [_offender(o, users) for o in f.offenders],
        "irq_per_s": f.irq_per_s,
        "irq_sources": [{"name": n, "per_s": v} for n, v in f.irq_sources],
        "softirq_per_s": None if f.softirq_per_s is None else dict(f.softirq_per_s),
        "steal_pct": f.steal_pct,
        "involuntary_switches_per_s": f.involuntary_switches_per_s,
        "outside_cpus": [{"tid": tid, "cpu": cpu} for tid, cpu in f.outside],
        "remote_memory_pct": f.remote_memory_pct,
    }


def watch_doc(
    hostname: str,
    interval: int,
    time_s: float,
    figures: Sequence[Figures],
    users: Mapping[int, str],
    *,
    bounds: Bounds,
    notes: Sequence[str] = (),
    denied: Sequence[str] = (),
    gpus: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """One interval of ``watch --json``."""
    lines = [line for f in figures for line in crossed(f, bounds)]
    return {
        "schema": WATCH_SCHEMA,
        "hostname": hostname,
        "interval": interval,
        "time": round(time_s, 3),
        "seconds": figures[0].seconds if figures else None,
        "targets": [target_dict(f, users) for f in figures],
        "gpus": list(gpus),
        "crossed": lines,
        "ok": not lines,
        "notes": list(notes),
        "denied": list(denied),
    }


def noise_doc(
    hostname: str,
    method: str,
    method_note: str | None,
    seconds: float,
    cpus: Sequence[dict[str, Any]],
    *,
    bounds: Bounds,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """``noise --json``: per CPU (each a probe result joined with ``target_dict`` of its counters),
    the noisiest CPUs with their sources, and the bounds crossed."""
    lines = []
    if bounds.max_lost is not None:
        lines += [
            f"CPU {c['cpu']}: lost {c['lost_pct']:g}% of its time (bound {bounds.max_lost:g}%)"
            for c in cpus
            if c["lost_pct"] > bounds.max_lost
        ]
    if bounds.max_foreign is not None:
        lines += [
            f"CPU {c['cpu']}: other threads took {c['foreign_cpu_pct']:g}% (bound {bounds.max_foreign:g}%)"
            for c in cpus
            if (c.get("foreign_cpu_pct") or 0) > bounds.max_foreign
        ]
    return {
        "schema": NOISE_SCHEMA,
        "hostname": hostname,
        "method": method,
        "method_note": method_note,
        "seconds": seconds,
        "cpus": list(cpus),
        "noisiest": noisiest(cpus),
        "crossed": lines,
        "ok": not lines,
        "notes": list(notes),
    }


def noisiest(cpus: Sequence[dict[str, Any]], top: int = 3) -> list[dict[str, Any]]:
    """The CPUs losing most, past NOISY_PCT, each with what ran or interrupted there."""
    loud = sorted((c for c in cpus if c["lost_pct"] >= NOISY_PCT), key=lambda c: (-c["lost_pct"], c["cpu"]))
    out = []
    for c in loud[:top]:
        found = c.get("offenders") or []
        sources = [f"{o['comm']} (pid {o['pid']}, {o['cpu_pct']:g}%)" for o in found]
        if (rest := unnamed_pct(c.get("foreign_cpu_pct"), found)) is not None:
            sources.append(f"{rest:g}% not named (threads that ended or moved between the scans)")
        sources += [f"irq {s['name']} ({s['per_s']:g}/s)" for s in (c.get("irq_sources") or [])[:3]]
        out.append({"cpu": c["cpu"], "lost_pct": c["lost_pct"], "class": c.get("class"), "sources": sources})
    return out


def unnamed_pct(foreign: float | None, offenders: Sequence[Mapping[str, Any]] | None) -> float | None:
    """The foreign share the named offenders do not explain, when it is NOISY_PCT or more: threads
    that lived and died between two scans, or ran there while seen elsewhere at both (a list of
    names that covers 1% of a 90% foreign CPU must not read as the whole story)."""
    if foreign is None or offenders is None:
        return None
    rest = round(foreign - sum(float(o["cpu_pct"]) for o in offenders), 1)
    return rest if rest >= NOISY_PCT else None
