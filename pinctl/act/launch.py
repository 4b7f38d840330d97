"""What ``launch`` will do, as values: the binding, the environment, the argv, the numactl equivalent.

Built before anything is applied (STYLE habit 7), so ``--dry-run`` prints
exactly what the real run would apply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pinctl.act.syscalls import Binding
from pinctl.cpuset import format_list
from pinctl.plan.validate import RankPlan


@dataclass(frozen=True)
class LaunchSpec:
    """One bound command: what to bind, which variables to add, what to run."""

    binding: Binding
    env: tuple[tuple[str, str], ...]
    argv: tuple[str, ...]
    local_rank: int | None = None
    rank_source: str | None = None


def binding_for_rank(rank: RankPlan) -> Binding:
    return Binding(cpus=rank.cpus, mem_policy=rank.mem_policy, mems=rank.mems)


def spec_for_rank(rank: RankPlan, argv: Sequence[str], source: str | None = None) -> LaunchSpec:
    return LaunchSpec(binding_for_rank(rank), rank.env, tuple(argv), rank.local_rank, source)


def build_env(base: Mapping[str, str], updates: Sequence[tuple[str, str]]) -> dict[str, str]:
    env = dict(base)
    env.update(updates)
    return env


def numactl_args(binding: Binding) -> list[str]:
    """The numactl(8) options that bind the same way."""
    args: list[str] = []
    if binding.cpus is not None:
        args.append(f"--physcpubind={format_list(binding.cpus)}")
    nodes = format_list(binding.mems)
    if binding.mem_policy == "bind":
        args.append(f"--membind={nodes}")
    elif binding.mem_policy == "preferred":
        args.append(f"--preferred={nodes}" if len(binding.mems) == 1 else f"--preferred-many={nodes}")
    elif binding.mem_policy == "interleave":
        args.append(f"--interleave={nodes}")
    elif binding.mem_policy == "local":
        args.append("--localalloc")
    return args


def numactl_line(spec: LaunchSpec) -> str:
    """A shell line that does the same with numactl: ``env K=V numactl --physcpubind=.. -- CMD``."""
    words: list[str] = []
    if spec.env:
        words += ["env", *(f"{k}={v}" for k, v in spec.env)]
    words += ["numactl", *numactl_args(spec.binding), "--", *spec.argv]
    import shlex

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
    import shlex

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
