"""What ``launch --dry-run`` and ``launch -v`` say about a launch: its rank, binding, environment, argv.

Plain text only (it is on the ``launch`` path, where rich may not load), and the
numactl line that would do the same, so a user can compare or fall back.
"""

from __future__ import annotations

import shlex

from pinctl.act.launch import LaunchSpec
from pinctl.act.numactl import numactl_args
from pinctl.cpuset import format_list


def numactl_line(spec: LaunchSpec) -> str:
    """A shell line that does the same with numactl: ``env K=V numactl --physcpubind=.. -- CMD``."""
    words: list[str] = []
    if spec.env:
        words += ["env", *(f"{k}={v}" for k, v in spec.env)]
    words += ["numactl", *numactl_args(spec.binding), "--", *spec.argv]
    return shlex.join(words)


def describe(spec: LaunchSpec) -> list[str]:
    """The ``--dry-run`` report, one fact a line."""
    b = spec.binding
    lines: list[str] = []
    if spec.local_rank is not None:
        lines.append(f"local rank: {spec.local_rank} (from {spec.rank_source or 'plan'})")
    lines.append(f"cpus: {format_list(b.cpus) if b.cpus is not None else 'unchanged'}")
    mem = b.mem_policy + (f" {format_list(b.mems)}" if b.mems else "")
    lines.append(f"memory policy: {mem if b.mem_policy != 'none' else 'unchanged'}")
    for key, value in spec.env:
        lines.append(f"env: {key}={value}")
    lines.append(f"command: {shlex.join(spec.argv)}")
    lines.append(f"numactl: {numactl_line(spec)}")
    return lines


def summary(spec: LaunchSpec) -> str:
    """The one-line ``-v`` note on stderr."""
    b = spec.binding
    parts = []
    if spec.local_rank is not None:
        parts.append(f"local rank {spec.local_rank} (from {spec.rank_source or 'plan'})")
    parts.append(f"CPUs {format_list(b.cpus) if b.cpus is not None else 'unchanged'}")
    parts.append(
        f"memory {b.mem_policy}{':' + format_list(b.mems) if b.mems else ''}"
        if b.mem_policy != "none"
        else "memory unchanged"
    )
    return "; ".join(parts)
