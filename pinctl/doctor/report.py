"""Findings in report order and as the ``doctor --json`` value (pinctl.doctor/v1); pinctl.render draws them."""

from __future__ import annotations

from collections.abc import Sequence

from pinctl.doctor import CHECKS, exit_code, summarize
from pinctl.doctor.finding import Finding

SCHEMA = "pinctl.doctor/v1"


def ordered(findings: Sequence[Finding]) -> list[Finding]:
    """Grouped by area in registry order, stable within a check."""
    order = {c.id: i for i, c in enumerate(CHECKS)}
    return sorted(findings, key=lambda f: order.get(f.check, len(order)))


def to_json_value(findings: Sequence[Finding], *, strict: bool = False) -> dict[str, object]:
    counts = summarize(findings)
    return {
        "schema": SCHEMA,
        "findings": [f.to_dict() for f in ordered(findings)],
        "summary": counts,
        "exit_code": exit_code(findings, strict=strict),
    }
