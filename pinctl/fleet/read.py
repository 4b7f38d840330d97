"""Doctor reports from files, folders and streams, one at a time; a bad one is named and skipped.

``srun -N 64 --ntasks-per-node=1 pinctl doctor --json`` prints 64 indented JSON documents one
after another, and JSON Lines puts one per line: either way each document starts with a ``{``
at the start of a line and nothing inside an indented one does. Splitting there, rather than
decoding the stream as one, lets a truncated or garbled report be skipped without losing the
next one, and keeps one report in memory at a time.
"""

from __future__ import annotations

import io
import json
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from pinctl.errors import UsageError
from pinctl.fleet import lost
from pinctl.fleet.shape import SCHEMA, Checks, Shape, facts, problems

MAX_REPORT = 16 * 2**20  # a report is tens of kB; a bigger "report" is not one


@dataclass(frozen=True)
class Report:
    """A parsed report (``data``) or why there is none (``error``); ``source`` names where it came from."""

    source: str
    data: dict[str, Any] | None = None
    error: str | None = None


# What fleet reads, and what --expect reads (a shape to compare with: doctor reports only).
ANY_REPORT = f"expected {SCHEMA} (or {' or '.join(lost.SCHEMAS)})"
REFERENCE = f"expected {SCHEMA} (a reference is a pinctl doctor --json report)"


def check(source: str, text: str) -> Report:
    """Parse one document and check that it is a report this pinctl can compare."""
    try:
        data = json.loads(text)
    except RecursionError:  # a document nested deeper than the parser's stack: a report is four levels
        return Report(source, error="nested too deep: not a doctor report")
    except json.JSONDecodeError as exc:
        stripped = text.rstrip()
        if exc.pos >= len(stripped) or exc.msg.startswith("Unterminated string"):
            return Report(source, error="truncated JSON (the report ends early)")
        return Report(source, error=f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    if not isinstance(data, dict):
        return Report(source, error=f"not a doctor report: a JSON {type(data).__name__}")
    schema = data.get("schema")
    if schema in lost.SCHEMAS:  # watch and noise reports: time lost, beside the doctor reports' shapes
        why = lost.check(data)
        return Report(source, data) if why is None else Report(source, error=why)
    if schema != SCHEMA:
        why = (
            "has no inventory; rerun pinctl doctor --json with this pinctl"
            if schema == "pinctl.doctor/v1"
            else ANY_REPORT
        )
        return Report(source, error=f"schema {schema!r}: {why}")
    if not isinstance(data.get("inventory"), dict) or not isinstance(data.get("findings"), list):
        return Report(source, error="not a doctor report: no inventory or findings")
    return Report(source, data)


CHUNK = 1 << 20


def split(stream: TextIO, source: str) -> Iterator[Report]:
    """Documents in a stream, each starting at a line that starts with ``{``, named ``SOURCE:LINE``.

    Read in large chunks and cut at each newline followed by ``{`` (a per-line loop costs
    more than parsing); a document over MAX_REPORT is named and skipped up to the next one,
    so memory stays one report's worth whatever comes in.
    """
    buf, line, oversized = "", 1, False
    while True:
        chunk = stream.read(CHUNK)
        buf += chunk
        start = 0
        while (cut := buf.find("\n{", start)) >= 0:
            yield from _emit(buf[start : cut + 1], source, line, oversized)
            line += buf.count("\n", start, cut + 1)
            start, oversized = cut + 1, False
        buf = buf[start:]
        if not chunk:
            break
        if len(buf) > MAX_REPORT:  # no document ends within the limit: keep only its line count
            if not oversized:
                yield Report(f"{source}:{line}", error=f"over {MAX_REPORT // 2**20} MiB: not a doctor report")
            keep = buf.rfind("\n") + 1 or len(buf)
            line += buf.count("\n", 0, keep)
            buf, oversized = buf[keep:], True
    yield from _emit(buf, source, line, oversized)


def _emit(text: str, source: str, line: int, oversized: bool) -> Iterator[Report]:
    """One document's report, named by the line its ``{`` is on; nothing for blank text or a skipped tail."""
    body = text.lstrip()
    if not body or oversized:
        return
    first = line + text.count("\n", 0, len(text) - len(body))
    if len(text) > MAX_REPORT:
        yield Report(f"{source}:{first}", error=f"over {MAX_REPORT // 2**20} MiB: not a doctor report")
    else:
        yield check(f"{source}:{first}", body)


def read_file(path: str, *, regular_only: bool = False) -> Iterator[Report]:
    """The reports in one file: one document (the fast path), or several concatenated.

    *regular_only* (a file found in a folder): a FIFO, socket or device is named and skipped, as
    a FIFO would block the read until someone writes to it. A path named on the command line is
    read whatever it is (``fleet <(srun ...)`` passes a pipe)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | (os.O_NONBLOCK if regular_only else 0))
        with open(fd, encoding="utf-8") as f:
            if regular_only and not stat.S_ISREG(os.fstat(fd).st_mode):
                yield Report(path, error="not a regular file (a FIFO, socket or device)")
                return
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
    yield from split(io.StringIO(text), path)


def read_paths(paths: Iterable[str], stdin: TextIO) -> Iterator[Report]:
    """Every report under *paths* (``-`` is *stdin*; folders are walked in name order)."""
    for path in paths:
        if path == "-":
            yield from split(stdin, "<stdin>")
        elif os.path.isdir(path):
            unreadable: list[OSError] = []  # a folder it may not list is named, not silently left out
            for top, dirs, names in os.walk(path, onerror=unreadable.append):
                yield from _unreadable(unreadable)
                dirs.sort()
                for name in sorted(names):
                    if not name.startswith("."):
                        yield from read_file(os.path.join(top, name), regular_only=True)
            yield from _unreadable(unreadable)
        elif os.path.exists(path):
            yield from read_file(path)
        else:
            yield Report(path, error="no such file or folder")


def _unreadable(errors: list[OSError]) -> Iterator[Report]:
    for exc in errors:
        yield Report(str(exc.filename), error=f"unreadable folder: {exc.strerror or exc}")
    errors.clear()


def load_reference(path: str) -> tuple[str, Shape, Checks]:
    """The reference node of ``--expect``: a single readable report, or a usage error."""
    reports = list(read_file(path))
    if len(reports) != 1 or reports[0].data is None:
        why = reports[0].error if len(reports) == 1 else f"{len(reports)} reports in one file"
        raise UsageError(f"--expect {path}: {str(why).replace(ANY_REPORT, REFERENCE)}")
    data = reports[0].data
    if data.get("schema") != SCHEMA:  # a watch or noise report: time lost, no shape to compare with
        raise UsageError(f"--expect {path}: schema {data.get('schema')!r}: {REFERENCE}")
    return str(data.get("hostname") or path), facts(data), problems(data)
