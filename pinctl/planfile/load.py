"""Reading a plan file: size, encoding and JSON checks before :meth:`Plan.from_dict` sees it.

A plan file is untrusted input (it decides a job's CPUs and environment): it is
read with a size cap, must be UTF-8 JSON without duplicate keys or NaN/Infinity,
and every problem is one PlanError naming the file and the place.
"""

from __future__ import annotations

import json

from pinctl.errors import PlanError
from pinctl.planfile.types import Plan

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the launch path
if TYPE_CHECKING:
    from collections.abc import Collection
    from typing import Any

MAX_FILE_BYTES = 8 << 20


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
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except PlanError as exc:
        raise PlanError(f"{what}: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise PlanError(f"{what} is not valid JSON: {str(exc)[:200]}") from None
    try:
        return Plan.from_dict(obj, allow_env)
    except PlanError as exc:
        raise PlanError(f"{what}: {exc}") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise PlanError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise PlanError(f"{name} is not valid JSON")
