"""Which local rank am I? Read from the launcher's environment, first variable found wins.

Each launcher names it differently; the order puts torchrun's LOCAL_RANK first
because torchrun under Slurm sets both and LOCAL_RANK is the one it means.
"""

from __future__ import annotations

from collections.abc import Mapping

from pinctl.errors import UsageError

RANK_VARS: tuple[tuple[str, str], ...] = (
    ("LOCAL_RANK", "torchrun"),
    ("SLURM_LOCALID", "Slurm"),
    ("OMPI_COMM_WORLD_LOCAL_RANK", "Open MPI"),
    ("MV2_COMM_WORLD_LOCAL_RANK", "MVAPICH2"),
    ("MPI_LOCALRANKID", "Intel MPI / MPICH"),
    ("PALS_LOCAL_RANKID", "Cray PALS"),
    ("FLUX_TASK_LOCAL_ID", "Flux"),
)


def detect_local_rank(env: Mapping[str, str], explicit: int | None, nranks: int) -> tuple[int, str]:
    """The local rank and where it came from ("--local-rank" or the variable's name).

    Missing or out of range (the plan has *nranks* ranks) is a UsageError that names
    the variables looked at, so a user knows what their launcher failed to set.
    """
    if explicit is not None:
        source = "--local-rank"
        value = explicit
    else:
        for name, _launcher in RANK_VARS:
            text = env.get(name)
            if text is not None:
                if not text.strip().isdigit():
                    raise UsageError(f"{name}={text!r} is not a local rank (a non-negative integer)")
                value, source = int(text), name
                break
        else:
            names = ", ".join(name for name, _ in RANK_VARS)
            raise UsageError(f"cannot tell the local rank: give --local-rank N or set one of {names}")
    if not 0 <= value < nranks:
        raise UsageError(f"local rank {value} (from {source}) is out of range: the plan has ranks 0-{nranks - 1}")
    return value, source


def rank_from_env(env: Mapping[str, str]) -> tuple[int, str] | None:
    """(local rank, variable) from a process's environment, or None; never raises (for ``check``)."""
    for name, _launcher in RANK_VARS:
        text = env.get(name)
        if text is not None:
            return (int(text), name) if text.strip().isdigit() else None
    return None
