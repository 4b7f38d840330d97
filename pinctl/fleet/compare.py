"""Group reports by shape and name the nodes that differ from the majority (or a reference).

Streaming: :class:`Tally` keeps each distinct shape and each distinct set of problems once,
and per node only its name, in the group of its (shape, problems); a 20,000-node fleet of
one model holds one shape. A node is odd when its shape differs from the reference shape
or when it has a warn or fail finding the reference has not (a port down, NUMA balancing on).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pinctl.fleet.lost import LostTally, LostVerdict
from pinctl.fleet.shape import CheckRow, Checks, Fact, Shape, counted, summary
from pinctl.words import count, verb


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
        return {
            "node": self.node,
            "differences": [d.to_dict() for d in self.differences],
            "checks": [
                {"check": c, "level": lv, "subject": s, "summary": m, "new": (c, lv, s, m) in self.new}
                for c, lv, s, m in self.checks
            ],
        }


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
    # Host names in more than one report: a node reported twice, or copied files, counts twice
    # toward the majority. Against --expect only the names kept (odd nodes, a sample) are seen.
    duplicates: tuple[str, ...] = ()
    lost: LostVerdict | None = None  # from watch and noise reports: the node that loses the most time

    def to_dict(self) -> dict[str, object]:
        return {
            "schema": "pinctl.fleet/v1",
            "nodes": self.nodes,
            "reference": self.reference,
            "groups": [
                {
                    "shape": g.shape,
                    "nodes": g.nodes,
                    "hosts": list(g.hosts),
                    "reference": g.reference,
                    "differs": list(g.differs),
                }
                for g in self.groups
            ],
            "outliers": [o.to_dict() for o in self.outliers],
            "skipped": [{"source": s, "reason": r} for s, r in self.skipped],
            "duplicates": list(self.duplicates),
            "time_lost": None if self.lost is None else self.lost.to_dict(),
        }


HOST_SAMPLE = 5  # hosts listed per group in the summary; outliers are named in full
Reference = tuple[str, Shape, Checks]  # (name, shape, problems) of the --expect node


@dataclass
class _Members:
    count: int = 0
    hosts: list[str] = field(default_factory=list)


@dataclass
class Tally:
    """Reports counted as they stream in; :meth:`verdict` judges them at the end.

    With a *reference* known from the start (``--expect``), a node just like it is only
    counted (its name kept among the first few for the summary), so memory follows the
    shapes and the odd nodes. Against the majority, which is known only at the end, each
    node's name is kept in its group (tens of bytes a node; its report is not).
    """

    reference: Reference | None = None
    shapes: dict[Shape, int] = field(default_factory=dict)
    problem_sets: dict[Checks, int] = field(default_factory=dict)
    groups: dict[tuple[int, int], _Members] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    nodes: int = 0
    lost: LostTally = field(default_factory=LostTally)

    def add(self, host: str, shape: Shape, checks: Checks) -> None:
        s = self.shapes.setdefault(shape, len(self.shapes))
        c = self.problem_sets.setdefault(checks, len(self.problem_sets))
        members = self.groups.setdefault((s, c), _Members())
        members.count += 1
        self.nodes += 1
        ref = self.reference
        if ref is None or len(members.hosts) < HOST_SAMPLE or shape != ref[1] or new_problems(checks, ref[2]):
            members.hosts.append(host)

    def skip(self, source: str, reason: str) -> None:
        self.skipped.append((source, reason))

    def _majority(self) -> Reference:
        """The most common shape and problem set; a tie goes to the greater one, never to the first seen,
        so the verdict does not depend on the order of the reports."""
        by_shape: dict[Shape, int] = {}
        by_problems: dict[Checks, int] = {}
        shapes, problem_sets = list(self.shapes), list(self.problem_sets)
        for (s, c), members in self.groups.items():
            by_shape[shapes[s]] = by_shape.get(shapes[s], 0) + members.count
            by_problems[problem_sets[c]] = by_problems.get(problem_sets[c], 0) + members.count
        shape = max(by_shape, key=lambda k: (by_shape[k], k))
        checks = max(by_problems, key=lambda k: (by_problems[k], k))
        return "majority", shape, checks

    def verdict(self) -> Verdict:
        """Judge every node against the reference, or the majority when there is none."""
        if not self.shapes:
            return Verdict(
                0,
                self.reference[0] if self.reference else "majority",
                (),
                (),
                tuple(self.skipped),
                lost=self.lost.verdict(),
            )
        ref_name, ref_shape, ref_checks = self.reference or self._majority()
        against = None if self.reference is None else ref_name
        shapes, problem_sets = list(self.shapes), list(self.problem_sets)
        by_shape = [0] * len(shapes)
        for (s, _), members in self.groups.items():
            by_shape[s] += members.count
        ref_count = by_shape[self.shapes[ref_shape]] if ref_shape in self.shapes else 0
        said = [
            () if shape == ref_shape else differences(shape, ref_shape, ref_count, self.nodes, against=against)
            for shape in shapes
        ]
        outliers: list[Outlier] = []
        for (s, c), members in self.groups.items():
            new = new_problems(problem_sets[c], ref_checks)
            if said[s] or new:
                outliers.extend(Outlier(h, said[s], problem_sets[c], new) for h in members.hosts)
        groups = []
        for i, shape in enumerate(shapes):
            hosts = [h for (s, _), m in self.groups.items() if s == i for h in m.hosts[:HOST_SAMPLE]][:HOST_SAMPLE]
            groups.append(
                Group(summary(shape), by_shape[i], tuple(hosts), shape == ref_shape, tuple(d.text for d in said[i]))
            )
        groups.sort(key=lambda g: (-g.nodes, g.shape, g.hosts))
        outliers.sort(key=lambda o: o.node)
        seen: dict[str, int] = {}
        for m in self.groups.values():
            for h in m.hosts:
                seen[h] = seen.get(h, 0) + 1
        twice = tuple(sorted(h for h, n in seen.items() if n > 1))
        return Verdict(
            self.nodes, ref_name, tuple(groups), tuple(outliers), tuple(self.skipped), twice, self.lost.verdict()
        )


def _index(shape: Shape) -> dict[str, Fact]:
    return {fact[0]: fact for fact in shape}


def _devices(facts: dict[str, Fact]) -> set[str]:
    return {f[3] for f in facts.values() if f[3]}


def differences(
    shape: Shape, ref: Shape, ref_count: int = 0, total: int = 0, *, against: str | None = None
) -> tuple[Difference, ...]:
    """How *shape* differs from *ref*, one sentence each, a missing or extra device said once.

    *against* None: the reference is the fleet's majority (``ref_count`` of ``total`` nodes);
    else it is the node so named (``--expect``).
    """
    mine, theirs = _index(shape), _index(ref)
    word = "fleet" if against is None else "reference"
    out: list[Difference] = []
    if ("topology" in mine) != ("topology" in theirs):
        # one side has no hardware facts: say so once, and compare only what both have (kernel settings)
        if "topology" in mine:
            out.append(
                Difference(
                    "topology", mine["topology"][2], "known", f"topology unknown (discovery failed), {word} known"
                )
            )
        else:
            out.append(Difference("topology", "known", theirs["topology"][2], f"topology known, {word} unknown"))
        mine = {k: f for k, f in mine.items() if k.startswith("kernel.")}
        theirs = {k: f for k, f in theirs.items() if k.startswith("kernel.")}
    # a device none of whose facts the other side has is missing (or extra) as a whole: said once
    gone = _devices(theirs) - _devices({k: f for k, f in theirs.items() if k in mine})
    extra = _devices(mine) - _devices({k: f for k, f in mine.items() if k in theirs})
    said: set[str] = set()
    for key, (_, label, ref_value, device) in theirs.items():
        fact = mine.get(key)
        if fact is None:
            if device not in gone:
                out.append(Difference(key, None, ref_value, f"{label} unknown, {word} {ref_value}".strip()))
            elif device not in said:
                said.add(device)
                out.append(Difference(f"device.{device}", None, "present", f"{device} missing, {word} has it"))
        elif fact[2] != ref_value:
            value = fact[2]
            if key.startswith("count."):
                tail = (
                    f"{ref_count} of {count(total, 'node')} {verb(ref_count, 'has', 'have')} {ref_value}"
                    if against is None
                    else f"{against} has {ref_value}"
                )
                out.append(Difference(key, value, ref_value, f"{counted(value, label)}, {tail}"))
            else:
                out.append(Difference(key, value, ref_value, f"{fact[1]} {value}, {word} {ref_value}".strip()))
    said.clear()
    for key, (_, label, value, device) in mine.items():
        if key in theirs:
            continue
        if device not in extra:
            out.append(Difference(key, value, None, f"{label} {value}, {word} unknown".strip()))
        elif device not in said:
            said.add(device)
            out.append(Difference(f"device.{device}", "present", None, f"{device} extra, {word} has none"))
    # counts and the NPS mode first: "3 GPUs" explains the rest
    return tuple(sorted(out, key=lambda d: 0 if d.key.startswith("count.") or d.key == "numa.nps" else 1))


def shown(value: str | None, key: str) -> str:
    """A side's value in evidence lines: what is missing is said, never ``None``."""
    if value is not None:
        return value
    return "absent" if key.startswith("device.") else "not reported"


def shape_differences(shape: Shape, ref: Shape, name: str) -> tuple[Difference, ...]:
    """``doctor --expect``: how this node differs from the reference node *name*."""
    return differences(shape, ref, against=name)


def new_problems(checks: Iterable[CheckRow], ref: Iterable[CheckRow]) -> tuple[CheckRow, ...]:
    """The warn/fail findings in *checks* that the reference does not have."""
    known = {(c, lv, s) for c, lv, s, _ in ref}
    return tuple(row for row in checks if (row[0], row[1], row[2]) not in known)
