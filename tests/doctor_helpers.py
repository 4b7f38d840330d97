"""Doctor test helpers: a DoctorContext over the small fake trees under fixtures/doctor/ (good, bad, vm).

The trees match :func:`nodes.two_sockets` (same CPUs, devices and PCI addresses).
"""

from __future__ import annotations

from pathlib import Path

from pinctl.doctor import DoctorContext
from pinctl.kernel.files import KernelFiles
from pinctl.model import Node

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "doctor"


def ctx(case: str = "good", node: Node | None = None, **kw: object) -> DoctorContext:
    return DoctorContext(files=KernelFiles(str(FIXTURES / case)), node=node, **kw)  # type: ignore[arg-type]


def levels(findings: list) -> list[str]:  # type: ignore[type-arg]
    return sorted({f.severity for f in findings})
