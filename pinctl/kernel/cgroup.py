"""The cpuset cgroup of a process: the CPUs and memory nodes it may ever use.

That is the limit a job step or container sets (Slurm's task/cgroup, Kubernetes, docker
--cpuset-cpus), as opposed to the affinity the process inherited from its launcher,
which the process may replace (srun --cpu-bind, mpirun's bind-to-core). cgroup v1
(Documentation/admin-guide/cgroup-v1/cpusets.rst: ``cpuset.effective_cpus``) and v2
(Documentation/admin-guide/cgroup-v2.rst: ``cpuset.cpus.effective``) are both read; a v2
cgroup without the cpuset controller inherits its nearest ancestor's, so the walk goes up.
"""

from __future__ import annotations

from pinctl.cpuset import parse_list
from pinctl.errors import UsageError
from pinctl.kernel.files import KernelFiles
from pinctl.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the launch path
if TYPE_CHECKING:
    from typing import Final

CGROUP_ROOT = "/sys/fs/cgroup"


class Cpuset(Record):
    """A process's cpuset limit and the file it was read from (for messages)."""

    __slots__ = ("cpus", "mems", "path")

    def __init__(self, cpus: frozenset[int], mems: frozenset[int] | None, path: str) -> None:
        self.cpus: Final = cpus
        self.mems: Final = mems
        self.path: Final = path


def _parse(text: str | None) -> frozenset[int] | None:
    if not text:
        return None
    try:
        return parse_list(text, what="cpuset list")
    except UsageError:
        return None


def cpuset(files: KernelFiles, pid: int | str = "self") -> Cpuset | None:
    """The cpuset of *pid*'s cgroup (v1 or v2), or None when no cgroup file says."""
    text = files.read(f"/proc/{pid}/cgroup") or ""
    v1 = v2 = None
    for line in text.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if "cpuset" in controllers.split(","):
            v1 = path
        elif hierarchy == "0" and controllers == "":
            v2 = path
    candidates: list[tuple[str, str, str]] = []  # (folder, cpus file, mems file), nearest first
    if v1 is not None:
        base = f"{CGROUP_ROOT}/cpuset{v1.rstrip('/')}"
        candidates += [(base, "cpuset.effective_cpus", "cpuset.effective_mems"), (base, "cpuset.cpus", "cpuset.mems")]
    if v2 is not None:
        parts = [p for p in v2.split("/") if p]
        candidates += [
            ("/".join([CGROUP_ROOT, *parts[:depth]]), "cpuset.cpus.effective", "cpuset.mems.effective")
            for depth in range(len(parts), -1, -1)
        ]
    for base, cpus_name, mems_name in candidates:
        cpus = _parse(files.read(f"{base}/{cpus_name}"))
        if cpus:
            return Cpuset(cpus, _parse(files.read(f"{base}/{mems_name}")), f"{base}/{cpus_name}")
    return None
