"""Doctor reports from files, folders and streams, one at a time; a bad one is named and skipped.

``srun -N 64 --ntasks-per-node=1 pinctl doctor --json`` prints 64 indented JSON documents one
after another, and JSON Lines puts one per line: either way each document starts with a ``{``
at the start of a line and nothing inside an indented one does. Splitting there, rather than
decoding the stream as one, lets a truncated or garbled report be skipped without losing the
next one, and keeps one report in memory at a time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from pinctl.fleet.shape import SCHEMA

MAX_REPORT = 16 * 2**20  # a report is tens of kB; a bigger "report" is not one


@dataclass(frozen=True)
class Report:
    """A parsed report (``data``) or why there is none (``error``); ``source`` names where it came from."""

    source: str
    data: dict[str, Any] | None = None
    error: str | None = None


def check(source: str, text: str) -> Report:
    """Parse one document and check that it is a report this pinctl can compare."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        stripped = text.rstrip()
        if exc.pos >= len(stripped) or exc.msg.startswith("Unterminated string"):
            return Report(source, error="truncated JSON (the report ends early)")
        return Report(source, error=f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    if not isinstance(data, dict):
        return Report(source, error=f"not a doctor report: a JSON {type(data).__name__}")
    schema = data.get("schema")
    if schema != SCHEMA:
        why = ("has no inventory; rerun pinctl doctor --json with this pinctl" if schema == "pinctl.doctor/v1"
               else f"expected {SCHEMA}")
        return Report(source, error=f"schema {schema!r}: {why}")
    if not isinstance(data.get("inventory"), dict) or not isinstance(data.get("findings"), list):
        return Report(source, error="not a doctor report: no inventory or findings")
    return Report(source, data)


def split(lines: Iterable[str], source: str) -> Iterator[Report]:
    """Documents in a stream of lines, each starting at a line that starts with ``{``."""
    chunk: list[str] = []
    start = 0
    size = 0
    for number, line in enumerate(lines, 1):
        if line.startswith("{") and chunk:
            yield _document(chunk, f"{source}:{start}", size)
            chunk, size = [], 0
        if not chunk:
            if not line.strip():
                continue
            start = number
        chunk.append(line)
        size += len(line)
    if chunk:
        yield _document(chunk, f"{source}:{start}", size)


def _document(chunk: list[str], source: str, size: int) -> Report:
    if size > MAX_REPORT:
        return Report(source, error=f"over {MAX_REPORT // 2**20} MiB: not a doctor report")
    return check(source, "".join(chunk))


def read_file(path: str) -> Iterator[Report]:
    """The reports in one file: one document (the fast path), or several concatenated."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(MAX_REPORT + 1)
    except (OSError, UnicodeDecodeError) as exc:
        yield Report(path, error=f"unreadable: {getattr(exc, 'strerror', None) or exc}")
        return
    if len(text) > MAX_REPORT:
        yield Report(path, error=f"over {MAX_REPORT // 2**20} MiB: not a doctor report")
        return
    report = check(path, text)
    if report.data is not None or text.count("\n{") == 0:
        yield report
        return
    yield from split(text.splitlines(keepends=True), path)


def read_paths(paths: Iterable[str], stdin: TextIO) -> Iterator[Report]:
    """Every report under *paths* (``-`` is *stdin*; folders are walked in name order)."""
    for path in paths:
        if path == "-":
            yield from split(stdin, "<stdin>")
        elif os.path.isdir(path):
            for top, dirs, names in os.walk(path):
                dirs.sort()
                for name in sorted(names):
                    if not name.startswith("."):
                        yield from read_file(os.path.join(top, name))
        elif os.path.exists(path):
            yield from read_file(path)
        else:
            yield Report(path, error="no such file or folder")
