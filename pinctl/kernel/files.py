"""The one reader of /sys and /proc, with a settable root.

Every file-based fact (IB port state, NVMe model, PCI link speed, IRQ
affinity, kernel settings) is read through a :class:`KernelFiles`, by the typed
readers beside this module (pinctl.kernel.*), so tests point it
at a tree under fixtures/ and ``--root`` points it at a gathered tree from
another node (the layout hwloc-gather-topology produces). Reads never raise for
missing files: a fact that is not there is None, and the caller decides whether
that matters. Permission problems are told apart, because the doctor reports
them as "skipped: needs root" rather than as a failure.
"""

from __future__ import annotations

import os

from pinctl.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the launch path
if TYPE_CHECKING:
    from typing import Final


class NeedsRoot(Exception):
    """A file exists but this user may not read it."""


class KernelFiles(Record):
    """Files under *root*: "/" for this machine, or a gathered tree (``--root``)."""

    __slots__ = ("root",)

    def __init__(self, root: str = "/") -> None:
        self.root: Final = root

    def path(self, rel: str) -> str:
        """Join *rel* (an absolute system path such as /sys/class/net) under the root."""
        return os.path.join(self.root, rel.lstrip("/"))

    def holds_a_tree(self) -> bool:
        """Whether the root has a ``sys`` or ``proc`` folder at all (a gathered tree has both)."""
        return self.exists("/sys") or self.exists("/proc")

    @property
    def is_live(self) -> bool:
        return os.path.realpath(self.root) == "/"

    def read(self, rel: str, *, strict_perm: bool = False) -> str | None:
        """The stripped text of a file, or None when absent or unreadable.

        With *strict_perm*, an unreadable existing file raises :class:`NeedsRoot`.
        """
        try:
            with open(self.path(rel), encoding="utf-8", errors="replace") as f:
                return f.read().strip()
        except PermissionError:
            if strict_perm:
                raise NeedsRoot(rel) from None
            return None
        except (OSError, ValueError):  # ValueError: a NUL byte in a path another file named
            return None

    def read_quick(self, rel: str) -> str | None:
        """Like :meth:`read` for a small file read many times a second (a thread's stat), without
        a text stream: a raw read of up to 64 kB, decoded; None when absent or unreadable."""
        try:
            fd = os.open(os.path.join(self.root, rel.lstrip("/")), os.O_RDONLY)
        except (OSError, ValueError):
            return None
        try:
            return os.read(fd, 65536).decode("utf-8", "replace")
        except OSError:
            return None
        finally:
            os.close(fd)

    def read_bytes(self, rel: str, limit: int = 4096) -> bytes | None:
        """Up to *limit* raw bytes (PCI config space); None when absent; NeedsRoot when unreadable."""
        try:
            with open(self.path(rel), "rb") as f:
                return f.read(limit)
        except PermissionError:
            raise NeedsRoot(rel) from None
        except (OSError, ValueError):
            return None

    def read_int(self, rel: str, base: int = 10) -> int | None:
        text = self.read(rel)
        if text is None:
            return None
        try:
            return int(text, base)
        except ValueError:
            return None

    def listdir(self, rel: str) -> list[str]:
        """Sorted entries of a directory; empty when it is absent."""
        try:
            return sorted(os.listdir(self.path(rel)))
        except (OSError, ValueError):
            return []

    def exists(self, rel: str) -> bool:
        return os.path.exists(self.path(rel))

    def link_name(self, rel: str) -> str | None:
        """The last component of a symlink's target (e.g. a device's driver), or None."""
        try:
            return os.path.basename(os.readlink(self.path(rel)))
        except (OSError, ValueError):
            return None

    def resolve(self, rel: str) -> str | None:
        """The symlink-resolved path of *rel*, relative to the root (starting with /).

        Used to find a class device's PCI parent (``/sys/class/infiniband/mlx5_0/device``).
        Absolute link targets in a gathered tree are re-rooted.
        """
        full = self.path(rel)
        if not os.path.lexists(full):
            return None
        real = os.path.realpath(full)
        root = os.path.realpath(self.root)
        if root != "/" and real.startswith(root + os.sep):
            return real[len(root) :]
        return real


class KeptOpen:
    """Files read every interval (a watched thread's status and schedstat), kept open and read again
    from offset 0: procfs writes a file anew on each read from its start (fs/seq_file.c), so the
    path walk and the open are paid once, not each second. At most *limit* files stay open (the
    rest are opened per read, under the soft limit on open files); :meth:`sweep` closes those not
    read since the last sweep (threads that ended), :meth:`close` all of them."""

    def __init__(self, files: KernelFiles, limit: int = 512) -> None:
        self.files = files
        self.limit = limit
        self.fds: dict[str, int] = {}
        self.read_since: set[str] = set()

    def read(self, rel: str) -> str | None:
        self.read_since.add(rel)
        fd = self.fds.get(rel)
        if fd is None:
            if len(self.fds) >= self.limit:
                return self.files.read_quick(rel)
            try:
                fd = os.open(self.files.path(rel), os.O_RDONLY)
            except (OSError, ValueError):
                return None
            self.fds[rel] = fd
        try:
            data = os.pread(fd, 65536, 0)
        except OSError:
            data = b""
        if not data:  # the task ended (ESRCH, or nothing to read): forget it
            self._drop(rel)
            return None
        return data.decode("utf-8", "replace")

    def _drop(self, rel: str) -> None:
        fd = self.fds.pop(rel, None)
        if fd is not None:
            os.close(fd)

    def sweep(self) -> None:
        for rel in [r for r in self.fds if r not in self.read_since]:
            self._drop(rel)
        self.read_since.clear()

    def close(self) -> None:
        for rel in list(self.fds):
            self._drop(rel)
