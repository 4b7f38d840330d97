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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from pinctl.render.layout import GLUE, Grid, fit, fold, stacked, wrap

if TYPE_CHECKING:
    from rich.console import Console


@dataclass(frozen=True)
class Table:
    """A view's table. *optional* headers may be dropped, in order, on a narrow terminal; when the
    rest still does not fit, the table is drawn as one block per row. Cells of a *whole* column are
    never wrapped. A table without *borders* is drawn as aligned columns (a matrix of short cells,
    as ``nvidia-smi topo -m`` prints it: rules would cost three characters a column)."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    footer: tuple[str, ...] = field(default=())
    optional: tuple[str, ...] = field(default=())
    whole: tuple[str, ...] = field(default=())
    borders: bool = True


@dataclass(frozen=True)
class Alternatives:
    """Ways to show one thing, widest first: the first whose tables all fit the terminal is drawn
    (the last one in any case; in a pipe, the first)."""

    choices: tuple[tuple[Table | str, ...], ...]


Item = Table | str | Alternatives


def use_rich(stream: TextIO) -> bool:
    """Rich output only for a terminal that is not ``TERM=dumb``, and never with NO_COLOR set (no-color.org)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return is_terminal(stream)


def is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def terminal_width(stream: TextIO) -> int | None:
    """The width to fit plain text to: the terminal's (COLUMNS first, as rich does), None for a pipe.

    Every rich Console is given this width: rich takes ``COLUMNS=0`` as zero columns and draws
    nothing, where shutil (and this) take it as unknown and ask the terminal, else 80."""
    if not is_terminal(stream):
        return None
    return shutil.get_terminal_size().columns


def draw(items: Sequence[Item], stream: TextIO | None = None) -> None:
    """Draw a sequence of tables and free-standing lines."""
    out = stream or sys.stdout
    if use_rich(out):
        _draw_rich(items, out)
    else:
        out.write(plain(items, terminal_width(out)))


def _plain_grid(item: Table, width: int) -> Grid | None:
    return fit(item.headers, item.rows, width, per_column=2, fixed=-2, optional=item.optional, whole=item.whole)


def choose(alt: Alternatives, fits_table: Callable[[Table], bool]) -> list[Table | str]:
    """The first choice whose tables all fit, else the last."""
    for choice in alt.choices:
        if all(fits_table(t) for t in choice if isinstance(t, Table)):
            return list(choice)
    return list(alt.choices[-1])


def plain(items: Sequence[Item], width: int | None = None) -> str:
    """Plain text: a title line, space-aligned columns, no colour or box characters.

    With a *width* (a terminal), tables are fitted to it as on a rich terminal.
    """
    chunks: list[str] = []
    for item in items:
        if isinstance(item, Alternatives):
            if width is None:
                chosen = list(item.choices[0])
            else:
                chosen = choose(item, lambda t: _plain_grid(t, width) is not None)
            chunks.append(plain(chosen, width) + "\n")
            continue
        if isinstance(item, str):
            chunks.append("\n".join(fold([item], width)) + "\n")
            continue
        grid = None if width is None else _plain_grid(item, width)
        if width is not None and grid is None:
            body = [line for row in item.rows for line in stacked(item.headers, row, width)]
        elif grid is None:
            body = columns(item.headers, item.rows)
        else:
            body = _wrapped_columns(item, grid.keep, grid.widths)
        lines = fold([item.title] if item.title else [], width) + body + fold(item.footer, width)
        chunks.append("\n".join(lines) + "\n\n")
    return "".join(chunks).rstrip("\n") + "\n"


def columns(headers: tuple[str, ...], rows: tuple[tuple[str, ...], ...]) -> list[str]:
    """Header and rows, each column as wide as its widest cell, two spaces apart."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    return [
        "  ".join(c.replace(GLUE, " ").ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in (headers, *rows)
    ]


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


def _draw_rich(items: Sequence[Item], out: TextIO) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console(file=out, highlight=False, width=terminal_width(out))
    for item in items:
        if isinstance(item, Alternatives):
            _draw_rich(choose(item, lambda t: _fit_table(console, t) is not None), out)
            continue
        if isinstance(item, str):
            # Folded here, not by rich: rich cuts a word longer than the width (a long CPU list) anywhere.
            for line in fold([item], console.width):
                console.print(Text(line))
            continue
        grid_rows(
            console,
            item.headers,
            item.rows,
            title=item.title,
            optional=item.optional,
            whole=item.whole,
            borders=item.borders,
        )
        for line in fold(item.footer, console.width):
            console.print(Text(line, style="dim"))
        console.print()


def _fit_rich(
    console: Console,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    optional: Sequence[str] = (),
    whole: Sequence[str] = (),
    borders: bool = True,
) -> Grid | None:
    # A boxed rich table's overhead: one space of padding each side of a cell, and n + 1 rules;
    # without borders, two spaces between columns, as in plain text.
    per_column, fixed = (3, 1) if borders else (2, -2)
    return fit(headers, rows, console.width, per_column=per_column, fixed=fixed, optional=optional, whole=whole)


def _fit_table(console: Console, t: Table) -> Grid | None:
    return _fit_rich(console, t.headers, t.rows, t.optional, t.whole, t.borders)


def fits(console: Console, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> bool:
    """Whether these columns fit the console without splitting a value."""
    return _fit_rich(console, headers, rows) is not None


def grid_rows(
    console: Console,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str = "",
    optional: Sequence[str] = (),
    whole: Sequence[str] = (),
    borders: bool = True,
    styles: Sequence[Sequence[str]] | None = None,
    sections: frozenset[int] = frozenset(),
) -> None:
    """A rich table fitted to the console, or one block per row when it cannot fit.

    *styles* give each cell's style (distance levels are coloured by default); a row whose
    index is in *sections* starts a new section.
    """
    from rich.table import Table as RichTable
    from rich.text import Text

    grid = _fit_rich(console, headers, rows, optional, whole, borders)
    if grid is None:
        if title:
            console.print(Text(title, style="bold"))
        for row in rows:
            lines = stacked(headers, row, console.width)
            console.print(Text(lines[0], style="bold"))
            for line in lines[1:]:
                console.print(Text(line))
        return
    table = RichTable(title=title or None, title_justify="left", title_style="bold")
    if not borders:
        table.box, table.pad_edge, table.show_edge = None, False, False
    for i, w in zip(grid.keep, grid.widths, strict=True):
        table.add_column(Text("\n".join(wrap(headers[i], w)), style="bold"), width=w, no_wrap=True)
    for n, row in enumerate(rows):
        if n in sections:
            table.add_section()
        cells = []
        for i, w in zip(grid.keep, grid.widths, strict=True):
            style = styles[n][i] if styles is not None else level_style(row[i])
            cells.append(Text("\n".join(wrap(row[i], w)), style=style))
        table.add_row(*cells)
    console.print(table)
