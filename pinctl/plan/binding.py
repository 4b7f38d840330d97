"""A binding as a value: where a rank runs and allocates (its numactl(8) spelling is :mod:`pinctl.act.numactl`).

A rank's binding is part of the plan; callers build a :class:`Binding` first and hand
it to :mod:`pinctl.act.bind`, so ``--dry-run``, the unit tests and ``plan --format
numactl`` see exactly what would be applied. Pure: the syscalls are in pinctl.act.
"""

from __future__ import annotations

from pinctl.errors import UsageError
from pinctl.planfile.types import MEM_POLICIES
from pinctl.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the launch path
if TYPE_CHECKING:
    from typing import Final

    from pinctl.planfile.types import RankPlan  # not at run time: types imports nothing of this module


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
