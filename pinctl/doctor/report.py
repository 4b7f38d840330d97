"""Findings in report order and as the ``doctor --json`` value (pinctl.doctor/v2); pinctl.render draws them.

v2 adds the node's ``hostname`` and ``inventory`` (pinctl.doctor.inventory) so that one report
per node is all ``pinctl fleet`` needs; every v1 key is kept as it was.
pinctl/schemas/doctor-v2.json is the contract, checked in the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pinctl.doctor import CHECKS, exit_code, summarize
from pinctl.doctor.finding import Finding

SCHEMA = "pinctl.doctor/v2"


def ordered(findings: Sequence[Finding]) -> list[Finding]:
    """Grouped by area in registry order, stable within a check."""
    order = {c.id: i for i, c in enumerate(CHECKS)}
    return sorted(findings, key=lambda f: order.get(f.check, len(order)))


def to_json_value(
    findings: Sequence[Finding], *, strict: bool = False, inventory: dict[str, Any] | None = None
) -> dict[str, object]:
    """The report; *inventory* (hostname, hardware, kernel) as :func:`pinctl.doctor.inventory.inventory` gives."""
    counts = summarize(findings)
    inv = inventory or {"hostname": None, "hardware": None, "kernel": None}
    return {
        "schema": SCHEMA,
        "hostname": inv["hostname"],
        "inventory": {"hardware": inv["hardware"], "kernel": inv["kernel"]},
        "findings": [f.to_dict() for f in ordered(findings)],
        "summary": counts,
        "exit_code": exit_code(findings, strict=strict),
    }
