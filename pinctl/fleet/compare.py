"""Group reports by shape and name the nodes that differ from the majority (or a reference).

Streaming: :class:`Tally` keeps each distinct shape and each distinct set of problems once,
and per node only its name, in the group of its (shape, problems); a 20,000-node fleet of
one model holds one shape. A node is odd when its shape differs from the reference shape
or when it has a warn or fail finding the reference has not (a port down, NUMA balancing on).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pinctl.fleet.shape import CheckRow, Checks, Fact, Shape, summary


@dataclass(frozen=True)
class Difference:
    """One way a node differs: the fact's key, this node's value, the reference's, and a sentence."""

    key: str
    node: str | None
    reference: str | None
    text: str

    def to_dict(self) -> dict[str, object]:
        return {"key": self.key, "node": self.node, "fleet": self.reference, "text": self.text}


@dataclass(frozen=True)
class Outlier:
    """An odd node: how its shape differs, and its warn/fail findings (``new``: those the reference lacks)."""

    node: str
    differences: tuple[Difference, ...]
    checks: Checks
    new: Checks = ()

    def to_dict(self) -> dict[str, object]:
        return {"node": self.node, "differences": [d.to_dict() for d in self.differences],
                "checks": [{"check": c, "level": lv, "subject": s, "summary": m, "new": (c, lv, s, m) in self.new}
                           for c, lv, s, m in self.checks]}


@dataclass(frozen=True)
class Group:
    """Nodes of one shape: a summary line, how many, a few names, and how it differs from the reference."""

    shape: str
    nodes: int
    hosts: tuple[str, ...]
    reference: bool
    differs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """What ``pinctl fleet`` says: node count, shape groups, odd nodes and the reports it skipped."""

    nodes: int
    reference: str
    groups: tuple[Group, ...]
    outliers: tuple[Outlier, ...]
    skipped: tuple[tuple[str, str], ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "schema": "pinctl.fleet/v1",
            "nodes": self.nodes,
            "reference": self.reference,
            "groups": [{"shape": g.shape, "nodes": g.nodes, "hosts": list(g.hosts), "reference": g.reference,
                        "differs": list(g.differs)}
                       for g in self.groups],
            "outliers": [o.to_dict() for o in self.outliers],
            "skipped": [{"source": s, "reason": r} for s, r in self.skipped],
        }


HOST_SAMPLE = 5  # hosts listed per group in the summary; outliers are named in full


@dataclass
class Tally:
    """Reports counted as they stream in; :meth:`verdict` judges them at the end."""

    shapes: dict[Shape, int] = field(default_factory=dict)
    problem_sets: dict[Checks, int] = field(default_factory=dict)
    groups: dict[tuple[int, int], list[str]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    nodes: int = 0

    def add(self, host: str, shape: Shape, checks: Checks) -> None:
        s = self.shapes.setdefault(shape, len(self.shapes))
        c = self.problem_sets.setdefault(checks, len(self.problem_sets))
        self.groups.setdefault((s, c), []).append(host)
        self.nodes += 1

    def skip(self, source: str, reason: str) -> None:
        self.skipped.append((source, reason))

    def verdict(self, reference: tuple[str, Shape, Checks] | None = None) -> Verdict:
        """Judge against *reference* (name, shape, problems), or the most common shape and problem set."""
        shapes = list(self.shapes)
        problem_sets = list(self.problem_sets)
        by_shape = [0] * len(shapes)
        by_problems = [0] * len(problem_sets)
        for (s, c), hosts in self.groups.items():
            by_shape[s] += len(hosts)
            by_problems[c] += len(hosts)
        if reference is None:
            if not shapes:
                return Verdict(0, "majority", (), (), tuple(self.skipped))
            ref_name = "majority"
            # a tie goes to the greater shape, not the first seen: the verdict must not depend on report order
            ref_shape = shapes[max(range(len(shapes)), key=lambda i: (by_shape[i], shapes[i]))]
            ref_checks = problem_sets[max(range(len(problem_sets)), key=lambda i: (by_problems[i], problem_sets[i]))]
            ref_count = by_shape[shapes.index(ref_shape)]
        else:
            ref_name, ref_shape, ref_checks = reference
            ref_count = by_shape[shapes.index(ref_shape)] if ref_shape in self.shapes else 0
        outliers: list[Outlier] = []
        known = {(c, lv, s) for c, lv, s, _ in ref_checks}
        for (s, c), hosts in sorted(self.groups.items(), key=lambda kv: kv[0]):
            shape, checks = shapes[s], problem_sets[c]
            diffs = () if shape == ref_shape else differences(shape, ref_shape, ref_count, self.nodes,
                                                                 against=None if reference is None else ref_name)
            new = tuple(row for row in checks if row[:3] not in known)
            if diffs or new:
                outliers.extend(Outlier(h, diffs, checks, new) for h in hosts)
        groups = []
        for i, shape in enumerate(shapes):
            hosts = [h for (s, _), hs in self.groups.items() if s == i for h in hs[:HOST_SAMPLE]][:HOST_SAMPLE]
            differs = () if shape == ref_shape else tuple(
                d.text for d in differences(shape, ref_shape, ref_count, self.nodes,
                                            against=None if reference is None else ref_name))
            groups.append(Group(summary(shape), by_shape[i], tuple(hosts), shape == ref_shape, differs))
        groups.sort(key=lambda g: -g.nodes)
        outliers.sort(key=lambda o: o.node)
        return Verdict(self.nodes, ref_name, tuple(groups), tuple(outliers), tuple(self.skipped))


def _index(shape: Shape) -> dict[str, Fact]:
    return {fact[0]: fact for fact in shape}


def differences(shape: Shape, ref: Shape, ref_count: int = 0, total: int = 0, *,
                against: str | None = None) -> tuple[Difference, ...]:
    """How *shape* differs from *ref*, one sentence each, a missing or extra device said once.

    *against* None: the reference is the fleet's majority (``ref_count`` of ``total`` nodes);
    else it is the node so named (``--expect``).
    """
    mine, theirs = _index(shape), _index(ref)
    word = "fleet" if against is None else "reference"
    out: list[Difference] = []
    missing_devices = {f[3] for k, f in theirs.items() if k not in mine and f[3]}
    extra_devices = {f[3] for k, f in mine.items() if k not in theirs and f[3]}
    said: set[str] = set()
    for key, (_, label, ref_value, device) in theirs.items():
        fact = mine.get(key)
        if fact is None:
            if device in missing_devices and device not in said and not any(
                    k2 in mine for k2, f2 in theirs.items() if f2[3] == device):
                said.add(device)
                out.append(Difference(f"device.{device}", None, "present", f"{device} missing, {word} has it"))
            elif device not in said:
                out.append(Difference(key, None, ref_value, f"{label} unknown, {word} {ref_value}".strip()))
            continue
        value = fact[2]
        if value == ref_value:
            continue
        if key.startswith("count."):
            tail = (f"{ref_count} of {total} nodes have {ref_value}" if against is None
                    else f"{against} has {ref_value}")
            out.append(Difference(key, value, ref_value, f"{value} {label}, {tail}"))
        else:
            out.append(Difference(key, value, ref_value, f"{fact[1]} {value}, {word} {ref_value}".strip()))
    for key, (_, label, value, device) in mine.items():
        if key in theirs:
            continue
        if device and device in extra_devices:
            if device not in said:
                said.add(device)
                out.append(Difference(f"device.{device}", "present", None, f"{device} extra, {word} has none"))
        elif not device:
            out.append(Difference(key, value, None, f"{label} {value}, {word} unknown".strip()))
    # counts and the NPS mode first: "3 GPUs" explains the rest
    return tuple(sorted(out, key=lambda d: 0 if d.key.startswith("count.") or d.key == "numa.nps" else 1))


def shape_differences(shape: Shape, ref: Shape, name: str) -> tuple[Difference, ...]:
    """``doctor --expect``: how this node differs from the reference node *name*."""
    return differences(shape, ref, against=name)


def new_problems(checks: Iterable[CheckRow], ref: Iterable[CheckRow]) -> tuple[CheckRow, ...]:
    """The warn/fail findings in *checks* that the reference does not have."""
    known = {(c, lv, s) for c, lv, s, _ in ref}
    return tuple(row for row in checks if (row[0], row[1], row[2]) not in known)
