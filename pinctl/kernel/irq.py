"""Interrupt affinity from /proc/irq (Documentation/core-api/irq/irq-affinity.rst).

``effective_affinity_list`` says which CPU really takes an IRQ; ``smp_affinity_list``
is only the allowed set, used when the former is absent (older kernels).
"""

from __future__ import annotations

from pinctl.cpuset import parse_list
from pinctl.errors import UsageError
from pinctl.kernel.files import KernelFiles

IRQ_DIR = "/proc/irq"


def affinity(files: KernelFiles, irq: str) -> tuple[frozenset[int], str] | None:
    """(CPUs serving *irq*, evidence line); None when unknown. Unreadable raises NeedsRoot."""
    for name in ("effective_affinity_list", "smp_affinity_list"):
        path = f"{IRQ_DIR}/{irq}/{name}"
        text = files.read(path, strict_perm=True)
        if text:
            try:
                return parse_list(text, what=path), f"{path} = {text}"
            except UsageError:
                return None
    return None
