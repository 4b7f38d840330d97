"""Reading a plan file: size, encoding and JSON checks before :meth:`Plan.from_dict` sees it.

A plan file is untrusted input (it decides a job's CPUs and environment): it is
read with a size cap, must be UTF-8 JSON without duplicate keys, NaN, Infinity or a
number too large for a double (1e999999), and every problem is one PlanError naming
the file and the place (lone surrogates such as "\\ud800" are refused field by field,
in pinctl.planfile.fields).
"""

from __future__ import annotations

from pinctl.errors import PlanError
from pinctl.planfile.types import Plan

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the launch path
if TYPE_CHECKING:
    from collections.abc import Collection
    from typing import Any

try:  # CPython's JSON scanner, the very one json.loads runs, without json's import of re (~4 ms a rank)
    import _json

    make_scanner: Any = _json.make_scanner
except ImportError:  # another Python: json.loads reads every file
    make_scanner = None

MAX_FILE_BYTES = 8 << 20
_WHITESPACE = " \t\n\r"  # JSON's whitespace (RFC 8259), what json.loads skips around the value


def load_plan(path: str, allow_env: Collection[str] = ()) -> Plan:
    """Read, parse and validate a plan file; *allow_env*: variables beyond pinctl's list to accept
    (names the person running the command gave, never the file)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise PlanError(f"cannot read plan file {path!r}: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise PlanError(f"plan file {path!r} is larger than {MAX_FILE_BYTES >> 20} MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PlanError(f"plan file {path!r} is not UTF-8") from None
    return parse_plan_text(text, what=f"plan file {path!r}", allow_env=allow_env)


def parse_plan_text(text: str, *, what: str = "plan", allow_env: Collection[str] = ()) -> Plan:
    """A Plan from JSON text; *what* names the text in messages."""
    try:
        obj = json_value(text)
    except PlanError as exc:
        raise PlanError(f"{what}: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise PlanError(f"{what} is not valid JSON: {str(exc)[:200]}") from None
    try:
        return Plan.from_dict(obj, allow_env)
    except PlanError as exc:
        raise PlanError(f"{what}: {exc}") from None


class _Settings:
    """What json.loads hands its scanner: strict strings, Python numbers, and pinctl's refusals."""

    strict = True
    object_hook = None
    parse_int = int

    def __init__(self) -> None:
        self.object_pairs_hook = _no_duplicates
        self.parse_constant = _no_constant
        self.parse_float = _finite


def json_value(text: str) -> Any:
    """``json.loads(text)`` refusing duplicate keys, NaN/Infinity and 1e999999, read by json's own C scanner.

    What that scanner cannot place (no value, extra data, a byte-order mark) is read again by
    json.loads, so every error is worded as json words it (and another Python reads it all there).
    """
    if make_scanner is not None and not text.startswith("\ufeff"):
        start = len(text) - len(text.lstrip(_WHITESPACE))
        try:
            value, end = make_scanner(_Settings())(text, start)
        except StopIteration:
            pass
        else:
            if not text[end:].strip(_WHITESPACE):
                return value
    import json  # the error's words, or a Python without _json

    return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant, parse_float=_finite)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise PlanError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _finite(spelling: str) -> float:
    """A JSON number as a float; one too large for a double (1e999999) is refused as Infinity is."""
    value = float(spelling)
    if value in (INFINITY, -INFINITY):
        raise PlanError(f"{spelling[:40]} is out of range (it would read as infinity)")
    return value


INFINITY = float("inf")


def _no_constant(name: str) -> Any:
    raise PlanError(f"{name} is not valid JSON")
