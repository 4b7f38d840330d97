"""Terminal output: titled tables, drawn with rich on a TTY and as plain text otherwise.

Views (what to show) are built as plain :class:`Table` values by pure code;
this module only draws them, so the same view is rich on a terminal and
greppable, colourless text in a pipe, on a dumb terminal or with NO_COLOR set.
:func:`use_rich` is that rule, the only one: every view asks it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import TextIO


@dataclass(frozen=True)
class Table:
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    footer: tuple[str, ...] = field(default=())


def use_rich(stream: TextIO) -> bool:
    """Rich output only for a terminal that is not ``TERM=dumb``, and never with NO_COLOR set (no-color.org)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def draw(items: list[Table | str], stream: TextIO | None = None) -> None:
    """Draw a sequence of tables and free-standing lines."""
    out = stream or sys.stdout
    if use_rich(out):
        _draw_rich(items, out)
    else:
        out.write(plain(items))


def plain(items: list[Table | str]) -> str:
    """Plain text: a title line, space-aligned columns, no colour or box characters."""
    chunks: list[str] = []
    for item in items:
        if isinstance(item, str):
            chunks.append(item + "\n")
            continue
        lines = ([item.title] if item.title else []) + columns(item.headers, item.rows) + list(item.footer)
        chunks.append("\n".join(lines) + "\n\n")
    return "".join(chunks).rstrip("\n") + "\n"


def columns(headers: tuple[str, ...], rows: tuple[tuple[str, ...], ...]) -> list[str]:
    """Header and rows, each column as wide as its widest cell, two spaces apart."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in (headers, *rows)]


_LEVEL_STYLE = {
    "X": "dim",
    "PIX": "bold green",
    "PXB": "green",
    "PHB": "yellow",
    "NODE": "yellow",
    "SYS": "red",
    "?": "dim",
}


def _draw_rich(items: list[Table | str], out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text

    console = Console(file=out, highlight=False)
    for item in items:
        if isinstance(item, str):
            console.print(Text(item))
            continue
        table = RichTable(title=item.title, title_justify="left", title_style="bold")
        # Lists break after their commas rather than inside a number: "48-55,17" + "6-183" on two
        # lines reads as two wrong CPU lists.
        rows = [tuple(c.replace(",", ", ") if "," in c and " " not in c else c for c in row) for row in item.rows]
        for h in item.headers:
            table.add_column(h, overflow="fold")
        for row in rows:
            cells = []
            for c in row:
                style = _LEVEL_STYLE.get(c) or ("cyan" if c.startswith("NV") and c[2:].isdigit() else "")
                cells.append(Text(c, style=style))
            table.add_row(*cells)
        console.print(table)
        for line in item.footer:
            console.print(Text(line, style="dim"))
        console.print()

