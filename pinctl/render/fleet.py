"""What ``pinctl fleet`` shows: the shape groups, then each odd node with how it differs.

Plain text (a pipe, a log, a CI job) is one greppable line per odd node, its differences and
problems indented under it; on a terminal the same is a rich table of groups and one of nodes.
"""

from __future__ import annotations

import sys
from typing import TextIO

from pinctl.fleet.compare import Outlier, Verdict
from pinctl.render.table import use_rich


def _headline(v: Verdict) -> str:
    odd = len(v.outliers)
    against = "the majority" if v.reference == "majority" else f"reference {v.reference}"
    skipped = f", {len(v.skipped)} reports skipped" if v.skipped else ""
    return f"{v.nodes} nodes, {len(v.groups)} shapes, {odd} odd against {against}{skipped}"


def _problems(o: Outlier) -> list[str]:
    """The node's own problems; those it shares with the reference are counted, not listed."""
    lines = [f"{level.upper()} {check} {subject}: {summary}" for check, level, subject, summary in o.new]
    shared = len(o.checks) - len(o.new)
    if shared:
        lines.append(f"(+{shared} warn/fail finding{'s' if shared > 1 else ''} the reference has too)")
    return lines


def plain_lines(v: Verdict) -> list[str]:
    out = [_headline(v), "", "shapes:"]
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
    for source, reason in v.skipped:
        out.append(f"skipped {source}: {reason}")
    return out


def draw(v: Verdict, out: TextIO | None = None) -> None:
    """The fleet view on *out*: rich on a terminal, plain lines otherwise."""
    out = out or sys.stdout
    if not use_rich(out):
        out.write("\n".join(plain_lines(v)) + "\n")
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=out)
    console.print(Text(_headline(v), style="bold"))
    shapes = Table(show_header=True, header_style="bold", title="shapes")
    for col in ("nodes", "shape", "hosts"):
        shapes.add_column(col)
    for g in v.groups:
        more = ", ..." if g.nodes > len(g.hosts) else ""
        shape = "\n".join((g.shape, *(f"  {t}" for t in g.differs)))
        shapes.add_row(Text(str(g.nodes)), Text(shape, style="green" if g.reference else "yellow"),
                       Text(", ".join(g.hosts) + more))
    console.print(shapes)
    if v.outliers:
        nodes = Table(show_header=True, header_style="bold", title="odd nodes")
        nodes.add_column("node")
        nodes.add_column("differs")
        nodes.add_column("problems")
        for o in v.outliers:
            nodes.add_row(Text(o.node, style="bold red"), Text("\n".join(d.text for d in o.differences)),
                          Text("\n".join(_problems(o))))
        console.print(nodes)
    for source, reason in v.skipped:
        console.print(Text(f"skipped {source}: {reason}", style="dim"))
