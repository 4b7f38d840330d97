"""Launching one bound command: what to run, as a value, and the exec that replaces this process.

A :class:`LaunchSpec` holds the binding, the variables to add and the argv; it is
built before anything is applied (STYLE habit 7), so ``--dry-run`` prints exactly
what the real run would apply. :func:`exec_command` then hands this PID to the
command (no shell, PATH lookup), which keeps the binding across ``execve``.
"""

from __future__ import annotations

import os
import sys

from pinctl.errors import CommandError
from pinctl.plan.binding import Binding
from pinctl.plan.environment import launch_markers
from pinctl.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the launch path
if TYPE_CHECKING:
    import signal
    from collections.abc import Mapping, Sequence
    from typing import Final, NoReturn

    from pinctl.planfile.types import RankPlan
else:  # signal's own functions, without the module's IntEnum wrappers (enum: ~2 ms a rank)
    import _signal as signal

# Signals that Python ignores at start-up; a launched command must get them back at their defaults.
RESET_SIGNALS = tuple(s for s in (getattr(signal, "SIGPIPE", None), getattr(signal, "SIGXFSZ", None)) if s)


class LaunchSpec(Record):
    """One bound command: what to bind, which variables to add, what to run, and for which rank."""

    __slots__ = ("argv", "binding", "env", "local_rank", "rank_source")

    def __init__(
        self,
        binding: Binding,
        env: tuple[tuple[str, str], ...],
        argv: tuple[str, ...],
        local_rank: int | None = None,
        rank_source: str | None = None,
    ) -> None:
        self.binding: Final = binding
        self.env: Final = env
        self.argv: Final = argv
        self.local_rank: Final = local_rank
        self.rank_source: Final = rank_source


def spec_for_rank(rank: RankPlan, fingerprint: str, argv: Sequence[str], source: str | None = None) -> LaunchSpec:
    """The launch of one plan rank: its binding, its variables and pinctl's markers (for ``check``)."""
    env = tuple(sorted({**dict(rank.env), **dict(launch_markers(rank.local_rank, fingerprint))}.items()))
    return LaunchSpec(Binding.of_rank(rank), env, tuple(argv), rank.local_rank, source)


def build_env(base: Mapping[str, str], updates: Sequence[tuple[str, str]]) -> dict[str, str]:
    env = dict(base)
    env.update(updates)
    return env


def exec_command(argv: Sequence[str], env: Mapping[str, str]) -> NoReturn:
    """Replace this process with *argv* (PATH lookup, no shell): same PID, the command's own exit status."""
    sys.stdout.flush()
    sys.stderr.flush()
    for sig in RESET_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.execvpe(argv[0], list(argv), dict(env))
    except OSError as exc:
        code = 127 if isinstance(exc, FileNotFoundError) else 126
        raise CommandError(f"cannot run {argv[0]!r}: {exc.strerror}", code) from None
