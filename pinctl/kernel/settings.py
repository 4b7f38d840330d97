"""Kernel settings the doctor judges: NUMA balancing, THP defrag, the boot command line.

Each reader returns (value, path); the value is None when the file is absent, and an
unreadable file raises NeedsRoot (the doctor reports "needs root").
"""

from __future__ import annotations

from pinctl.kernel.files import KernelFiles

NUMA_BALANCING = "/proc/sys/kernel/numa_balancing"
THP_DEFRAG = "/sys/kernel/mm/transparent_hugepage/defrag"
CMDLINE = "/proc/cmdline"


def numa_balancing(files: KernelFiles) -> tuple[str | None, str]:
    return files.read(NUMA_BALANCING, strict_perm=True), NUMA_BALANCING


def thp_defrag(files: KernelFiles) -> tuple[str | None, str]:
    return files.read(THP_DEFRAG, strict_perm=True), THP_DEFRAG


def cmdline(files: KernelFiles) -> str | None:
    return files.read(CMDLINE, strict_perm=True)
