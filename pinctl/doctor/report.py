"""Findings as plain aligned text and as JSON values (pure: the CLI prints them).

Plain text is what a health-check log or a pipe gets, so it has no colour
codes and stays greppable: one line per finding, ``LEVEL  check  subject  summary``,
with evidence and remedy indented under the ones that need action.
"""

from __future__ import annotations

from collections.abc import Sequence

from pinctl.doctor import CHECKS, exit_code, summarize, summary_line
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


def plain_lines(findings: Sequence[Finding], *, verbose: bool = False) -> list[str]:
    rows = ordered(findings)
    if not rows:
        return ["no checks selected"]
    w_check = max(len(f.check) for f in rows)
    w_subject = min(44, max(len(f.subject) for f in rows))
    out: list[str] = []
    area = None
    for f in rows:
        if f.area != area:
            if area is not None:
                out.append("")
            out.append(f"[{f.area}]")
            area = f.area
        out.append(f"{f.level.upper():<7} {f.check:<{w_check}}  {f.subject:<{w_subject}}  {f.summary}")
        if verbose or f.level in ("warn", "fail"):
            out.extend(f"        {e}" for e in f.evidence)
            if f.remedy and f.level != "ok":
                out.append(f"        fix: {f.remedy}")
    out.append("")
    out.append(summary_line(summarize(findings)))
    return out
