"""Checks for the fields of an untrusted plan (parsed JSON): one PlanError naming the place.

A plan file decides which CPUs, memory and environment a job starts with, so each
value is checked for type, range and size before :mod:`pinctl.planfile.types` builds
the Plan from it. The limits keep a hostile file from costing memory or time.
Hand-written rather than jsonschema: that costs more to import than ``launch`` may
spend, and the tests hold both to the same answers (pinctl/schemas/plan-v2.json).
"""

from __future__ import annotations

from pinctl.errors import PlanError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the launch path
if TYPE_CHECKING:
    from typing import Any

MAX_RANKS = 4096
MAX_ID = 65535  # CPU and NUMA node numbers
MAX_ENV = 256
MAX_KEY = 128
MAX_VALUE = 4096
MAX_STRING = 4096
MAX_LIST = 1024  # nics, storage, warnings, option lists
INFINITY = float("inf")


def fail(where: str, message: str) -> PlanError:
    return PlanError(f"{where}: {message}")


def obj(value: object, where: str, keys: set[str], required: set[str]) -> dict[str, Any]:
    """An object with only *keys*, all of *required* among them."""
    if not isinstance(value, dict):
        raise fail(where, f"expected an object, got {type(value).__name__}")
    unknown = sorted(set(value) - keys)
    if unknown:
        raise fail(where, f"unknown key {unknown[0]!r}")
    missing = sorted(required - set(value))
    if missing:
        raise fail(where, f"missing key {missing[0]!r}")
    return value


def text(value: object, where: str, *, limit: int = MAX_STRING) -> str:
    if not isinstance(value, str):
        raise fail(where, f"expected a string, got {type(value).__name__}")
    if "\0" in value:
        raise fail(where, "contains a NUL character")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:  # "\ud800" in JSON: no UTF-8 spelling, so no argv, environment or file
            raise fail(where, f"contains a lone surrogate ({value[exc.start]!r}), which is not text") from None
    if len(value) > limit:
        raise fail(where, f"longer than {limit} characters")
    return value


def text_or_none(value: object, where: str, *, limit: int = MAX_STRING) -> str | None:
    return None if value is None else text(value, where, limit=limit)


def word(value: object, where: str, *, limit: int = 64) -> str:
    """A device name, bus id, UUID or level: text with no space or control character. Views print
    these as they are, so ``mlx5_0`` + newline + ``LD_PRELOAD=...`` would show a line of its own."""
    result = text(value, where, limit=limit)
    bad = next((c for c in result if c.isspace() or not c.isprintable()), None)
    if bad is not None:
        raise fail(where, f"{result[:40]!r} holds {bad!r}: a name has no space or control character")
    return result


def word_or_none(value: object, where: str, *, limit: int = 64) -> str | None:
    return None if value is None else word(value, where, limit=limit)


def integer(value: object, where: str, *, lo: int = 0, hi: int = MAX_ID) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(where, f"expected an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise fail(where, f"{value} is out of range {lo}..{hi}")
    return value


def integer_or_none(value: object, where: str, *, hi: int = MAX_ID) -> int | None:
    return None if value is None else integer(value, where, hi=hi)


def ids(value: object, where: str) -> tuple[int, ...]:
    """A list of distinct CPU or node numbers, in the order given."""
    if not isinstance(value, list):
        raise fail(where, f"expected a list of integers, got {type(value).__name__}")
    if len(value) > MAX_ID + 1:
        raise fail(where, "too many entries")
    out = tuple(integer(v, f"{where}[{i}]") for i, v in enumerate(value))
    if len(set(out)) != len(out):
        raise fail(where, "duplicate entries")
    return out


def items(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise fail(where, f"expected a list, got {type(value).__name__}")
    if len(value) > MAX_LIST:
        raise fail(where, f"more than {MAX_LIST} entries")
    return value


def scalar(value: object, where: str) -> object:
    """null, a boolean, a number or a string: what the informational ``options`` hold."""
    if isinstance(value, float) and (value != value or value in (INFINITY, -INFINITY)):
        raise fail(where, f"{value} is not a finite number")  # 1e999999 parses as infinity
    if value is None or isinstance(value, bool | int | float):
        return value
    return text(value, where)


def option(value: object, where: str) -> object:
    """A scalar, or a list of scalars (as a tuple, so a Plan stays immutable)."""
    if isinstance(value, list):
        return tuple(scalar(v, f"{where}[{i}]") for i, v in enumerate(items(value, where)))
    if isinstance(value, dict):
        raise fail(where, "expected a scalar or a list of scalars, got an object")
    return scalar(value, where)
