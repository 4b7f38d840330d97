"""What ``launch --dry-run`` and ``launch -v`` say about a launch: its rank, binding, environment, argv.

Plain text only (it is on the ``launch`` path, where rich may not load), and the
numactl line that would do the same, so a user can compare or fall back.
"""

from __future__ import annotations

import shlex

from pinctl.act.launch import LaunchSpec
from pinctl.act.numactl import numactl_args
from pinctl.cpuset import format_list

_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def shell_word(value: str) -> str:
    """*value* as a shell reads it back, on one line: shlex.quote, or bash's $'...' when it holds a
    newline or another control character (shlex would keep those raw, so a value could show a line
    that looks like a real ``LD_PRELOAD=`` setting)."""
    if value.isprintable():
        return shlex.quote(value)
    body = "".join(_ESCAPES.get(ch) or (ch if ch.isprintable() else _escape(ch)) for ch in value)
    return f"$'{body}'"


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x80 else f"\\U{code:08x}"


def shell_join(words: list[str] | tuple[str, ...]) -> str:
    return " ".join(shell_word(w) for w in words)


def numactl_line(spec: LaunchSpec) -> str:
    """A shell line that does the same with numactl: ``env K=V numactl --physcpubind=.. -- CMD``."""
    words: list[str] = []
    if spec.env:
        words += ["env", *(f"{k}={v}" for k, v in spec.env)]
    words += ["numactl", *numactl_args(spec.binding), "--", *spec.argv]
    return shell_join(words)


def describe(spec: LaunchSpec) -> list[str]:
    """The ``--dry-run`` report, one fact a line."""
    b = spec.binding
    lines: list[str] = []
    if spec.local_rank is not None:
        lines.append(f"local rank: {spec.local_rank} (from {spec.rank_source or 'plan'})")
    lines.append(f"cpus: {format_list(b.cpus) if b.cpus is not None else 'unchanged'}")
    mem = b.mem_policy + (f" {format_list(b.mems)}" if b.mems else "")
    lines.append(f"memory policy: {mem if b.mem_policy != 'none' else 'unchanged'}")
    for key, value in spec.env:  # quoted as a shell reads it: a newline in a value cannot pose as a line
        lines.append(f"env: {key}={shell_word(value)}")
    lines.append(f"command: {shell_join(spec.argv)}")
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
