"""What a doctor check sees (the context) and what it says (findings).

Checks are pure over their context except for reads through ``ctx.files``, so
tests point the reader at a fake tree and hand in a small Node. Every finding
carries the exact facts it was drawn from (``path = value``) so an operator can
verify it by hand, and a remedy so they know what to do next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pinctl.kernel.files import KernelFiles
from pinctl.model import Node

if TYPE_CHECKING:
    from pinctl.discovery.nvml import NvmlHealth
    from pinctl.planfile.types import Plan

# A finding's severity (written "level" in the JSON and the tables, as health checks call it;
# in the code "level" is a PCIe distance, docs/design.md).
# "n/a": the check judges the live node (its kernel, IRQs, NVML) and the input is a topology
# file, which holds none of that; not a problem, and not "skipped" for a reason that is not so.
Severity = Literal["ok", "warn", "fail", "skipped", "n/a"]
SEVERITIES: tuple[Severity, ...] = ("ok", "warn", "fail", "skipped", "n/a")


@dataclass(frozen=True)
class Finding:
    """One verdict of one check about one subject (a device, a file, the node)."""

    check: str
    severity: Severity
    subject: str
    summary: str
    evidence: tuple[str, ...] = ()
    remedy: str | None = None

    @property
    def area(self) -> str:
        return self.check.partition(".")[0]

    def to_dict(self) -> dict[str, object]:
        return {
            "check": self.check,
            "level": self.severity,
            "subject": self.subject,
            "summary": self.summary,
            "evidence": list(self.evidence),
            "remedy": self.remedy,
        }


@dataclass(frozen=True)
class DoctorContext:
    """Everything a check may look at.

    ``node`` is None when discovery failed (``discovery_error`` says why);
    ``health`` is None without NVML (``nvml_note`` says why, ``nvml_error`` names NVML's error). ``housekeeping``
    come from ``--reserve``, ``job_cpus`` and ``plan`` from ``--plan``; None means not given.
    ``offline``: the node is a topology file alone (``--topology`` without ``--root``): the
    files under ``files`` are this machine's, not the node's, so checks judge only the model.
    """

    files: KernelFiles
    node: Node | None = None
    health: NvmlHealth | None = None
    nvml_note: str = "NVML not queried"
    nvml_error: str | None = None  # NVML's error name when nvmlInit failed (LIB_RM_VERSION_MISMATCH, ...)
    discovery_error: str | None = None
    housekeeping: frozenset[int] | None = None
    job_cpus: frozenset[int] | None = None
    plan: Plan | None = None
    offline: bool = False


def ok(check: str, subject: str, summary: str, *evidence: str) -> Finding:
    return Finding(check, "ok", subject, summary, tuple(evidence))


def skipped(check: str, reason: str, subject: str = "node") -> Finding:
    return Finding(check, "skipped", subject, reason)


def not_applicable(check: str, needs: str) -> Finding:
    """The verdict of a check that needs the live node when only a topology file was given."""
    return Finding(check, "n/a", "node", f"not applicable to a topology file: needs the live node's {needs}")


def needs_root(check: str, path: str) -> Finding:
    """The verdict for a file we may not read: not a failure, just not checkable here."""
    return Finding(check, "skipped", path, "needs root", (f"{path}: permission denied",), "run pinctl doctor as root")


def no_node(ctx: DoctorContext, check: str) -> Finding:
    """Skipped for want of a topology: the reason is said once, by node.discovery, and kept here as evidence."""
    why = ctx.discovery_error or "no topology"
    return Finding(check, "skipped", "node", "no topology (see node.discovery)", (why,))
