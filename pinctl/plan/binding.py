"""A binding as a value, and its numactl(8) spelling: the one mapping launch and the numactl export share.

A rank's binding is part of the plan; callers build a :class:`Binding` first and hand
it to :mod:`pinctl.act.bind`, so ``--dry-run``, the unit tests and ``plan --format
numactl`` see exactly what would be applied. Pure: the syscalls are in pinctl.act.
"""

from __future__ import annotations

from pinctl.cpuset import format_list
from pinctl.errors import UsageError
from pinctl.plan.types import MEM_POLICIES
from pinctl.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the launch path
if TYPE_CHECKING:
    from typing import Final

    from pinctl.plan.types import RankPlan  # not at run time: types imports nothing of this module


class Binding(Record):
    """Where a process may run and allocate. ``cpus`` None = leave affinity; policy "none" = leave memory."""

    __slots__ = ("cpus", "mem_policy", "mems")

    def __init__(
        self, cpus: frozenset[int] | None = None, mem_policy: str = "none", mems: frozenset[int] = frozenset()
    ) -> None:
        if mem_policy not in MEM_POLICIES:
            raise UsageError(f"unknown memory policy {mem_policy!r} (one of {', '.join(MEM_POLICIES)})")
        if mem_policy in ("bind", "preferred", "interleave") and not mems:
            raise UsageError(f"memory policy {mem_policy} needs at least one NUMA node")
        if cpus is not None and not cpus:
            raise UsageError("empty CPU set")
        self.cpus: Final = cpus
        self.mem_policy: Final = mem_policy
        self.mems: Final = mems

    @classmethod
    def of_rank(cls, rank: RankPlan) -> Binding:
        return cls(cpus=rank.cpus, mem_policy=rank.mem_policy, mems=rank.mems)


def numactl_args(binding: Binding) -> list[str]:
    """The numactl options that bind the same way (several preferred nodes need --preferred-many)."""
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
