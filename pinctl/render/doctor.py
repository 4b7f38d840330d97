"""What ``pinctl doctor`` shows: findings grouped by area, one line per check on a terminal.

On a terminal an operator scans twenty checks for the one that is not ok, so each
check is one line (level, check, short finding) under its area's heading, and the
evidence and fix come with ``-v``. A pipe or a health-check log is read later, by
grep, with no chance to ask again: there the evidence and fix of each problem stay
indented under it, and nothing is coloured.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from pinctl.doctor import summarize, summary_line
from pinctl.doctor.finding import Finding
from pinctl.doctor.report import ordered
from pinctl.render.layout import fold
from pinctl.render.table import grid_rows, terminal_width, use_rich

_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "skipped": "dim", "n/a": "dim"}
HINT = "pinctl doctor -v shows the evidence and the fix of each check"


def _details(f: Finding) -> list[str]:
    lines = [f"subject: {f.subject}"] if "/" in f.subject else []
    lines += f.evidence
    if f.remedy and f.severity != "ok":
        lines.append(f"fix: {f.remedy}")
    return lines


def plain_lines(findings: Sequence[Finding], *, verbose: bool = False, details: bool = True) -> list[str]:
    """One line per finding, grouped by ``[area]``; evidence and fix indented under problems when
    *details* (a log), under every finding when *verbose*."""
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
        if details:
            out.append(f"{f.severity.upper():<7} {f.check:<{w_check}}  {f.subject:<{w_subject}}  {f.summary}")
        else:  # a terminal: the short finding, as the table has it
            out.append(f"{f.severity.upper():<7} {f.check:<{w_check}}  {_short(f)}")
        if verbose or (details and f.severity in ("warn", "fail")):
            out.extend(f"        {e}" for e in _details(f))
    out.append("")
    out.append(summary_line(summarize(findings)))
    if not (verbose or details) and any(f.severity in ("warn", "fail") for f in rows):
        out.append(HINT)
    return out


def _short(f: Finding) -> str:
    """The finding's summary, led by its subject when that is a device or such (a file's path,
    often longer than the summary, is among the details)."""
    if f.subject in ("node", "") or "/" in f.subject or f.subject in f.summary:
        return f.summary
    return f"{f.subject}: {f.summary}"


def draw(findings: list[Finding], *, verbose: bool = False, out: TextIO | None = None) -> None:
    """The doctor view on *out*: rich on a terminal, plain lines otherwise."""
    out = out or sys.stdout
    if not use_rich(out):
        width = terminal_width(out)
        lines = plain_lines(findings, verbose=verbose, details=width is None)
        out.write("\n".join(fold(lines, width)) + "\n")
        return
    from rich.console import Console

    rows: list[tuple[str, ...]] = []
    styles: list[tuple[str, ...]] = []
    area = None
    for f in ordered(findings):
        if f.area != area:
            if area is not None:
                rows.append(("", "", ""))
                styles.append(("", "", ""))
            rows.append(("", f"[{f.area}]", ""))
            styles.append(("", "bold", ""))
            area = f.area
        text = _short(f)
        if verbose:
            text += "".join(f"\n  {line}" for line in _details(f))
        rows.append((f.severity, f.check, text))
        styles.append((_STYLE[f.severity], "", ""))
    console = Console(file=out, width=terminal_width(out))
    headers = ("level", "check", "finding")
    # Cells are rich Text, not markup: evidence like "[madvise]" or a process name prints as written.
    # No cell borders: at 80 columns each check keeps its one line.
    grid_rows(console, headers, rows, styles=styles, borders=False)
    console.print()
    console.print(summary_line(summarize(findings)), highlight=False)
    if not verbose and any(f.severity in ("warn", "fail") for f in findings):
        console.print(HINT, style="dim", highlight=False)
