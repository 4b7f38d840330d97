"""What a plan file may set in a rank's environment: an allowlist of exact names.

Every variable :func:`pinctl.plan.environment.rank_env` writes is in :data:`WRITTEN`,
and a plan file may set only those and the few tuning variables of :data:`TUNING`
(tests/test_plan_properties.py holds them together; docs/launch.md lists them). An
allowlist of exact names, not of prefixes: inside NCCL_*, UCX_* and OMP_* many
variables load code, run a command or write files (NCCL_NET_PLUGIN dlopens a library,
NCCL_TOPO_DUMP_FILE and UCX_LOG_FILE write one, UCX_GDB_COMMAND runs one), and a
deny-list inside a prefix always has holes. A name outside the list passes only when
the person running launch names it (``--allow-env NAME``): their command line, not
the file, decides.
"""

from __future__ import annotations

from pinctl.errors import UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the launch path
if TYPE_CHECKING:
    from collections.abc import Collection

# Each GPU vendor's selector (pinctl.plan.vendors).
GPU_SELECTORS = frozenset(
    {
        "CUDA_VISIBLE_DEVICES",
        "ROCR_VISIBLE_DEVICES",
        "ZE_AFFINITY_MASK",
        "ZE_ENABLE_PCI_ID_DEVICE_ORDER",
        "ZE_FLAT_DEVICE_HIERARCHY",
    }
)
# Everything rank_env writes: the rank, OpenMP placement, the NICs (verbs and EFA), the GPU selector,
# the rank's helper CPUs (--helpers).
WRITTEN = GPU_SELECTORS | {
    "LOCAL_RANK",
    "OMP_NUM_THREADS",
    "OMP_PLACES",
    "OMP_PROC_BIND",
    "NCCL_IB_HCA",
    "UCX_NET_DEVICES",
    "FI_EFA_IFACE",
    "PINCTL_HELPER_CPUS",
}
# Tuning variables a hand-edited plan may carry: each takes a level, a count, a choice among names
# or an interface/device name, and none names a file, directory, library or command.
TUNING = frozenset(
    {
        "CUDA_DEVICE_ORDER",  # PCI_BUS_ID: CUDA's indexes in PCI order, as pinctl's
        "NCCL_DEBUG",
        "NCCL_DEBUG_SUBSYS",  # log level and subsystems (to stdout; NCCL_DEBUG_FILE is not here)
        "NCCL_SOCKET_IFNAME",
        "NCCL_IB_GID_INDEX",
        "NCCL_IB_TIMEOUT",
        "NCCL_IB_RETRY_CNT",
        "NCCL_IB_SL",
        "NCCL_IB_TC",
        "NCCL_NET_GDR_LEVEL",
        "NCCL_P2P_LEVEL",
        "NCCL_CROSS_NIC",  # locality decisions
        "NCCL_ALGO",
        "NCCL_PROTO",
        "NCCL_MIN_NCHANNELS",
        "NCCL_MAX_NCHANNELS",
        "UCX_TLS",
        "UCX_IB_GID_INDEX",
        "UCX_RNDV_THRESH",
        "UCX_LOG_LEVEL",  # UCX_LOG_FILE is not here
        "OMP_WAIT_POLICY",
        "OMP_DYNAMIC",
        "OMP_MAX_ACTIVE_LEVELS",
    }
)
PLAN_ENV_KEYS = WRITTEN | TUNING
# Why a few well-known names are dangerous, for the refusal (the list above decides, not these).
_HAZARDS = (
    (("PRELOAD", "PLUGIN", "LIBRAR", "MODULE_DIR", "_PATH"), "it makes the program load code"),
    (("COMMAND", "SHELL"), "it makes the program run a command"),
    (("_FILE", "_DEST", "_DIR"), "it names a file the program reads or writes"),
)
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
