"""Every CPU of the node named by the plan: the ranks', housekeeping, idle, and those not allowed.

A plan that lists only the ranks' CPUs hides the rest of the node: the CPUs kept for
the system's daemons (--reserve, --reserve-per-numa), and those no rank uses (a whole
socket when every GPU sits on the other one). Operators confine the daemons to the
housekeeping CPUs (plan --format systemd, slurm, irqbalance) and may give the idle ones
to data loaders (--helpers). This record is on the ``launch --plan`` path: no dataclasses.
"""

from __future__ import annotations

from pinctl.planfile import fields as f
from pinctl.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the launch path
if TYPE_CHECKING:
    from typing import Any, Final

_KEYS = {"housekeeping", "housekeeping_cores", "idle", "not_allowed", "threads_per_core"}


class CpuClasses(Record):
    """The node's CPUs that are no rank's: ``housekeeping`` (reserved and allowed), ``idle``
    (allowed, used by no rank and no helper), ``not_allowed`` (outside the planning cpuset).

    With the ranks' CPUs and helpers they partition the node's CPUs. ``housekeeping_cores``
    are the logical core indexes (topology order, as Slurm counts) holding a housekeeping
    CPU; ``threads_per_core`` is None when the topology does not say which CPUs share a core.
    """

    __slots__ = ("housekeeping", "housekeeping_cores", "idle", "not_allowed", "threads_per_core")

    def __init__(
        self,
        housekeeping: frozenset[int],
        idle: frozenset[int],
        not_allowed: frozenset[int] = frozenset(),
        housekeeping_cores: tuple[int, ...] = (),
        threads_per_core: int | None = None,
    ) -> None:
        self.housekeeping: Final = housekeeping
        self.idle: Final = idle
        self.not_allowed: Final = not_allowed
        self.housekeeping_cores: Final = housekeeping_cores
        self.threads_per_core: Final = threads_per_core

    def to_dict(self) -> dict[str, Any]:
        return {
            "housekeeping": sorted(self.housekeeping),
            "housekeeping_cores": list(self.housekeeping_cores),
            "idle": sorted(self.idle),
            "not_allowed": sorted(self.not_allowed),
            "threads_per_core": self.threads_per_core,
        }

    @classmethod
    def from_dict(cls, value: object, where: str) -> CpuClasses:
        d = f.obj(value, where, _KEYS, {"housekeeping", "idle"})
        housekeeping = frozenset(f.ids(d["housekeeping"], f"{where}.housekeeping"))
        idle = frozenset(f.ids(d["idle"], f"{where}.idle"))
        not_allowed = frozenset(f.ids(d.get("not_allowed", []), f"{where}.not_allowed"))
        for name, a, b in (("idle", idle, housekeeping), ("not_allowed", not_allowed, housekeeping | idle)):
            both = a & b
            if both:
                raise f.fail(f"{where}.{name}", f"CPU {min(both)} is in two classes")
        threads = f.integer_or_none(d.get("threads_per_core"), f"{where}.threads_per_core")
        if threads is not None and not 1 <= threads <= 64:
            raise f.fail(f"{where}.threads_per_core", f"{threads} is not 1-64")
        cores = f.ids(d.get("housekeeping_cores", []), f"{where}.housekeeping_cores")
        return cls(housekeeping, idle, not_allowed, tuple(cores), threads)
