"""Time lost per node, from ``watch --json`` and ``noise --json`` reports: which node is the slow one.

A synchronized job waits for its slowest rank, so the node to name is the one whose ranks (watch)
or CPUs (noise) lose the most time. Each report gives one figure: a watch interval its worst
rank's (or CPU set's) foreign CPU share, a noise run its worst CPU's lost share; the plan's
housekeeping and idle CPUs are left out (noise there is where it should be). A node's figure is
the mean of its reports' (one per interval for watch). A node stands out when it loses at least
FLOOR_PCT and twice the fleet's lower median of the same kind (watch and noise figures are not
compared with each other): the majority of a healthy fleet is quiet.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

WATCH = "pinctl.watch/v1"
NOISE = "pinctl.noise/v1"
SCHEMAS = (WATCH, NOISE)
FLOOR_PCT = 2.0
SLOWEST = 5
QUIET_CLASSES = ("housekeeping", "idle")


def figure(data: Mapping[str, Any]) -> tuple[str, float, str] | None:
    """(kind, percent lost, what lost it) of one report; None when it holds no figure."""
    if data.get("schema") == WATCH:
        targets = [
            t
            for t in data.get("targets") or []
            if isinstance(t, Mapping) and t.get("kind") != "class" and isinstance(t.get("foreign_cpu_pct"), int | float)
        ]
        if not targets:
            return None
        worst = max(targets, key=lambda t: float(t["foreign_cpu_pct"]))
        name = str(worst.get("name"))
        subject = name if worst.get("kind") == "cpus" else f"{name} on CPUs {worst.get('cpulist')}"
        return "watch", float(worst["foreign_cpu_pct"]), subject
    cpus = [
        c
        for c in data.get("cpus") or []
        if isinstance(c, Mapping)
        and not c.get("error")
        and c.get("class") not in QUIET_CLASSES
        and isinstance(c.get("lost_pct"), int | float)
    ]
    if not cpus:
        return None
    worst = max(cpus, key=lambda c: float(c["lost_pct"]))
    return "noise", float(worst["lost_pct"]), f"CPU {worst.get('cpu')}"


def check(data: Mapping[str, Any]) -> str | None:
    """Why a watch or noise report cannot be used, or None."""
    key = "targets" if data.get("schema") == WATCH else "cpus"
    if not isinstance(data.get(key), list):
        return f"not a {data.get('schema')} report: no {key}"
    return None


@dataclass(frozen=True)
class Loss:
    """A node's time lost: mean and worst percent over its reports, and what lost the most."""

    node: str
    kind: str
    pct: float
    worst_pct: float
    subject: str
    reports: int

    def to_dict(self) -> dict[str, object]:
        return {
            "node": self.node,
            "kind": self.kind,
            "lost_pct": self.pct,
            "worst_pct": self.worst_pct,
            "subject": self.subject,
            "reports": self.reports,
        }


@dataclass(frozen=True)
class LostVerdict:
    """Nodes with a figure, the fleet's lower median, the slowest few, and those that stand out."""

    nodes: int
    median_pct: float
    slowest: tuple[Loss, ...]
    standing_out: tuple[str, ...]
    medians: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "nodes": self.nodes,
            "median_pct": self.median_pct,
            "slowest": [s.to_dict() for s in self.slowest],
            "standing_out": list(self.standing_out),
            "median_by_kind": dict(self.medians),
        }


@dataclass
class LostTally:
    """Per (node, kind): the sum, count and worst of its figures (a few numbers a node)."""

    per: dict[tuple[str, str], list[Any]] = field(default_factory=dict)

    def add(self, host: str, data: Mapping[str, Any]) -> None:
        found = figure(data)
        if found is None:
            return
        kind, pct, subject = found
        acc = self.per.setdefault((host, kind), [0.0, 0, -1.0, ""])
        acc[0] += pct
        acc[1] += 1
        if pct > acc[2]:
            acc[2], acc[3] = pct, subject

    def verdict(self) -> LostVerdict | None:
        if not self.per:
            return None
        losses = [Loss(h, k, round(s / n, 1), w, subj, n) for (h, k), (s, n, w, subj) in self.per.items()]
        # Each kind against its own kind's median: a rank's foreign share (watch) and a probe's lost
        # share (noise) are different measures, and a node with both would count twice in one median.
        medians = {
            k: statistics.median_low([x.pct for x in losses if x.kind == k]) for k in sorted({x.kind for x in losses})
        }
        losses.sort(key=lambda x: (-x.pct, x.node))
        out = tuple(sorted({x.node for x in losses if x.pct >= max(FLOOR_PCT, 2 * medians[x.kind])}))
        return LostVerdict(
            len({x.node for x in losses}), medians[losses[0].kind], tuple(losses[:SLOWEST]), out, medians
        )
