"""Standard output and error as a job or a script hands them over: closed, full, or a reader gone.

``pinctl show >&-`` starts with ``sys.stdout`` None; ``> /dev/full`` fails each write with ENOSPC;
``| head`` with EPIPE once the reader exits. The rules, for every command and both fast paths:

* EPIPE on standard output: the reader has what it wanted; exit quietly (141, as a shell
  reports a command that SIGPIPE ended).
* Any other failed write to standard output (full disk, closed stream): one line on standard
  error and exit 74 (EX_IOERR): a scheduler must not take a half-written plan or report for one.
* Standard error is where that one line goes, so a failure there is dropped: diagnostics
  cannot be reported anywhere else, and must not stop a command (``launch`` still execs).
* ``launch`` execs its command with the descriptors it was given, closed or full: the stand-ins
  here hold no descriptor, so nothing is opened in their place.

:func:`guard` installs forwarding wrappers (so rich, click and plain writes are all covered)
and :func:`finish` flushes them at the end, where buffered output to a full disk fails.
"""

from __future__ import annotations

import errno
import os
import sys

from pinctl.errors import OutputError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the launch path
if TYPE_CHECKING:
    from typing import Any, TextIO

EPIPE_EXIT = 141


class ReaderGone(Exception):
    """Standard output's reader exited (EPIPE): stop writing, exit quietly."""


class _Closed:
    """Stands in for a stream that was closed before pinctl started (``>&-``): holds no descriptor."""

    encoding = "utf-8"
    errors = "strict"
    closed = False

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "the stream is closed")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        raise OSError(errno.EBADF, "the stream is closed")


class _Guarded:
    """Forwards to a real stream; turns a failed write into the rule for its stream (module doc)."""

    def __init__(self, stream: Any, fd: int, is_stdout: bool) -> None:
        self._stream = stream
        self._fd = fd
        self._is_stdout = is_stdout
        self.failed = False

    def write(self, text: str) -> int:
        if self.failed and not self._is_stdout:
            return len(text)
        try:
            return int(self._stream.write(text))
        except OSError as exc:
            self._fail(exc)
            return len(text)

    def flush(self) -> None:
        if self.failed and not self._is_stdout:
            return
        try:
            self._stream.flush()
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        # Not silenced here: a caller may swallow the exception (click probes a stream with a write),
        # so the next write must fail again; main() and finish() silence the stream once it is reported.
        self.failed = True
        if not self._is_stdout:  # dropped; the descriptor stays as it is for a command launch execs
            return
        if exc.errno == errno.EPIPE:
            raise ReaderGone from None
        raise OutputError(f"cannot write to standard output: {exc.strerror or exc}") from None

    def silence(self) -> None:
        """Point the failed descriptor at /dev/null, so output still buffered cannot fail again at exit."""
        if self._fd < 0:
            return
        try:
            null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            os.dup2(null, self._fd, inheritable=False)
        except OSError:
            pass
        finally:
            os.close(null)
        self._fd = -1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard() -> tuple[Any, Any]:
    """Wrap sys.stdout and sys.stderr (stand-ins where closed); returns the originals for :func:`restore`."""
    _hold_closed_descriptors()
    saved = (sys.stdout, sys.stderr)
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name)
        if isinstance(stream, _Guarded):
            continue
        real_fd = fd if stream is not None and _fileno(stream) == fd else -1
        setattr(sys, name, _Guarded(_Closed() if stream is None else stream, real_fd, name == "stdout"))
    return saved


def _hold_closed_descriptors() -> None:
    """Put /dev/null, close-on-exec, on a closed descriptor 0, 1 or 2 while pinctl runs.

    Otherwise the next file pinctl opens (a plan, a drop-in being written) would become
    "standard error" for any library that writes to descriptor 2. Close-on-exec: the command
    ``launch`` execs, and every rank it starts, still get the descriptor closed, as pinctl did.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            try:
                held = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            except OSError:
                return
            if held != fd:  # a lower one was free after all; leave things as they are
                os.close(held)
                return


def finish(code: int) -> int:
    """Flush standard output (a full disk fails here, after the last write) and standard error;
    the exit code, with a failure not yet reported (*code* is not already OutputError's) said once."""
    try:
        sys.stdout.flush()
    except ReaderGone:
        code = EPIPE_EXIT
    except OutputError as exc:
        if code != exc.exit_code:
            sys.stderr.write(f"pinctl: error: {exc}\n")
            code = exc.exit_code
    sys.stderr.flush()
    silence()
    return code


def silence() -> None:
    """After a failed write: point that descriptor at /dev/null, so what is still buffered cannot
    fail again when Python flushes at exit (an "Exception ignored" message and exit 120)."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, _Guarded) and stream.failed:
            stream.silence()


def restore(saved: tuple[TextIO | None, TextIO | None]) -> None:
    sys.stdout, sys.stderr = saved


def _fileno(stream: Any) -> int:
    try:
        return int(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return -1
