"""What ``pinctl check`` shows: each process's real CPUs, threads and memory policy, and what is off.

Plain text is aligned columns, then one ``off: PID: ...`` line per problem and
``ok``/``not ok``; on a terminal a rich table carries the verdict in a STATUS
column. Notes are the CLI's to print (pinctl.cli.output).
"""

from __future__ import annotations

import sys
from typing import TextIO

from pinctl.cpuset import format_list
from pinctl.pinning import ProcFacts, thread_groups
from pinctl.render.layout import fold
from pinctl.render.table import columns, grid_rows, terminal_width, use_rich

HEADERS = ("PID", "NAME", "RANK", "CPUS", "THREADS", "MEMS", "POLICY")


def row(f: ProcFacts) -> tuple[str, ...]:
    groups = thread_groups(f)
    threads = ", ".join(f"{cpus} ({n})" for cpus, n in groups.items()) if len(groups) > 1 else str(len(f.threads))
    policies = "?" if f.policies is None else ", ".join(sorted({str(p) for p in f.policies})) or "-"
    return (
        str(f.pid),
        f.name,
        "-" if f.local_rank is None else str(f.local_rank),
        format_list(f.cpus) if f.exists else "-",
        threads if f.exists else "-",
        format_list(f.mems_allowed) if f.exists else "-",
        policies if f.exists else "-",
    )


def plain_lines(facts: list[ProcFacts], issues: dict[int, list[str]]) -> list[str]:
    lines = columns(HEADERS, tuple(row(f) for f in facts))
    lines += [f"off: {f.pid}: {issue}" for f in facts for issue in issues[f.pid]]
    if facts:
        lines.append("ok" if not any(issues.values()) else "not ok")
    return lines


def draw(facts: list[ProcFacts], issues: dict[int, list[str]], out: TextIO | None = None) -> None:
    """The check view on *out*: rich on a terminal, plain lines otherwise."""
    out = out or sys.stdout
    if not use_rich(out):
        out.write("".join(line + "\n" for line in fold(plain_lines(facts, issues), terminal_width(out))))
        return
    from rich.console import Console

    rows = [(*row(f), "; ".join(issues[f.pid]) or "ok") for f in facts]
    styles = [("",) * len(HEADERS) + ("red" if issues[f.pid] else "green",) for f in facts]
    grid_rows(Console(file=out, width=terminal_width(out)), (*HEADERS, "STATUS"), rows, styles=styles)
