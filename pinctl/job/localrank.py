"""Which local rank am I? The launcher that started this process says; an outer one is ignored.

Launchers nest, and each leaves its variable to everything below it: a batch script
has SLURM_LOCALID=0, and mpirun or mpiexec inside it pass that on to every rank beside
their own OMPI_COMM_WORLD_LOCAL_RANK / MPI_LOCALRANKID; srun sets SLURM_LOCALID for a
torchrun that then sets LOCAL_RANK per worker. So the variables are read innermost
launcher first (docs/launchers.md has the table and the why):

1. torchrun (and pinctl's own ``--nproc-per-node``): LOCAL_RANK;
2. MPI launchers: Open MPI, MPICH Hydra and Intel MPI, MVAPICH2, Cray PALS;
3. resource managers: Slurm's srun, Flux.

Two launchers of one tier that disagree (OMPI_COMM_WORLD_LOCAL_RANK=1 with
MPI_LOCALRANKID=0) cannot both have started this process: that is refused with one
line naming both. So is a bare LOCAL_RANK that disagrees with an MPI or Slurm
variable while nothing shows a torchrun-style launcher (LOCAL_WORLD_SIZE, GROUP_RANK,
TORCHELASTIC_RUN_ID, DeepSpeed's LOCAL_SIZE): a LOCAL_RANK left exported in a job
script must not bind every MPI rank as one. A rank pinctl cannot be sure of is never guessed.
"""

from __future__ import annotations

from pinctl.cpuset import decimal
from pinctl.errors import UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the launch path
if TYPE_CHECKING:
    from collections.abc import Mapping

# (variable, launcher, tier): lower tiers run inside higher ones.
RANK_VARS: tuple[tuple[str, str, int], ...] = (
    ("LOCAL_RANK", "torchrun", 1),
    ("OMPI_COMM_WORLD_LOCAL_RANK", "Open MPI", 2),
    ("MPI_LOCALRANKID", "MPICH Hydra / Intel MPI", 2),
    ("MV2_COMM_WORLD_LOCAL_RANK", "MVAPICH2", 2),
    ("PALS_LOCAL_RANKID", "Cray PALS", 2),
    ("SLURM_LOCALID", "Slurm", 3),
    ("FLUX_TASK_LOCAL_ID", "Flux", 3),
)
# What torchrun (and pinctl launch --nproc-per-node, and DeepSpeed's launcher: LOCAL_SIZE) set beside
# LOCAL_RANK; a bare LOCAL_RANK may be stale.
TORCHRUN_MARKERS = ("LOCAL_WORLD_SIZE", "GROUP_RANK", "TORCHELASTIC_RUN_ID", "LOCAL_SIZE")


def _found(env: Mapping[str, str]) -> list[tuple[str, str, int, int]]:
    """(variable, launcher, tier, value) for every rank variable set, innermost first."""
    out = []
    for name, launcher, tier in RANK_VARS:
        text = env.get(name)
        if text is not None:
            value = decimal(text, limit=9)
            if value is None:
                raise UsageError(f"{name}={text[:40]!r} is not a local rank (a non-negative integer)")
            out.append((name, launcher, tier, value))
    return out


def _innermost(found: list[tuple[str, str, int, int]], env: Mapping[str, str]) -> tuple[int, str]:
    """The rank the innermost launcher gives, or a UsageError when launchers disagree and none is sure."""
    tier = found[0][2]
    same = [f for f in found if f[2] == tier]
    name, launcher, _, value = same[0]
    for other, other_launcher, _, other_value in same[1:]:
        if other_value != value:
            raise UsageError(
                f"{name}={value} ({launcher}) and {other}={other_value} ({other_launcher}) disagree and neither "
                "runs inside the other: give --local-rank N"
            )
    if name == "LOCAL_RANK" and not any(m in env for m in TORCHRUN_MARKERS):
        for other, other_launcher, _, other_value in found[len(same) :]:
            if other_value != value:
                raise UsageError(
                    f"LOCAL_RANK={value} but {other}={other_value} ({other_launcher}), and no torchrun variable "
                    f"({', '.join(TORCHRUN_MARKERS)}) shows which launcher started this process: unset the stale "
                    "LOCAL_RANK or give --local-rank N"
                )
    return value, name


def detect_local_rank(env: Mapping[str, str], explicit: int | None, nranks: int) -> tuple[int, str]:
    """The local rank and where it came from ("--local-rank" or the variable's name).

    Missing, out of range (the plan has *nranks* ranks) or ambiguous is a UsageError
    that names the variables, so a user knows what their launcher did.
    """
    if explicit is not None:
        value, source = explicit, "--local-rank"
    else:
        found = _found(env)
        if not found:
            names = ", ".join(name for name, _, _ in RANK_VARS)
            raise UsageError(f"cannot tell the local rank: give --local-rank N or set one of {names}")
        value, source = _innermost(found, env)
    if not 0 <= value < nranks:
        raise UsageError(f"local rank {value} (from {source}) is out of range: the plan has ranks 0-{nranks - 1}")
    return value, source


def rank_from_env(env: Mapping[str, str]) -> tuple[int, str] | None:
    """(local rank, variable) from a process's environment, or None when absent or unsure (for ``check``)."""
    try:
        found = _found(env)
        return _innermost(found, env) if found else None
    except UsageError:
        return None
