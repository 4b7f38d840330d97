"""Every file pinctl writes (``plan -o``, ``snapshot -o``, ``plan --format systemd -o DIR``) goes through here.

Root runs pinctl to write system configuration, often into shared folders (/tmp) where another
user may have planted a link or a FIFO. So a file is never opened at its own path: the text goes
into a new file in the target's folder (``O_CREAT|O_EXCL|O_NOFOLLOW``, mode 0644),
is fsynced, and renamed over the target. rename(2) replaces a name, never what a link there points
to; a reader sees the old file or the new one, never a part; a failed write (disk full, ``ulimit
-f``) leaves the old file and removes the new one. A target that is a symbolic link or not a
regular file (a FIFO would block the open) is refused. Folders are opened one component at a time
with ``O_NOFOLLOW`` and every step is relative to the folder's descriptor, so a link swapped in
after a check is refused, not followed.

``-o DIR`` is installed as it is (``cp -r DIR/. /etc/systemd/``), so a folder is used only when it is
the caller's, not writable by others, and holds nothing but what pinctl writes there; otherwise
pinctl makes the folder itself (0755).
"""

from __future__ import annotations

import errno
import os
import signal
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress

from pinctl.errors import UsageError

FILE_MODE = 0o644
FOLDER_MODE = 0o755
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def write_file(path: str, text: str) -> None:
    """Replace *path* with *text* (UTF-8), or raise a one-line UsageError and leave it as it was."""
    folder, name = os.path.split(path)
    if not name or name in (".", ".."):
        raise UsageError(f"cannot write {path!r}: not a file name")
    _ignore_file_size_signal()
    try:
        with _open_folder(folder or ".", follow=True) as dir_fd:  # only the file's own name is never followed
            _replace(dir_fd, name, text.encode("utf-8"), path)
    except OSError as exc:
        raise UsageError(f"cannot write {path!r}: {_why(exc, path)}") from None


def write_tree(folder: str, files: Sequence[tuple[str, str]]) -> None:
    """Write (relative path, text) pairs under *folder*, which pinctl makes (0755) unless it exists,
    is the caller's, is not writable by others and holds only what these files would make."""
    _ignore_file_size_signal()
    try:
        parent = os.path.dirname(folder.rstrip("/")) or ("/" if folder.startswith("/") else ".")
        with _open_folder(parent, follow=True) as parent_fd:
            _check_ancestors(parent_fd, folder)  # before anything is made there
        created = _make_folder(folder)
        with _open_folder(folder) as top:
            _check_folder(top, folder, files)  # also when made now: another user may have swapped it
            if created:  # 0755 whatever the umask: the folder is installed as it is
                os.fchmod(top, FOLDER_MODE)
            for rel, text in files:
                *parts, name = rel.split("/")
                with _open_subfolders(top, parts, folder) as dir_fd:
                    _replace(dir_fd, name, text.encode("utf-8"), os.path.join(folder, rel))
    except OSError as exc:
        raise UsageError(f"cannot write under {folder!r}: {_why(exc, folder)}") from None


def _why(exc: OSError, shown: str) -> str:
    named = isinstance(exc.filename, str) and exc.filename != shown and not exc.filename.startswith(".pinctl-")
    where = f" ({exc.filename})" if named else ""
    return f"{exc.strerror or exc}{where}"


def _ignore_file_size_signal() -> None:
    """``ulimit -f``: get EFBIG from write(2), not death by SIGXFSZ (Python ignores it at start-up;
    an embedding program may not have)."""
    sig = getattr(signal, "SIGXFSZ", None)
    if sig is not None:
        with suppress(ValueError, OSError):  # not the main thread: leave it as it is
            if signal.getsignal(sig) != signal.SIG_IGN:
                signal.signal(sig, signal.SIG_IGN)


@contextmanager
def _open_folder(path: str, follow: bool = False) -> Iterator[int]:
    """A descriptor of the folder *path*; unless *follow*, a symbolic link as its last component is refused.

    Links on the way are followed only as fs.protected_symlinks=1 would (see :func:`_resolve`)."""
    try:
        fd = _resolve(path, last_link=follow)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and not follow and os.path.islink(path):
            raise UsageError(f"-o {path!r} is a symbolic link: name the folder itself, or a new one") from None
        if exc.filename is None:
            exc.filename = path
        raise
    try:
        yield fd
    finally:
        os.close(fd)


_MAX_LINKS = 40  # as the kernel's own limit on links in one lookup (ELOOP)


def _resolve(path: str, *, last_link: bool) -> int:
    """Open the folder *path* one component at a time, each relative to the last one's descriptor.

    A symbolic link is followed only where the kernel would with fs.protected_symlinks=1: unless
    it sits in a sticky world-writable folder (/tmp) and belongs to neither the caller nor that
    folder's owner. Without this, a link another user planted in /tmp (``/tmp/plans -> /root``)
    would let root's ``-o /tmp/plans/plan.json`` replace a file there on nodes that run with the
    setting at 0. Each link is opened (O_PATH) before its owner is read and its target taken
    from that descriptor, so a link swapped in meanwhile is not the one followed."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    fd = os.open("/" if path.startswith("/") else ".", _DIR_FLAGS)
    links = 0
    try:
        while parts:
            part = parts.pop(0)
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR) or (not parts and not last_link):
                    exc.filename = exc.filename if exc.filename not in (None, part) else path
                    raise
                target = _link_target(fd, part, path)
                if target is None:  # not a link: the ENOTDIR stands
                    exc.filename = path
                    raise
                links += 1
                if links > _MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path) from None
                parts[:0] = [p for p in target.split("/") if p not in ("", ".")]
                if target.startswith("/"):
                    nxt = os.open("/", _DIR_FLAGS)
                else:
                    continue
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def _link_target(dir_fd: int, name: str, shown: str) -> str | None:
    """The target of the link *name* in *dir_fd*, or None when it is no link; a link planted by another
    user in a sticky world-writable folder is refused (fs.protected_symlinks' rule)."""
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISLNK(st.st_mode):
            return None
        folder = os.fstat(dir_fd)
        shared = folder.st_mode & stat.S_ISVTX and folder.st_mode & 0o002
        if shared and st.st_uid not in (os.geteuid(), folder.st_uid):
            raise UsageError(
                f"cannot use {shown!r}: {name!r} is a symbolic link another user (uid {st.st_uid}) made in a "
                "shared sticky folder; pinctl does not follow it: name the real folder"
            )
        return os.readlink("", dir_fd=fd)
    finally:
        os.close(fd)


@contextmanager
def _open_subfolders(top: int, parts: Sequence[str], shown: str) -> Iterator[int]:
    """The descriptor of top/parts..., each component made (0755) where missing, none followed if a link."""
    fds: list[int] = []
    try:
        current = top
        for part in parts:
            made = True
            try:
                os.mkdir(part, FOLDER_MODE, dir_fd=current)
            except FileExistsError:
                made = False
            try:
                current = os.open(part, _DIR_FLAGS, dir_fd=current)
            except OSError as exc:
                raise OSError(exc.errno, f"{exc.strerror}: not a folder pinctl made", shown) from None
            fds.append(current)
            if made:
                os.fchmod(current, FOLDER_MODE)
            _must_be_mine(os.fstat(current), os.path.join(shown, *parts))
        yield current
    finally:
        for fd in reversed(fds):
            os.close(fd)


def _replace(dir_fd: int, name: str, data: bytes, shown: str) -> None:
    """Write *data* to a new file beside *name* and rename it over *name*."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        pass
    else:
        if stat.S_ISLNK(st.st_mode):
            raise UsageError(
                f"cannot write {shown!r}: it is a symbolic link (pinctl never writes through one; name the file itself)"
            )
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"cannot write {shown!r}: it is {_kind(st.st_mode)}, not a regular file")
    tmp = f".pinctl-{os.getpid()}-{os.urandom(4).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE, dir_fd=dir_fd)
    try:
        try:
            os.fchmod(fd, FILE_MODE)  # 0644 whatever the umask, as the file it replaces is expected to be
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException as exc:
        with suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        if isinstance(exc, OSError) and exc.filename in (None, tmp):
            exc.filename = shown
        raise
    with suppress(OSError):  # the rename itself survives a crash
        os.fsync(dir_fd)


def _make_folder(folder: str) -> bool:
    """True when pinctl made *folder* now (in its parent, reached as :func:`_resolve` allows)."""
    parent, name = os.path.split(folder.rstrip("/"))
    if name in ("", ".", ".."):
        return False
    with _open_folder(parent or ("/" if folder.startswith("/") else "."), follow=True) as dir_fd:
        try:
            os.mkdir(name, FOLDER_MODE, dir_fd=dir_fd)
        except FileExistsError:
            return False
    return True


def _check_folder(top: int, folder: str, files: Sequence[tuple[str, str]]) -> None:
    """Refuse an existing -o DIR that another user could have filled, or that holds anything else."""
    _must_be_mine(os.fstat(top), folder)
    wanted_files = {rel for rel, _ in files}
    wanted_dirs = {"/".join(rel.split("/")[:k]) for rel in wanted_files for k in range(1, rel.count("/") + 1)}

    def walk(fd: int, prefix: str) -> None:
        for name in sorted(os.listdir(fd)):
            rel = f"{prefix}{name}"
            shown = os.path.join(folder, rel)
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if rel in wanted_dirs and stat.S_ISDIR(st.st_mode):
                _must_be_mine(st, shown)
                sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                try:
                    walk(sub, rel + "/")
                finally:
                    os.close(sub)
            elif rel in wanted_files and stat.S_ISREG(st.st_mode):
                _must_be_mine(st, shown)
            else:
                what = _kind(st.st_mode)
                raise UsageError(
                    f"-o {folder!r} holds {shown!r} ({what}), which pinctl does not write: it would be "
                    "installed with the drop-ins; name a new folder (pinctl makes it)"
                )

    walk(top, "")


def _check_ancestors(start: int, folder: str) -> None:
    """Refuse -o DIR below a folder another user may rename things in: between pinctl's write and
    ``cp -r DIR/. /etc/systemd/`` that user could move DIR away and put a folder of drop-ins of its
    own in its place. Each folder up to / must be root's or the caller's, and not writable by others
    unless sticky (/tmp: only an entry's owner may rename it)."""
    fd = os.dup(start)
    try:
        here = None
        while True:
            st = os.fstat(fd)
            owner_ok = st.st_uid in (0, os.geteuid())
            shared = st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX
            if not owner_ok or shared:
                whose = (
                    f"belongs to uid {st.st_uid}"
                    if not owner_ok
                    else f"is writable by others (mode {stat.S_IMODE(st.st_mode):04o})"
                )
                raise UsageError(
                    f"-o {folder!r}: a folder above it {whose}, so another user could swap the drop-ins before "
                    "they are installed: name a folder under one only you (or root) can change"
                )
            if here is not None and (st.st_dev, st.st_ino) == (here.st_dev, here.st_ino):  # / is its own parent
                return
            here = st
            parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent
    finally:
        os.close(fd)


def _must_be_mine(st: os.stat_result, shown: str) -> None:
    if st.st_uid != os.geteuid():
        raise UsageError(f"-o {shown!r} belongs to another user (uid {st.st_uid}): name a new folder (pinctl makes it)")
    if st.st_mode & 0o022:
        raise UsageError(
            f"-o {shown!r} is writable by others (mode {stat.S_IMODE(st.st_mode):04o}): name a new "
            "folder (pinctl makes it)"
        )


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISREG, "a file"),
    )
    return next((word for test, word in kinds if test(mode)), "not a regular file")
