"""Terminal output: titled tables, drawn with rich on a TTY and as plain text otherwise.

Views (what to show) are built as plain :class:`Table` values by pure code;
this module only draws them, so the same view is rich on a terminal and
greppable, colourless text in a pipe, on a dumb terminal or with NO_COLOR set.
:func:`use_rich` is that rule, the only one: every view asks it. On a terminal
tables are fitted to its width by :mod:`pinctl.render.layout`, which never
splits a value; in a pipe each row stays one line, for grep.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import TextIO

from pinctl.render.layout import GLUE, fit, stacked, wrap


@dataclass(frozen=True)
class Table:
    """A view's table. *optional* headers may be dropped, in order, on a narrow terminal; when the
    rest still does not fit, *fallback* is drawn instead, or else one block per row."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    footer: tuple[str, ...] = field(default=())
    optional: tuple[str, ...] = field(default=())
    fallback: tuple[Table | str, ...] = field(default=())


def use_rich(stream: TextIO) -> bool:
    """Rich output only for a terminal that is not ``TERM=dumb``, and never with NO_COLOR set (no-color.org)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return is_terminal(stream)


def is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def terminal_width(stream: TextIO) -> int | None:
    """The width to fit plain text to: the terminal's (COLUMNS first, as rich does), None for a pipe."""
    if not is_terminal(stream):
        return None
    return shutil.get_terminal_size().columns


def draw(items: list[Table | str], stream: TextIO | None = None) -> None:
    """Draw a sequence of tables and free-standing lines."""
    out = stream or sys.stdout
    if use_rich(out):
        _draw_rich(items, out)
    else:
        out.write(plain(items, terminal_width(out)))


def plain(items: list[Table | str], width: int | None = None) -> str:
    """Plain text: a title line, space-aligned columns, no colour or box characters.

    With a *width* (a terminal), tables are fitted to it as on a rich terminal.
    """
    chunks: list[str] = []
    for item in items:
        if isinstance(item, str):
            chunks.append(item.replace(GLUE, " ") + "\n")
            continue
        grid = None if width is None else fit(item.headers, item.rows, width, per_column=2, fixed=-2,
                                              optional=item.optional)  # fmt: skip
        if width is not None and grid is None:
            if item.fallback:
                chunks.append(plain(list(item.fallback), width) + "\n")
                continue
            body = [line for row in item.rows for line in stacked(item.headers, row, width)]
        elif grid is None:
            body = columns(item.headers, item.rows)
        else:
            body = _wrapped_columns(item, grid.keep, grid.widths)
        lines = ([item.title] if item.title else []) + body + list(item.footer)
        chunks.append("\n".join(lines) + "\n\n")
    return "".join(chunks).rstrip("\n") + "\n"


def columns(headers: tuple[str, ...], rows: tuple[tuple[str, ...], ...]) -> list[str]:
    """Header and rows, each column as wide as its widest cell, two spaces apart."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    return ["  ".join(c.replace(GLUE, " ").ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in (headers, *rows)]  # fmt: skip


def _wrapped_columns(item: Table, keep: tuple[int, ...], widths: tuple[int, ...]) -> list[str]:
    out: list[str] = []
    for row in (item.headers, *item.rows):
        cells = [wrap(row[i], w) for i, w in zip(keep, widths, strict=True)]
        for k in range(max(len(c) for c in cells)):
            parts = [(c[k] if k < len(c) else "").ljust(w) for c, w in zip(cells, widths, strict=True)]
            out.append("  ".join(parts).rstrip())
    return out


_LEVEL_STYLE = {
    "X": "dim",
    "PIX": "bold green",
    "PXB": "green",
    "PHB": "yellow",
    "NODE": "yellow",
    "SYS": "red",
    "?": "dim",
}


def level_style(cell: str) -> str:
    return _LEVEL_STYLE.get(cell) or ("cyan" if cell.startswith("NV") and cell[2:].isdigit() else "")


def _draw_rich(items: list[Table | str], out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text

    console = Console(file=out, highlight=False)
    for item in items:
        if isinstance(item, str):
            console.print(Text(item.replace(GLUE, " ")))
            continue
        # A rich table's overhead: one space of padding each side of a cell, and n + 1 rules.
        grid = fit(item.headers, item.rows, console.width, per_column=3, fixed=1, optional=item.optional)
        if grid is None and item.fallback:
            _draw_rich(list(item.fallback), out)
            continue
        if grid is None:
            console.print(Text(item.title, style="bold"))
            for row in item.rows:
                lines = stacked(item.headers, row, console.width)
                console.print(Text(lines[0], style="bold"))
                for line in lines[1:]:
                    console.print(Text(line))
        else:
            table = RichTable(title=item.title, title_justify="left", title_style="bold")
            for i, w in zip(grid.keep, grid.widths, strict=True):
                table.add_column(Text("\n".join(wrap(item.headers[i], w))), width=w, no_wrap=True)
            for row in item.rows:
                table.add_row(*(Text("\n".join(wrap(row[i], w)), style=level_style(row[i]))
                                for i, w in zip(grid.keep, grid.widths, strict=True)))  # fmt: skip
            console.print(table)
        for line in item.footer:
            console.print(Text(line, style="dim"))
        console.print()
