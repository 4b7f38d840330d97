"""The environment policy: what pinctl writes for a rank, and what a plan file may set.

Both halves live here so they cannot drift apart: every variable :func:`rank_env`
writes must pass :func:`env_key_allowed`, the check an untrusted plan file meets
(tests/test_planfile.py holds them together). A plan must never be able to set
LD_PRELOAD or PATH; inside the allowed prefixes some variables load code or write
files (NCCL_NET_PLUGIN, NCCL_TUNER_PLUGIN and NCCL_PROFILER_PLUGIN dlopen a library,
NCCL_CONF_FILE sets further variables, NCCL_DEBUG_FILE writes anywhere,
OMP_TOOL_LIBRARIES (OpenMP 5 OMPT) dlopens, UCX_MODULE_DIR picks where UCX loads
modules from), and a plan never needs them.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the launch path
if TYPE_CHECKING:
    from pinctl.plan.types import NicUse

ENV_PREFIXES = ("NCCL_", "UCX_", "OMP_", "PINCTL_")
# Single names: each GPU vendor's selector (pinctl.plan.vendors) and EFA's per-process NIC list.
GPU_SELECTORS = frozenset({
    "CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "ZE_AFFINITY_MASK", "ZE_ENABLE_PCI_ID_DEVICE_ORDER",
    "ZE_FLAT_DEVICE_HIERARCHY",
})  # fmt: skip
ENV_KEYS = GPU_SELECTORS | {"FI_EFA_IFACE", "LOCAL_RANK"}
ENV_DENY_PARTS = ("PLUGIN", "LIBRAR", "MODULE_DIR", "CONF_FILE", "DEBUG_FILE", "_PATH", "OMP_TOOL")
ALLOWED_TEXT = (
    "only NCCL_*, UCX_*, OMP_*, PINCTL_*, LOCAL_RANK, FI_EFA_IFACE and the GPU selectors "
    "(CUDA_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES, ZE_AFFINITY_MASK, ZE_ENABLE_PCI_ID_DEVICE_ORDER, "
    "ZE_FLAT_DEVICE_HIERARCHY)"
)
# NIC kinds whose verbs device names NCCL_IB_HCA and UCX_NET_DEVICES take.
VERBS_KINDS = ("infiniband", "roce", "other", "ethernet")
_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def plain_key(key: str) -> bool:
    """[A-Z_][A-Z0-9_]*, checked without re (a regex compile is measurable on the launch path)."""
    return bool(key) and not key[0].isdigit() and set(key) <= _KEY_CHARS


def env_key_allowed(key: str) -> bool:
    """Whether a plan file may set *key* for a rank."""
    if not plain_key(key) or any(part in key for part in ENV_DENY_PARTS):
        return False
    return key in ENV_KEYS or any(key.startswith(p) and len(key) > len(p) for p in ENV_PREFIXES)


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
    local_rank: int, ncores: int, nics: tuple[NicUse, ...], visible: tuple[tuple[str, str], ...] = (),
    *, efa_selector: bool = True, helpers: str = "",
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
