"""What ``pinctl doctor`` shows: findings grouped by area, with evidence and a fix under each problem.

Plain text is what a health-check log or a pipe gets, so it has no colour
codes and stays greppable: one line per finding, ``LEVEL  check  subject  summary``,
with evidence and remedy indented under the ones that need action. On a terminal
the same findings are a rich table, one section per area.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from pinctl.doctor import summarize, summary_line
from pinctl.doctor.finding import Finding
from pinctl.doctor.report import ordered
from pinctl.render.layout import fold
from pinctl.render.table import fits, grid_rows, terminal_width, use_rich

_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "skipped": "dim", "n/a": "dim"}


def plain_lines(findings: Sequence[Finding], *, verbose: bool = False) -> list[str]:
    """One line per finding, grouped by ``[area]``, evidence and fix indented under problems."""
    rows = ordered(findings)
    if not rows:
        return ["no checks selected"]
    w_check = max(len(f.check) for f in rows)
    w_subject = min(44, max(len(f.subject) for f in rows))
    out: list[str] = []
    area = None
    for f in rows:
        if f.area != area:
            if area is not None:
                out.append("")
            out.append(f"[{f.area}]")
            area = f.area
        out.append(f"{f.severity.upper():<7} {f.check:<{w_check}}  {f.subject:<{w_subject}}  {f.summary}")
        if verbose or f.severity in ("warn", "fail"):
            out.extend(f"        {e}" for e in f.evidence)
            if f.remedy and f.severity != "ok":
                out.append(f"        fix: {f.remedy}")
    out.append("")
    out.append(summary_line(summarize(findings)))
    return out


def draw(findings: list[Finding], *, verbose: bool = False, out: TextIO | None = None) -> None:
    """The doctor view on *out*: rich on a terminal, plain lines otherwise."""
    out = out or sys.stdout
    if not use_rich(out):
        out.write("\n".join(fold(plain_lines(findings, verbose=verbose), terminal_width(out))) + "\n")
        return
    from rich.console import Console

    rows: list[tuple[str, ...]] = []
    styles: list[tuple[str, ...]] = []
    sections: set[int] = set()
    area = None
    for f in ordered(findings):
        if area is not None and f.area != area:
            sections.add(len(rows))
        area = f.area
        text = f.summary
        if verbose or f.severity in ("warn", "fail"):
            text += "".join(f"\n  {e}" for e in f.evidence)
            if f.remedy and f.severity != "ok":
                text += f"\n  fix: {f.remedy}"
        rows.append((f.severity, f.check, f.subject, text))
        styles.append((_STYLE[f.severity], "", "", ""))
    console = Console(file=out)
    headers: tuple[str, ...] = ("level", "check", "subject", "finding")
    if not fits(console, headers, rows):
        # Narrow: the subject (often a long /sys path) heads its finding instead of taking a column.
        headers = ("level", "check", "finding")
        rows = [(lvl, check, f"{subject}:\n{text}") for lvl, check, subject, text in rows]
        styles = [st[:3] for st in styles]
    # Cells are rich Text, not markup: evidence like "[madvise]" or a process name prints as written.
    grid_rows(console, headers, rows, styles=styles, sections=frozenset(sections))
    console.print(summary_line(summarize(findings)), highlight=False)
