"""What ``pinctl fleet`` shows: the shape groups, then each odd node with how it differs.

Plain text (a pipe, a log, a CI job) is one greppable line per odd node, its differences and
problems indented under it; on a terminal the same is a rich table of groups and one of nodes.
"""

from __future__ import annotations

import sys
from typing import TextIO

from pinctl.fleet.compare import Outlier, Verdict
from pinctl.render.layout import fold
from pinctl.render.table import grid_rows, terminal_width, use_rich
from pinctl.words import count


def _headline(v: Verdict) -> str:
    odd = len(v.outliers)
    against = "the majority" if v.reference == "majority" else f"reference {v.reference}"
    skipped = f", {count(len(v.skipped), 'report')} skipped" if v.skipped else ""
    return f"{count(v.nodes, 'node')}, {count(len(v.groups), 'shape')}, {odd} odd against {against}{skipped}"


def _problems(o: Outlier) -> list[str]:
    """The node's own problems; those it shares with the reference are counted, not listed."""
    lines = [f"{level.upper()} {check} {subject}: {summary}" for check, level, subject, summary in o.new]
    shared = len(o.checks) - len(o.new)
    if shared:
        lines.append(f"(+{shared} warn/fail finding{'s' if shared > 1 else ''} the reference has too)")
    return lines


def _duplicates(v: Verdict) -> list[str]:
    if not v.duplicates:
        return []
    names = ", ".join(v.duplicates)
    return [
        f"same host name in more than one report: {names} (a node reported twice, or copied "
        "reports: each counts as a node toward the majority)"
    ]


def lost_lines(v: Verdict) -> list[str]:
    """The time-lost section (watch and noise reports): the slowest nodes, those standing out marked."""
    lost = v.lost
    if lost is None:
        return []
    medians = (
        ", ".join(f"{m:g}% ({k})" for k, m in lost.medians.items())
        if len(lost.medians) > 1
        else f"{lost.median_pct:g}%"
    )
    out = [f"time lost ({count(lost.nodes, 'node')} with watch or noise reports, median {medians}):"]
    for s in lost.slowest:
        mark = "!" if s.node in lost.standing_out else " "
        out.append(
            f"{mark} {s.node}  {s.pct:g}% lost ({s.kind}, {count(s.reports, 'report')}; worst {s.worst_pct:g}% "
            f"on {s.subject})"
        )
    if lost.standing_out:
        out.append(
            f"slowest node: {lost.slowest[0].node}"
            if lost.slowest[0].node in lost.standing_out
            else f"standing out: {', '.join(lost.standing_out)}"
        )
    return out


def plain_lines(v: Verdict) -> list[str]:
    if v.nodes == 0:  # only watch or noise reports: no shapes to show
        return [*lost_lines(v), *(f"skipped {source}: {reason}" for source, reason in v.skipped)]
    out = [_headline(v), *_duplicates(v), "", "shapes:"]
    for g in v.groups:
        mark = "*" if g.reference else " "
        more = ", ..." if g.nodes > len(g.hosts) else ""
        out.append(f"{mark} {g.nodes:>6}  {g.shape}  [{', '.join(g.hosts)}{more}]")
        out.extend(f"           {text}" for text in g.differs)
    if v.outliers:
        out += ["", "odd nodes:"]
        for o in v.outliers:
            out.append(o.node)
            out.extend(f"    {d.text}" for d in o.differences)
            out.extend(f"    {line}" for line in _problems(o))
    if v.lost is not None:
        out += ["", *lost_lines(v)]
    for source, reason in v.skipped:
        out.append(f"skipped {source}: {reason}")
    return out


def draw(v: Verdict, out: TextIO | None = None) -> None:
    """The fleet view on *out*: rich on a terminal, plain lines otherwise."""
    out = out or sys.stdout
    if not use_rich(out) or v.nodes == 0:
        out.write("\n".join(plain_lines(v)) + "\n")
        return
    from rich.console import Console
    from rich.text import Text

    # Fitted like every other table (pinctl.render.table.grid_rows): a host name, bus id or
    # count is never split, and a terminal too narrow for the columns gets one block per group.
    console = Console(file=out, highlight=False, width=terminal_width(out))
    console.print(Text(_headline(v), style="bold"))
    for line in fold(_duplicates(v), console.width):
        console.print(Text(line, style="yellow"))
    rows, styles = [], []
    for g in v.groups:
        more = ", ..." if g.nodes > len(g.hosts) else ""
        rows.append((str(g.nodes), "\n".join((g.shape, *(f"  {t}" for t in g.differs))), ", ".join(g.hosts) + more))
        styles.append(("", "green" if g.reference else "yellow", ""))
    grid_rows(console, ("nodes", "shape", "hosts"), rows, title="shapes", styles=styles)
    if v.outliers:
        odd = [(o.node, "\n".join(d.text for d in o.differences), "\n".join(_problems(o))) for o in v.outliers]
        grid_rows(
            console, ("node", "differs", "problems"), odd, title="odd nodes", styles=[("bold red", "", "")] * len(odd)
        )
    for line in lost_lines(v):
        console.print(Text(line, style="bold red" if line.startswith(("!", "slowest")) else ""))
    for source, reason in v.skipped:
        console.print(Text(f"skipped {source}: {reason}", style="dim"))
