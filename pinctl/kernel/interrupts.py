"""Interrupt counts per CPU: /proc/interrupts by source, /proc/softirqs by kind (proc(5)).

On a 224-CPU node /proc/interrupts is hundreds of lines of 224 columns; converting every
column each second would make the watcher its own noise, so the parsers convert only the
columns of the CPUs asked for (``cpus``), and keep the rest as text they never touch.
"""

from __future__ import annotations

from collections.abc import Collection

from pinctl.kernel.files import KernelFiles

INTERRUPTS = "/proc/interrupts"
SOFTIRQS = "/proc/softirqs"


def _header(line: str) -> list[int]:
    """Column index -> CPU number, from the ``CPU0 CPU1 ...`` header (offline CPUs have no column)."""
    out: list[int] = []
    for token in line.split():
        if token.startswith("CPU") and token[3:].isdigit():
            out.append(int(token[3:]))
    return out


def _source(label: str, tail: list[str]) -> str:
    """A readable name: the device's name for numbered IRQs (``mlx5_comp3@pci:...`` -> ``mlx5_comp3``,
    ``nvme0q12``), the kernel's words for the architecture's own (``LOC`` -> ``LOC Local timer
    interrupts``)."""
    if label.isdigit():
        name = tail[-1] if tail else label
        return f"{label}:{name.split('@', 1)[0]}"
    return f"{label} {' '.join(tail)}".strip()


Counts = dict[str, dict[int, int]]
# A row's text -> (its source, its parsed counts, its fields); and "\0LABEL" -> the same, for the
# row of that label last time (a changed row converts only the columns whose text changed).
Memo = dict[str, tuple[str, dict[int, int], list[str]]]


def parse_counts(text: str, cpus: Collection[int] | None = None, memo: Memo | None = None) -> Counts:
    """Per source, per CPU in *cpus* (all when None), the cumulative count.

    Works for /proc/interrupts (``24: 1 0 IO-APIC 5-edge ACPI:Ged``) and /proc/softirqs
    (``TIMER: 3680 4262``); a row with fewer columns (``ERR: 0``) counts on the first CPU only.
    *memo*: rows parsed last time (for the same *cpus*); a row whose text has not changed is not
    parsed again and keeps the same counts object, so a reader can skip it (on a big node most
    device queues are quiet in any one second). It is refilled with this text's rows."""
    lines = text.splitlines()
    if not lines:
        return {}
    columns = _header(lines[0])
    if not columns:  # a header naming no CPU: nothing can be counted (a truncated or foreign file)
        return {}
    wanted = [(i, c) for i, c in enumerate(columns) if cpus is None or c in cpus]
    width = len(columns)
    out: Counts = {}
    old = dict(memo) if memo is not None else {}
    if memo is not None:
        memo.clear()
    for line in lines[1:]:
        known = old.get(line)
        if known is not None:
            out[known[0]] = known[1]
            if memo is not None:
                memo[line] = memo["\0" + line.partition(":")[0]] = known
            continue
        label, sep, rest = line.partition(":")
        if not sep:
            continue
        fields = rest.split(None, width)
        full = len(fields) > width or (len(fields) == width and fields[-1].isdecimal())
        n = width if full and fields[0].isdecimal() and fields[width - 1].isdecimal() else 0
        if not n:
            while n < len(fields) and n < width and fields[n].isdecimal():
                n += 1
        last = old.get("\0" + label)
        if last is not None and len(last[2]) == len(fields) and n == width:
            counts = dict(last[1])
            before = last[2]
            try:
                for i, cpu in wanted:
                    if fields[i] != before[i]:
                        counts[cpu] = int(fields[i])
            except ValueError:  # a column that is not a count: the row says nothing
                counts = {}
        else:
            try:
                counts = {cpu: int(fields[i]) for i, cpu in wanted if i < n}
            except ValueError:
                counts = {}
        tail = fields[width].split() if n == width and len(fields) > width else fields[n:]
        source = _source(label.strip(), tail)
        out[source] = counts
        if memo is not None:
            memo[line] = memo["\0" + label] = (source, counts, fields)
    return out


def read_interrupts(files: KernelFiles, cpus: Collection[int] | None = None, memo: Memo | None = None) -> Counts | None:
    text = files.read(INTERRUPTS)
    return None if text is None else parse_counts(text, cpus, memo)


def read_softirqs(files: KernelFiles, cpus: Collection[int] | None = None) -> Counts | None:
    text = files.read(SOFTIRQS)
    return None if text is None else parse_counts(text, cpus)
