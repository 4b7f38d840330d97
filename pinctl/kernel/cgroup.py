"""The cpuset cgroup of a process: the CPUs and memory nodes it may ever use.

That is the limit a job step or container sets (Slurm's task/cgroup, Kubernetes, docker
--cpuset-cpus), as opposed to the affinity the process inherited from its launcher,
which the process may replace (srun --cpu-bind, mpirun's bind-to-core). cgroup v1
(Documentation/admin-guide/cgroup-v1/cpusets.rst: ``cpuset.effective_cpus``) and v2
(Documentation/admin-guide/cgroup-v2.rst: ``cpuset.cpus.effective``) are both read; a v2
cgroup without the cpuset controller inherits its nearest ancestor's, so the walk goes up.

The hierarchies are found where they are mounted, as hwloc does: /proc/self/mountinfo
(its root field maps a container's cgroup namespace), else /proc/mounts, else the usual
/sys/fs/cgroup. cgroup v2 may be mounted elsewhere (/cgroup2, /sys/fs/cgroup/unified on
a hybrid host), v1's cpuset controller too, and the legacy ``cpuset`` filesystem (mount
-t cpuset, traditionally at /dev/cpuset) names the process's set in /proc/self/cpuset
and its files without the ``cpuset.`` prefix (``cpus``, ``mems``), as v1's ``noprefix``
mount option does too.
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


class Mount(Record):
    """One mounted cpuset hierarchy: its kind (v1, v2 or legacy), mount point and root inside the hierarchy."""

    __slots__ = ("kind", "point", "prefix", "root")

    def __init__(self, kind: str, point: str, root: str = "/", prefix: bool = True) -> None:
        self.kind: Final = kind
        self.point: Final = point
        self.root: Final = root
        self.prefix: Final = prefix


def _parse(text: str | None) -> frozenset[int] | None:
    if not text:
        return None
    try:
        return parse_list(text, what="cpuset list")
    except UsageError:
        return None


def _unescape(field: str) -> str:
    r"""Mount tables write space, tab, newline and backslash as octal escapes (``\040``)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def _mount(fstype: str, point: str, options: str, root: str = "/") -> Mount | None:
    opts = options.split(",")
    if fstype == "cgroup2":
        return Mount("v2", point, root)
    if fstype == "cgroup" and "cpuset" in opts:
        return Mount("v1", point, root, prefix="noprefix" not in opts)
    if fstype == "cpuset":
        return Mount("legacy", point, root, prefix=False)
    return None


def mounts(files: KernelFiles, pid: int | str = "self") -> list[Mount]:
    """The cpuset-bearing hierarchies mounted in *pid*'s mount namespace, in table order."""
    found: list[Mount] = []
    info = files.read(f"/proc/{pid}/mountinfo")
    if info:
        # mountinfo: ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
        for line in info.splitlines():
            head, sep, tail = line.partition(" - ")
            fields, rest = head.split(), tail.split()
            if not sep or len(fields) < 5 or len(rest) < 3:
                continue
            m = _mount(rest[0], _unescape(fields[4]), rest[2], _unescape(fields[3]))
            if m is not None:
                found.append(m)
        return found
    table = files.read(f"/proc/{pid}/mounts") or files.read("/proc/mounts") or ""
    for line in table.splitlines():
        fields = line.split()
        if len(fields) >= 4 and (m := _mount(fields[2], _unescape(fields[1]), fields[3])) is not None:
            found.append(m)
    return found


def _inside(mount: Mount, path: str) -> str | None:
    """The folder of cgroup *path* under *mount*; None when the mount's root does not hold it."""
    root = mount.root.rstrip("/")
    if root and path != root and not path.startswith(root + "/"):
        return None
    rest = path[len(root) :] if root else path
    return f"{mount.point.rstrip('/')}{rest.rstrip('/')}" if rest.strip("/") else mount.point.rstrip("/") or "/"


def _names(mount: Mount) -> list[tuple[str, str]]:
    """(cpus file, mems file) to try in a folder, effective first."""
    if mount.kind == "v2":
        return [("cpuset.cpus.effective", "cpuset.mems.effective")]
    pre = "cpuset." if mount.prefix else ""
    return [(f"{pre}effective_cpus", f"{pre}effective_mems"), (f"{pre}cpus", f"{pre}mems")]


def _candidates(files: KernelFiles, pid: int | str) -> list[tuple[str, str, str]]:
    """(folder, cpus file, mems file), nearest first, from the process's cgroup paths and the mounts."""
    text = files.read(f"/proc/{pid}/cgroup") or ""
    v1 = v2 = None
    for line in text.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if "cpuset" in controllers.split(","):
            v1 = path
        elif hierarchy == "0" and controllers == "":
            v2 = path
    legacy = files.read(f"/proc/{pid}/cpuset")
    table = mounts(files, pid)
    if not table:  # no mount table (a tree gathered without one): the usual places
        table = [Mount("v1", f"{CGROUP_ROOT}/cpuset"), Mount("v2", CGROUP_ROOT)]
    out: list[tuple[str, str, str]] = []
    named: list[tuple[str, str | None]] = [("v1", v1), ("legacy", legacy), ("v2", v2)]
    for kind, where in named:
        if where is None or not where.startswith("/"):
            continue
        path = where
        for mount in (m for m in table if m.kind == kind or (kind == "v1" and m.kind == "legacy")):
            if kind == "v2":
                parts = [p for p in path.split("/") if p]
                folders = [_inside(mount, "/" + "/".join(parts[:depth])) for depth in range(len(parts), -1, -1)]
            else:
                folders = [_inside(mount, path)]
            for folder in folders:
                if folder is not None:
                    out += [(folder, cpus, mems) for cpus, mems in _names(mount)]
    return out


def cpuset(files: KernelFiles, pid: int | str = "self") -> Cpuset | None:
    """The cpuset of *pid*'s cgroup (v1, v2 or the legacy cpuset filesystem), or None when no file says."""
    for base, cpus_name, mems_name in _candidates(files, pid):
        cpus = _parse(files.read(f"{base}/{cpus_name}"))
        if cpus:
            return Cpuset(cpus, _parse(files.read(f"{base}/{mems_name}")), f"{base}/{cpus_name}")
    return None
