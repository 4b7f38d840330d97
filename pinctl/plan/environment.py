"""The environment a rank gets: what pinctl writes for it, and the markers launch adds.

What a plan file may set is the plan file's contract (:mod:`pinctl.planfile.allowlist`):
every variable :func:`rank_env` writes is in its ``WRITTEN`` (tests/test_plan_properties.py
holds the two together).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the launch path
if TYPE_CHECKING:
    from pinctl.planfile.uses import NicUse

# NIC kinds whose verbs device names NCCL_IB_HCA and UCX_NET_DEVICES take.
VERBS_KINDS = ("infiniband", "roce", "other", "ethernet")
# What launch adds to the command's environment, beside the plan's variables: which rank of which
# plan this process was bound as. ``pinctl check`` finds the ranks by them (not by a launcher's
# variables, which batch shells and srun clients carry too), and their children inherit them.
MARKER_RANK = "PINCTL_LOCAL_RANK"
# A rank's helper CPUs (--helpers), for its data-loader workers: pinctl.api.bind_helper reads it.
HELPER_VARIABLE = "PINCTL_HELPER_CPUS"
MARKER_PLAN = "PINCTL_PLAN"


def launch_markers(local_rank: int, fingerprint: str) -> tuple[tuple[str, str], ...]:
    return ((MARKER_PLAN, fingerprint), (MARKER_RANK, str(local_rank)))


def rank_env(
    local_rank: int,
    ncores: int,
    nics: tuple[NicUse, ...],
    visible: tuple[tuple[str, str], ...] = (),
    *,
    efa_selector: bool = True,
    helpers: str = "",
) -> tuple[tuple[str, str], ...]:
    """The variables a rank gets: its rank, OpenMP placement on its cores, its NICs,
    *visible*, its GPU's selector (pinctl.plan.vendors; empty unless --isolate-gpus), and
    *helpers*, the CPU list its data-loader workers bind to (``pinctl.bind_helper``)."""
    env = {
        "LOCAL_RANK": str(local_rank),
        "OMP_NUM_THREADS": str(ncores),
        "OMP_PLACES": "cores",
        "OMP_PROC_BIND": "close",
    }
    # A name with '@' was made up by pinctl (the source knew the PCI address, not the verbs
    # device name): NCCL and UCX would match nothing, so such NICs set no variable.
    verbs = [n for n in nics if n.kind in VERBS_KINDS and "@" not in n.name]
    if verbs:
        # The '=' prefix makes NCCL match names exactly (mlx5_1 must not also select mlx5_10).
        env["NCCL_IB_HCA"] = "=" + ",".join(n.name if n.port is None else f"{n.name}:{n.port}" for n in verbs)
        env["UCX_NET_DEVICES"] = ",".join(f"{n.name}:{n.port or 1}" for n in verbs)
    # libfabric's EFA provider shows the process only the devices named here (fi_efa(7)).
    efa = [n.name for n in nics if n.kind == "efa" and "@" not in n.name]
    if efa and efa_selector:
        env["FI_EFA_IFACE"] = ",".join(efa)
    env.update(visible)
    if helpers:
        env[HELPER_VARIABLE] = helpers
    return tuple(sorted(env.items()))
