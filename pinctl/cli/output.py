"""The one place pinctl writes diagnostics: errors, warnings and notes, on stderr, one line each.

Data goes to stdout (views from pinctl.render, or plain lines); everything about
how it went goes here, so scripts can keep the two apart. Used by the click
commands and the click-free fast paths alike, so an error reads the same whichever
path a command took: ``pinctl: error: <what>``, and its exit code
(pinctl.errors: 2 usage, 3 topology, 4 plan, 5 process, 6 binding).
"""

from __future__ import annotations

import os
import sys

from pinctl.errors import PinctlError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the launch path
if TYPE_CHECKING:
    from collections.abc import Iterable


def error(message: str, exit_code: int) -> int:
    """Write ``pinctl: error: MESSAGE`` and return *exit_code* for the caller to exit with."""
    sys.stderr.write(f"pinctl: error: {message}\n")
    sys.stderr.flush()
    return exit_code


def fail(exc: PinctlError) -> int:
    """The one mapping from a pinctl error to its line and exit code."""
    return error(str(exc), exc.exit_code)


def warn(message: str) -> None:
    sys.stderr.write(_fitted(f"pinctl: warning: {message}"))


def note(message: str) -> None:
    """A ``note: ...`` line on stderr: something the reader should know, not a problem."""
    sys.stderr.write(_fitted(f"note: {message}"))


def _fitted(line: str) -> str:
    """One line in a pipe (for grep); on a terminal, wrapped at spaces with an indent, so the
    terminal never cuts a CPU list or a PCI id at its edge."""
    try:
        if not sys.stderr.isatty():
            return line + "\n"
        width = int(os.environ.get("COLUMNS") or 0)  # COLUMNS=0 or unset: unknown, ask the terminal
        if width <= 0:
            width = os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return line + "\n"
    if width <= 0:
        return line + "\n"
    out: list[str] = []
    current = ""
    for word in line.split(" "):
        # A long CPU list may break after a comma, never inside a number.
        parts = [p + "," for p in word.split(",")[:-1]] + [word.split(",")[-1]]
        for k, part in enumerate(parts):
            glue = "" if k else " "
            if current.strip() and len(current) + len(glue) + len(part) > width:
                out.append(current)
                current, glue = "    ", ""
            current = f"{current}{glue}{part}" if current else part
    return "\n".join([*out, current]) + "\n"


def say(message: str) -> None:
    """A ``pinctl: ...`` note on stderr (what ``-v`` reports)."""
    sys.stderr.write(f"pinctl: {message}\n")


def out(lines: Iterable[str]) -> None:
    """Plain data lines on stdout."""
    for line in lines:
        sys.stdout.write(line + "\n")
    sys.stdout.flush()
