"""What every fuzz test expects of a parser fed garbage: a valid result, or a PinctlError of one line."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pinctl.errors import PinctlError

T = TypeVar("T")


def valid_or_pinctl_error(fn: Callable[[], T]) -> T | None:
    try:
        return fn()
    except PinctlError as exc:
        assert str(exc) and "\n" not in str(exc), repr(exc)
        return None
