"""What /proc says about a process: allowed CPUs and memory nodes, threads, NUMA policy, environment.

Pure parsers (``parse_status``, ``parse_numa_maps``, ``parse_environ``) plus thin
reads through :class:`pinctl.kernel.files.KernelFiles`, so tests can feed text and the
``launch`` fast path stays cheap (no psutil: it costs ~30 ms to import).
"""

from __future__ import annotations

from pinctl.cpuset import decimal, format_list, parse_list
from pinctl.errors import UsageError
from pinctl.kernel.files import KernelFiles
from pinctl.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the launch path
if TYPE_CHECKING:
    from typing import Final

# numa_maps policy names that contain a space (kernel mm/mempolicy.c policy_modes[]).
_MULTIWORD_POLICIES = ("prefer (many)", "weighted interleave")
_HEX = frozenset("0123456789abcdef")


# include/linux/threads.h: PID_MAX_LIMIT on 64-bit kernels (4 * 1024 * 1024).
PID_MAX_LIMIT = 1 << 22


def process_id(text: str) -> int | None:
    """*text* as a process id (1..PID_MAX_LIMIT), or None: what a PID argument or a /proc entry may be."""
    pid = decimal(text, limit=8)
    return pid if pid is not None and 0 < pid <= PID_MAX_LIMIT else None


# include/linux/sched.h: the task is a kernel thread (the 9th field of /proc/PID/stat, proc(5)).
PF_KTHREAD = 0x00200000


class ProcStatus(Record):
    """The fields of /proc/PID/status that say where a task may run and allocate."""

    __slots__ = ("cpus_allowed", "mems_allowed", "name", "pid", "ppid", "threads", "uid")

    def __init__(
        self,
        pid: int,
        name: str,
        cpus_allowed: frozenset[int],
        mems_allowed: frozenset[int],
        threads: int | None = None,
        ppid: int | None = None,
        uid: int | None = None,
    ) -> None:
        self.pid: Final = pid
        self.name: Final = name
        self.cpus_allowed: Final = cpus_allowed
        self.mems_allowed: Final = mems_allowed
        self.threads: Final = threads
        self.ppid: Final = ppid
        self.uid: Final = uid  # the real user id


class MemPolicy(Record):
    """One mapping's policy from numa_maps: ``bind:0-1`` -> ("bind", {0, 1}); ``default`` -> ("default", {})."""

    __slots__ = ("flags", "mode", "nodes")

    def __init__(self, mode: str, nodes: frozenset[int] = frozenset(), flags: str = "") -> None:
        self.mode: Final = mode
        self.nodes: Final = nodes
        self.flags: Final = flags

    def __str__(self) -> str:
        text = self.mode + (f"={self.flags}" if self.flags else "")
        if self.nodes:
            text += ":" + format_list(self.nodes)
        return text


def parse_status(text: str) -> dict[str, str]:
    """``Key:\\tvalue`` lines of /proc/PID/status as a dict."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def status_from_text(pid: int, text: str) -> ProcStatus:
    fields = parse_status(text)
    threads = fields.get("Threads", "")
    ppid = fields.get("PPid", "")
    uid = (fields.get("Uid", "").split() or [""])[0]
    return ProcStatus(
        pid=pid,
        name=fields.get("Name", ""),
        cpus_allowed=parse_list(fields.get("Cpus_allowed_list", ""), what="Cpus_allowed_list"),
        mems_allowed=parse_list(fields.get("Mems_allowed_list", ""), what="Mems_allowed_list"),
        threads=decimal(threads),
        ppid=decimal(ppid),
        uid=decimal(uid),
    )


def parse_policy(token: str) -> MemPolicy:
    """One numa_maps policy token: ``bind:0``, ``prefer=static:1``, ``interleave:0-3``, ``local``."""
    head, _, nodes = token.partition(":")
    mode, _, flags = head.partition("=")
    return MemPolicy(mode=mode, nodes=parse_list(nodes, what="numa_maps node list"), flags=flags)


def parse_numa_maps(text: str) -> list[tuple[int, MemPolicy]]:
    """(start address, policy) for every mapping line of /proc/PID/numa_maps (proc(5))."""
    out: list[tuple[int, MemPolicy]] = []
    for line in text.splitlines():
        addr, _, rest = line.partition(" ")
        if not addr or len(addr) > 16 or not set(addr.lower()) <= _HEX:  # int(x, 16) takes "-1" and "0x_1"
            continue
        start = int(addr, 16)
        for name in _MULTIWORD_POLICIES:
            if rest.startswith(name):
                token_text = name + rest[len(name) :].split(" ", 1)[0]
                break
        else:
            token_text = rest.split(" ", 1)[0]
        try:
            out.append((start, parse_policy(token_text)))
        except UsageError:  # a policy syntax this parser does not know: skip the line
            continue
    return out


def summarize_policies(maps: list[tuple[int, MemPolicy]]) -> dict[str, int]:
    """How many mappings carry each policy, e.g. ``{"bind:0": 40, "default": 2}``."""
    counts: dict[str, int] = {}
    for _, pol in maps:
        key = str(pol)
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def parse_environ(data: bytes) -> dict[str, str]:
    """/proc/PID/environ: NUL-separated ``KEY=value`` entries."""
    out: dict[str, str] = {}
    for item in data.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep and key:
            out[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return out


# --- reads -------------------------------------------------------------------------------------


def read_status(files: KernelFiles, pid: int | str) -> ProcStatus | None:
    """/proc/PID/status (``pid`` may be ``self`` or ``PID/task/TID``); None when the task is gone."""
    text = files.read(f"/proc/{pid}/status")
    if text is None:
        return None
    num = process_id(str(pid).rsplit("/", 1)[-1]) or 0
    return status_from_text(num, text)


def task_ids(files: KernelFiles, pid: int) -> list[int]:
    """The thread ids of a process (empty when it is gone)."""
    return [tid for t in files.listdir(f"/proc/{pid}/task") if (tid := process_id(t)) is not None]


def thread_affinities(files: KernelFiles, pid: int) -> dict[int, frozenset[int]]:
    """Each thread's Cpus_allowed_list; threads that exit meanwhile are left out."""
    out: dict[int, frozenset[int]] = {}
    for tid in task_ids(files, pid):
        st = read_status(files, f"{pid}/task/{tid}")
        if st is not None:
            out[tid] = st.cpus_allowed
    return out


def read_numa_maps(files: KernelFiles, pid: int) -> list[tuple[int, MemPolicy]] | None:
    """Policies of a process's mappings; None when unreadable (gone, or another user's process)."""
    text = files.read(f"/proc/{pid}/numa_maps")
    return None if text is None else parse_numa_maps(text)


def read_environ(files: KernelFiles, pid: int) -> dict[str, str] | None:
    """A process's initial environment, or None when unreadable (another user's process)."""
    try:
        with open(files.path(f"/proc/{pid}/environ"), "rb") as f:
            return parse_environ(f.read())
    except OSError:
        return None


def pid_exists(files: KernelFiles, pid: int) -> bool:
    return files.exists(f"/proc/{pid}")


def pids(files: KernelFiles) -> list[int]:
    """Every process id in /proc."""
    return sorted(pid for e in files.listdir("/proc") if (pid := process_id(e)) is not None)


def is_kernel_thread(files: KernelFiles, pid: int) -> bool:
    """Whether *pid* is a kernel thread (PF_KTHREAD in /proc/PID/stat); False when unreadable."""
    stat = files.read(f"/proc/{pid}/stat")
    if stat is None or ")" not in stat:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    # after the ')' come state, ppid, pgrp, session, tty_nr, tpgid, flags (proc(5))
    flags = decimal(fields[6], limit=20) if len(fields) > 6 else None
    return flags is not None and bool(flags & PF_KTHREAD)


def parse_numa_pages(text: str) -> list[tuple[frozenset[int], dict[int, int]]]:
    """(policy nodes, pages per node) for every mapping of numa_maps: ``bind:1 ... N0=12 N1=30``
    -> ({1}, {0: 12, 1: 30}); a policy naming no node (default, local) gives an empty set."""
    out: list[tuple[frozenset[int], dict[int, int]]] = []
    for line in text.splitlines():
        policy = parse_numa_maps(line)
        if not policy:
            continue
        pages: dict[int, int] = {}
        for token in line.split():
            if token[:1] == "N" and "=" in token:
                node, _, n = token[1:].partition("=")
                a, b = decimal(node, limit=6), decimal(n, limit=20)
                if a is not None and b is not None:
                    pages[a] = b
        out.append((policy[0][1].nodes, pages))
    return out


def read_numa_pages(files: KernelFiles, pid: int) -> list[tuple[frozenset[int], dict[int, int]]] | None:
    """Pages per node of each mapping; None when unreadable (gone, or another user's process)."""
    text = files.read(f"/proc/{pid}/numa_maps")
    return None if text is None else parse_numa_pages(text)
