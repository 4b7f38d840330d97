"""One exception tree for pinctl; the CLI maps each class to an exit code.

Nothing below the CLI prints or exits: library code raises one of these and the
CLI turns it into a one-line message (a traceback only with ``--debug``).
"""

from __future__ import annotations


class PinctlError(Exception):
    """Base class: a problem the user can act on, reported as one line."""

    exit_code = 1


class UsageError(PinctlError):
    """Bad option values: malformed CPU lists, unknown GPUs or NICs, empty selections."""

    exit_code = 2


class TopologyError(PinctlError):
    """A topology source that is missing, unreadable, malformed or crashes libhwloc."""

    exit_code = 3


class PlanError(PinctlError):
    """A plan that cannot be made, or a plan file that is invalid or untrusted."""

    exit_code = 4


class ProcessError(PinctlError):
    """A process that vanished, or that we may not touch (EPERM)."""

    exit_code = 5


class CommandError(ProcessError):
    """The command could not be started; exit code as a shell would give (127 not found, 126 not runnable)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class BindError(PinctlError):
    """A binding the user asked for did not take (or took only partly)."""

    exit_code = 6


class OutputError(PinctlError):
    """Standard output could not be written (a full disk, a closed stream): EX_IOERR of sysexits.h,
    apart from every code a command gives on purpose (doctor's 1 and 2 included)."""

    exit_code = 74


class PinctlWarning(UserWarning):
    """A problem that ``force=True`` let pass (a foreign plan, a binding that did not fully take)."""
