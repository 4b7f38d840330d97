"""The environment policy: what pinctl writes for a rank, and what a plan file may set.

Both halves live here so they cannot drift apart: every variable :func:`rank_env`
writes is in :data:`WRITTEN`, and a plan file may set only those and the few
tuning variables of :data:`TUNING` (tests/test_planfile.py holds them together;
docs/launch.md lists them). An allowlist of exact names, not of prefixes: inside
NCCL_*, UCX_* and OMP_* many variables load code, run a command or write files
(NCCL_NET_PLUGIN dlopens a library, NCCL_TOPO_DUMP_FILE and UCX_LOG_FILE write one,
UCX_GDB_COMMAND runs one), and a deny-list inside a prefix always has holes. A name
outside the list passes only when the person running launch names it
(``--allow-env NAME``): their command line, not the file, decides.
"""

from __future__ import annotations

from pinctl.errors import UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the launch path
if TYPE_CHECKING:
    from collections.abc import Collection

    from pinctl.plan.types import NicUse

# Each GPU vendor's selector (pinctl.plan.vendors).
GPU_SELECTORS = frozenset({
    "CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "ZE_AFFINITY_MASK", "ZE_ENABLE_PCI_ID_DEVICE_ORDER",
    "ZE_FLAT_DEVICE_HIERARCHY",
})  # fmt: skip
# Everything rank_env writes: the rank, OpenMP placement, the NICs (verbs and EFA), the GPU selector,
# the rank's helper CPUs (--helpers).
WRITTEN = GPU_SELECTORS | {
    "LOCAL_RANK", "OMP_NUM_THREADS", "OMP_PLACES", "OMP_PROC_BIND", "NCCL_IB_HCA", "UCX_NET_DEVICES", "FI_EFA_IFACE",
    "PINCTL_HELPER_CPUS",
}  # fmt: skip
# Tuning variables a hand-edited plan may carry: each takes a level, a count, a choice among names
# or an interface/device name, and none names a file, directory, library or command.
TUNING = frozenset({
    "CUDA_DEVICE_ORDER",  # PCI_BUS_ID: CUDA's indexes in PCI order, as pinctl's
    "NCCL_DEBUG", "NCCL_DEBUG_SUBSYS",  # log level and subsystems (to stdout; NCCL_DEBUG_FILE is not here)
    "NCCL_SOCKET_IFNAME", "NCCL_IB_GID_INDEX", "NCCL_IB_TIMEOUT", "NCCL_IB_RETRY_CNT", "NCCL_IB_SL", "NCCL_IB_TC",
    "NCCL_NET_GDR_LEVEL", "NCCL_P2P_LEVEL", "NCCL_CROSS_NIC",  # locality decisions
    "NCCL_ALGO", "NCCL_PROTO", "NCCL_MIN_NCHANNELS", "NCCL_MAX_NCHANNELS",
    "UCX_TLS", "UCX_IB_GID_INDEX", "UCX_RNDV_THRESH", "UCX_LOG_LEVEL",  # UCX_LOG_FILE is not here
    "OMP_WAIT_POLICY", "OMP_DYNAMIC", "OMP_MAX_ACTIVE_LEVELS",
})  # fmt: skip
PLAN_ENV_KEYS = WRITTEN | TUNING
# Why a few well-known names are dangerous, for the refusal (the list above decides, not these).
_HAZARDS = (
    (("PRELOAD", "PLUGIN", "LIBRAR", "MODULE_DIR", "_PATH"), "it makes the program load code"),
    (("COMMAND", "SHELL"), "it makes the program run a command"),
    (("_FILE", "_DEST", "_DIR"), "it names a file the program reads or writes"),
)
# NIC kinds whose verbs device names NCCL_IB_HCA and UCX_NET_DEVICES take.
VERBS_KINDS = ("infiniband", "roce", "other", "ethernet")
_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def plain_key(key: str) -> bool:
    """[A-Z_][A-Z0-9_]*, checked without re (a regex compile is measurable on the launch path)."""
    return bool(key) and not key[0].isdigit() and set(key) <= _KEY_CHARS


def env_key_allowed(key: str, allow: Collection[str] = ()) -> bool:
    """Whether a plan file may set *key* for a rank; *allow*: the names the person running launch named."""
    return plain_key(key) and (key in PLAN_ENV_KEYS or key in allow)


def allowed_names(names: Collection[str]) -> frozenset[str]:
    """The ``--allow-env`` names, each a plain variable name (a typo such as ``nccl_x`` is an error,
    not a name that silently matches nothing)."""
    for name in names:
        if not plain_key(name):
            raise UsageError(f"--allow-env {name!r}: expected a variable name ([A-Z_][A-Z0-9_]*)")
    return frozenset(names)


def env_refusal(key: str) -> str:
    """Why *key* is refused, in one line that names the way through (``--allow-env``)."""
    if not plain_key(key):
        return f"variable {key!r} is not a plain variable name ([A-Z_][A-Z0-9_]*)"
    why = next((reason for parts, reason in _HAZARDS if any(p in key for p in parts)), None)
    what = why or "it is neither one pinctl writes nor a listed tuning variable (docs/launch.md)"
    return f"variable {key!r} is not allowed in a plan file: {what}; to pass it anyway, add --allow-env {key}"


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
