"""Every OS side effect of pinctl: CPU affinity, NUMA memory policy, page migration, exec, spawn.

Callers build a :class:`Binding` (a plain value) first and hand it here, so
``--dry-run`` and the unit tests see exactly what would be applied. The NUMA
calls go straight to the kernel through ``syscall(2)``: libnuma is not a
dependency, and hwloc's plain BIND becomes MPOL_PREFERRED_MANY (see STYLE.md).
A thread's mempolicy and affinity survive ``execve``, which is what makes
``launch`` work without a wrapper process.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pinctl.cpuset import format_list
from pinctl.errors import BindError, ProcessError, UsageError
from pinctl.kernel.files import Sysfs
from pinctl.kernel.proc import pid_exists, task_ids

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms) on the launch fast path
if TYPE_CHECKING:
    import ctypes
    from typing import NoReturn

# linux/mempolicy.h
MPOL_DEFAULT, MPOL_PREFERRED, MPOL_BIND, MPOL_INTERLEAVE, MPOL_LOCAL, MPOL_PREFERRED_MANY = range(6)
_MODE_FLAGS = (1 << 15) | (1 << 14) | (1 << 13)  # MPOL_F_STATIC_NODES | RELATIVE_NODES | NUMA_BALANCING
POLICIES = ("bind", "preferred", "interleave", "local", "none")
_MODE_NAMES = {
    MPOL_DEFAULT: "default",
    MPOL_PREFERRED: "preferred",
    MPOL_BIND: "bind",
    MPOL_INTERLEAVE: "interleave",
    MPOL_LOCAL: "local",
    MPOL_PREFERRED_MANY: "preferred",
}

# (set_mempolicy, get_mempolicy, migrate_pages): arch/x86/entry/syscalls/syscall_64.tbl and
# include/uapi/asm-generic/unistd.h (arm64 and other new ports).
_SYSCALLS = {"x86_64": (238, 239, 256), "aarch64": (237, 236, 238), "arm64": (237, 236, 238)}
_MASK_BITS = 1024  # >= nr_node_ids on every kernel (CONFIG_NODES_SHIFT <= 10), or get_mempolicy is EINVAL
_MAX_PIN_PASSES = 50
# Signals that Python ignores at start-up; a launched command must get them back at their defaults.
_RESET_SIGNALS = tuple(s for s in (getattr(signal, "SIGPIPE", None), getattr(signal, "SIGXFSZ", None)) if s)


@dataclass(frozen=True)
class Binding:
    """Where a process may run and allocate. ``cpus`` None = leave affinity; policy "none" = leave memory."""

    cpus: frozenset[int] | None = None
    mem_policy: str = "none"
    mems: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        if self.mem_policy not in POLICIES:
            raise UsageError(f"unknown memory policy {self.mem_policy!r} (one of {', '.join(POLICIES)})")
        if self.mem_policy in ("bind", "preferred", "interleave") and not self.mems:
            raise UsageError(f"memory policy {self.mem_policy} needs at least one NUMA node")
        if self.cpus is not None and not self.cpus:
            raise UsageError("empty CPU set")


# --- NUMA syscalls -----------------------------------------------------------------------------


class _Kernel:
    """libc's syscall() with errno, loaded on first use (ctypes costs a few ms to import)."""

    _libc: ctypes.CDLL | None = None

    @classmethod
    def call(cls, index: int, *args: object) -> int:
        import ctypes

        numbers = _SYSCALLS.get(os.uname().machine)
        if numbers is None:
            raise BindError(f"NUMA memory policy is not supported on {os.uname().machine} by pinctl")
        if cls._libc is None:
            cls._libc = ctypes.CDLL(None, use_errno=True)
        libc = cls._libc
        libc.syscall.restype = ctypes.c_long
        ret = int(libc.syscall(ctypes.c_long(numbers[index]), *args))
        if ret < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return ret


def _nodemask(nodes: frozenset[int]) -> ctypes.Array[ctypes.c_ulong]:
    import ctypes

    if any(n < 0 or n >= _MASK_BITS for n in nodes):
        raise UsageError(f"NUMA node out of range in {format_list(nodes)}")
    words = (ctypes.c_ulong * (_MASK_BITS // 64))()
    for n in nodes:
        words[n // 64] |= 1 << (n % 64)
    return words


def _mask_nodes(words: ctypes.Array[ctypes.c_ulong]) -> frozenset[int]:
    return frozenset(i * 64 + b for i, w in enumerate(words) for b in range(64) if w >> b & 1)


def set_mempolicy(policy: str, mems: frozenset[int]) -> None:
    """Set the calling thread's NUMA policy (inherited by children and kept across exec)."""
    import ctypes

    if policy == "none":
        return
    if policy == "local":
        mode, mask = MPOL_LOCAL, None
    else:
        mode = {"bind": MPOL_BIND, "interleave": MPOL_INTERLEAVE, "default": MPOL_DEFAULT}.get(policy, -1)
        if policy == "preferred":
            # MPOL_PREFERRED takes one node; several need MPOL_PREFERRED_MANY (Linux >= 5.15).
            mode = MPOL_PREFERRED if len(mems) == 1 else MPOL_PREFERRED_MANY
        mask = _nodemask(mems) if mems else None
    try:
        # maxnode is one more than the mask's bits: the kernel's get_nodes() drops one (numactl does the same).
        _Kernel.call(0, ctypes.c_int(mode), mask, ctypes.c_ulong(_MASK_BITS + 1 if mask is not None else 0))
    except OSError as exc:
        raise BindError(f"set_mempolicy({policy}, nodes {format_list(mems) or '-'}) failed: {exc.strerror}") from None


def get_mempolicy() -> tuple[str, frozenset[int]]:
    """The calling thread's policy as (name, nodes); "default" when none was set."""
    import ctypes

    mode = ctypes.c_int(0)
    mask = _nodemask(frozenset())
    try:
        _Kernel.call(1, ctypes.byref(mode), mask, ctypes.c_ulong(_MASK_BITS + 1), None, ctypes.c_ulong(0))
    except OSError as exc:
        raise BindError(f"get_mempolicy failed: {exc.strerror}") from None
    value = mode.value & ~_MODE_FLAGS
    nodes = _mask_nodes(mask)
    if value == MPOL_PREFERRED and not nodes:  # kernels before 5.13 report MPOL_LOCAL this way
        return "local", nodes
    return _MODE_NAMES.get(value, f"mode{value}"), nodes


def migrate_pages(pid: int, old: frozenset[int], new: frozenset[int]) -> int:
    """Move a process's pages from *old* to *new* nodes (migratepages(8)); returns pages NOT moved."""
    import ctypes

    try:
        return _Kernel.call(2, ctypes.c_int(pid), ctypes.c_ulong(_MASK_BITS + 1), _nodemask(old), _nodemask(new))
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            raise ProcessError(f"process {pid} does not exist") from None
        if exc.errno == errno.EPERM:
            raise ProcessError(f"not permitted to migrate the pages of process {pid} (EPERM)") from None
        raise ProcessError(f"migrate_pages({pid}) failed: {exc.strerror}") from None


# --- the calling process ------------------------------------------------------------------------


def apply_binding(binding: Binding) -> None:
    """Bind the calling thread (before exec or spawn): affinity first, then the memory policy."""
    if binding.cpus is not None:
        try:
            os.sched_setaffinity(0, binding.cpus)
        except OSError as exc:
            raise BindError(f"cannot bind to CPUs {format_list(binding.cpus)}: {exc.strerror}") from None
    set_mempolicy(binding.mem_policy, binding.mems)


def verify_binding(binding: Binding) -> list[str]:
    """Re-read affinity and policy; one line per difference from what was asked (empty = it took)."""
    problems: list[str] = []
    if binding.cpus is not None:
        got = frozenset(os.sched_getaffinity(0))
        if got != binding.cpus:
            problems.append(f"CPU affinity is {format_list(got)}, asked for {format_list(binding.cpus)}")
    if binding.mem_policy != "none":
        mode, nodes = get_mempolicy()
        want_nodes = binding.mems if binding.mem_policy != "local" else frozenset()
        if mode != binding.mem_policy or nodes != want_nodes:
            got_text = mode + (f":{format_list(nodes)}" if nodes else "")
            want_text = binding.mem_policy + (f":{format_list(want_nodes)}" if want_nodes else "")
            problems.append(f"memory policy is {got_text}, asked for {want_text}")
    return problems


def bind_self(binding: Binding, *, force: bool = False) -> list[str]:
    """Apply and verify; a binding that did not take raises BindError unless *force* (then returned)."""
    apply_binding(binding)
    problems = verify_binding(binding)
    if problems and not force:
        raise BindError("binding did not take: " + "; ".join(problems) + " (use --force to run anyway)")
    return problems


def _restore_signals() -> None:
    for sig in _RESET_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)


def exec_command(argv: Sequence[str], env: Mapping[str, str]) -> NoReturn:
    """Replace this process with *argv* (PATH lookup, no shell): same PID, the command's own exit status."""
    sys.stdout.flush()
    sys.stderr.flush()
    _restore_signals()
    try:
        os.execvpe(argv[0], list(argv), dict(env))
    except OSError as exc:
        code = 127 if isinstance(exc, FileNotFoundError) else 126
        raise CommandError(f"cannot run {argv[0]!r}: {exc.strerror}", code) from None


class CommandError(ProcessError):
    """The command could not be started; exit code as a shell would give (127 not found, 126 not runnable)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# --- other processes ---------------------------------------------------------------------------


@dataclass
class PinResult:
    """What ``pin_threads`` did to one process."""

    pid: int
    pinned: set[int] = field(default_factory=set)
    exited: set[int] = field(default_factory=set)
    failed: dict[int, str] = field(default_factory=dict)
    mismatched: dict[int, frozenset[int]] = field(default_factory=dict)
    missing: bool = False

    @property
    def ok(self) -> bool:
        return not self.missing and not self.failed and not self.mismatched and bool(self.pinned)


def pin_threads(pid: int, cpus: frozenset[int], *, sysfs: Sysfs | None = None) -> PinResult:
    """``taskset -a -p``: set every thread's affinity, re-listing /proc/PID/task until no new thread appears.

    Threads that exit meanwhile are fine (ESRCH); EPERM and other errors are recorded
    per thread; the new affinity is read back, since the kernel silently narrows a mask
    to the target's cpuset.
    """
    fs = sysfs or Sysfs()
    result = PinResult(pid)
    seen: set[int] = set()
    for _ in range(_MAX_PIN_PASSES):
        new = [t for t in task_ids(fs, pid) if t not in seen]
        if not new:
            break
        for tid in new:
            seen.add(tid)
            try:
                os.sched_setaffinity(tid, cpus)
            except ProcessLookupError:
                result.exited.add(tid)
            except OSError as exc:
                result.failed[tid] = errno.errorcode.get(exc.errno or 0, str(exc.errno))
            else:
                result.pinned.add(tid)
    if not seen and not pid_exists(fs, pid):
        result.missing = True
        return result
    for tid in sorted(result.pinned):
        try:
            got = frozenset(os.sched_getaffinity(tid))
        except OSError:
            result.exited.add(tid)
            continue
        if got != cpus:
            result.mismatched[tid] = got
    result.pinned -= result.exited
    return result


# --- a group of bound children (--nproc-per-node) ---------------------------------------------


@dataclass(frozen=True)
class Child:
    """One command to start bound: argv, its full environment, its binding."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    binding: Binding


def exit_status(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128 + signal number."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def run_children(children: Sequence[Child], *, grace: float = 10.0, force: bool = False) -> int:
    """Start every child bound, forward SIGINT/SIGTERM/SIGHUP, and stop the rest when one fails.

    Children run in process groups of their own (signals go to the whole group), so a
    terminal's Ctrl-C reaches them through this process's forwarding, torchrun style.

    Each child inherits its binding from this process (bound in turn before each spawn,
    restored afterwards). Returns 0 or the first failing child's status (128+signal for
    signal deaths); the others get SIGTERM, then SIGKILL after *grace* seconds.
    """
    saved_cpus = frozenset(os.sched_getaffinity(0))
    needs_mem = any(c.binding.mem_policy != "none" for c in children)
    saved_mem = get_mempolicy() if needs_mem else None
    alive: dict[int, int] = {}  # pid -> child index

    def send(sig: int) -> None:
        # Each child leads its own process group, so what it started (sh -c ...) is stopped with it.
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)

    try:
        for i, child in enumerate(children):
            bind_self(child.binding, force=force)
            try:
                pid = os.posix_spawnp(
                    child.argv[0], list(child.argv), dict(child.env), setsigdef=_RESET_SIGNALS, setpgroup=0
                )
            except OSError as exc:
                code = 127 if isinstance(exc, FileNotFoundError) else 126
                raise CommandError(f"cannot run {child.argv[0]!r}: {exc.strerror}", code) from None
            alive[pid] = i
    except BaseException:
        send(signal.SIGKILL)
        for pid in alive:
            os.waitpid(pid, 0)
        raise
    finally:
        os.sched_setaffinity(0, saved_cpus)
        if saved_mem is not None:
            mode, nodes = saved_mem
            set_mempolicy(mode if mode != "preferred" or nodes else "local", nodes)

    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, lambda signum, _frame: send(signum)) for sig in forwarded}
    first_failure: int | None = None
    deadline: float | None = None
    try:
        while alive:
            if deadline is None:
                pid, status = os.waitpid(-1, 0)
            else:
                pid, status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    if time.monotonic() >= deadline:
                        send(signal.SIGKILL)
                        deadline = float("inf")
                    time.sleep(0.02)
                    continue
            if alive.pop(pid, None) is None:
                continue
            rc = exit_status(status)
            if rc != 0 and first_failure is None:
                first_failure = rc
                send(signal.SIGTERM)
                deadline = time.monotonic() + grace
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return first_failure or 0
