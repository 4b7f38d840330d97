"""The NUMA memory-policy syscalls: set_mempolicy, get_mempolicy, migrate_pages.

They go straight to the kernel through ``syscall(2)``: libnuma is not a dependency,
and hwloc's plain BIND becomes MPOL_PREFERRED_MANY (only BIND|STRICT is a real bind). A thread's
mempolicy survives ``execve``, which is what makes ``launch`` work without a
wrapper process. ctypes is loaded on first use (it costs a few ms to import).
"""

from __future__ import annotations

import errno
import os

from pinctl.cpuset import format_list
from pinctl.errors import BindError, ProcessError, UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms) on the launch fast path
if TYPE_CHECKING:
    import ctypes

# linux/mempolicy.h
MPOL_DEFAULT, MPOL_PREFERRED, MPOL_BIND, MPOL_INTERLEAVE, MPOL_LOCAL, MPOL_PREFERRED_MANY = range(6)
_MODE_FLAGS = (1 << 15) | (1 << 14) | (1 << 13)  # MPOL_F_STATIC_NODES | RELATIVE_NODES | NUMA_BALANCING
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
            # errno 0 would read "Success" in an error message.
            raise OSError(err, os.strerror(err) if err else "failed without setting errno")
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
