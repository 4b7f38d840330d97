"""CPU facts from /sys/devices/system/cpu: present, online, offline and isolated lists, governors.

Files follow Documentation/ABI/testing/sysfs-devices-system-cpu. Lists use the
kernel's cpulist syntax; an unparsable list is unknown (None), never a guess.
"""

from __future__ import annotations

from pinctl.cpuset import decimal, format_list, parse_list
from pinctl.errors import UsageError
from pinctl.kernel.files import KernelFiles

CPU_DIR = "/sys/devices/system/cpu"


def _list(files: KernelFiles, name: str) -> frozenset[int] | None:
    text = files.read(f"{CPU_DIR}/{name}")
    if not text:
        return None
    try:
        return parse_list(text, what=f"{name} CPU list")
    except UsageError:
        return None


def present_cpus(files: KernelFiles) -> frozenset[int] | None:
    return _list(files, "present")


def online_cpus(files: KernelFiles) -> frozenset[int] | None:
    return _list(files, "online")


def cpu_list_fact(files: KernelFiles, name: str, *, strict: bool = True) -> tuple[frozenset[int] | None, str | None]:
    """``online``, ``present``, ``offline``, ``isolated`` or ``nohz_full`` with its evidence line.

    (None, None) when the file is absent; an empty or ``(null)`` file is the empty set.
    With *strict*, a file this user may not read raises NeedsRoot (the doctor says "needs root").
    """
    path = f"{CPU_DIR}/{name}"
    text = files.read(path, strict_perm=strict)
    if text is None:
        return None, None
    if text in ("", "(null)"):
        return frozenset(), f"{path} = {text or '(empty)'}"
    try:
        return parse_list(text, what=path), f"{path} = {text}"
    except UsageError:
        return None, f"{path} = {text} (unparsable)"


def has_cpu_dir(files: KernelFiles) -> bool:
    """Whether *files* holds a CPU tree at all (a gathered root must)."""
    return files.exists(CPU_DIR)


def governors(files: KernelFiles) -> list[tuple[str, frozenset[int], str]]:
    """(governor, CPUs using it, evidence) for each cpufreq governor in use; empty without cpufreq."""
    by_gov: dict[str, set[int]] = {}
    numbers = (decimal(d[3:], limit=5) for d in files.listdir(CPU_DIR) if d.startswith("cpu"))
    cpus = sorted(c for c in numbers if c is not None)
    for cpu in cpus:
        gov = files.read(f"{CPU_DIR}/cpu{cpu}/cpufreq/scaling_governor", strict_perm=True)
        if gov is not None:
            by_gov.setdefault(gov, set()).add(cpu)
    return [
        (gov, frozenset(c), f"{CPU_DIR}/cpu{{{format_list(c)}}}/cpufreq/scaling_governor = {gov}")
        for gov, c in sorted(by_gov.items())
    ]
