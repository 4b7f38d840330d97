"""Fitting a table to a terminal width without ever splitting a value.

A CPU list cut into ``0-13,112`` and ``-125``, or a PCI id into ``0000:1b:`` and
``00.0``, reads as wrong data. So cells break only after a space or a comma (a
no-break space glues words such as ``3.5 TiB``), and a table whose columns cannot
all hold their natural width loses its optional columns first (before any cell is
wrapped), then wraps cells, then is stacked into one block per row. Pure: widths in, lines out; the drawers in
:mod:`pinctl.render.table` only paint them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

GLUE = "\u00a0"
# A break opportunity: after a run of spaces (dropped) or after a comma (kept), not a comma glued
# to what follows (``(4711,\u00a0root)``).
_PIECE = re.compile(r"(?:[^ ,]|,(?=\u00a0))*(?:,| +|$)")


def pieces(line: str) -> list[str]:
    """Unbreakable pieces of one line, each keeping its trailing comma or space."""
    return [p for p in _PIECE.findall(line.replace("\t", " ")) if p]


def min_width(text: str) -> int:
    """The narrowest column that holds *text* without splitting a piece."""
    return max((len(p.rstrip(" ")) for line in text.split("\n") for p in pieces(line)), default=0)


def natural_width(text: str) -> int:
    return max((len(line) for line in text.split("\n")), default=0)


def wrap(text: str, width: int, *, indent: str = "") -> list[str]:
    """Greedy wrap at spaces and after commas; a piece longer than *width* stays whole on its own line.

    Continuation lines start with *indent* (counted in their width).
    """
    out: list[str] = []
    for line in text.split("\n"):
        current = ""
        for piece in pieces(line):
            if current.strip() and len(current + piece.rstrip(" ")) > width:
                out.append(current.rstrip(" "))
                current = indent
            current += piece
        out.append(current.rstrip(" "))
    return [line.replace(GLUE, " ") for line in out]


def fold(lines: Sequence[str], width: int | None) -> list[str]:
    """Free text for a terminal: each line wrapped at spaces and commas, continuations indented
    under the line's own indent plus two; unchanged for a pipe (*width* None)."""
    if width is None:
        return [line.replace(GLUE, " ") for line in lines]
    out: list[str] = []
    for line in lines:
        out.extend(wrap(line, width, indent=" " * (len(line) - len(line.lstrip(" ")) + 2)))
    return out


@dataclass(frozen=True)
class Grid:
    """Which columns are kept, and how wide each is."""

    keep: tuple[int, ...]
    widths: tuple[int, ...]


def fit(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int,
    *,
    per_column: int,
    fixed: int,
    optional: Sequence[str] = (),
    whole: Sequence[str] = (),
) -> Grid | None:
    """Column widths that fit *width*, dropping *optional* headers in order; None when nothing fits.

    *per_column* and *fixed* are the drawer's overhead (padding and rules) per column and in all.
    A column named in *whole* is never wrapped (a CPU list that a person copies into taskset): it
    is as wide as its widest cell, or the table does not fit.
    """
    keep = list(range(len(headers)))
    droppable = [headers.index(h) for h in optional if h in headers]
    unbroken = {headers.index(h) for h in whole if h in headers}

    def narrowest(i: int) -> int:
        cell = natural_width if i in unbroken else min_width
        return max([min_width(headers[i])] + [cell(r[i]) for r in rows])

    def natural(i: int) -> int:
        return max([natural_width(headers[i])] + [natural_width(r[i]) for r in rows])

    # Optional columns go before any cell is wrapped: a row on one line reads better than a path.
    while droppable and sum(natural(i) for i in keep) > width - fixed - per_column * len(keep):
        keep.remove(droppable.pop(0))
    mins = [narrowest(i) for i in keep]
    room = width - fixed - per_column * len(keep)
    if sum(mins) > room:
        return None
    naturals = [natural(i) for i in keep]
    widths = list(mins)
    spare = room - sum(widths)
    # Grow the column that is furthest from its natural width, one character at a time.
    while spare > 0:
        gaps = [n - w for n, w in zip(naturals, widths, strict=True)]
        j = max(range(len(gaps)), key=lambda k: gaps[k])
        if gaps[j] <= 0:
            break
        widths[j] += 1
        spare -= 1
    return Grid(tuple(keep), tuple(widths))


def stacked(headers: Sequence[str], row: Sequence[str], width: int) -> list[str]:
    """One row as a block: its first cell as a heading, then ``header: value`` lines, wrapped and indented.

    A bare number heads as ``rank 3``: alone it says nothing.
    """
    label = max((len(h) for h in headers[1:]), default=0) + 2
    head = row[0].replace(GLUE, " ")
    lines = [f"{headers[0]} {head}" if head.isdigit() and headers[0] else head]
    for h, cell in zip(headers[1:], row[1:], strict=True):
        if not cell or cell == "-":
            continue
        body = wrap(cell, max(width - 2 - label, 1))
        lines.append(f"  {(h + ':').ljust(label)}{body[0]}")
        lines.extend(" " * (2 + label) + b for b in body[1:])
    return lines
