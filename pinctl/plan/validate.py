"""The plan-file validator: a plan (pinctl.plan/v1) from disk is untrusted input.

A plan file decides which environment a job starts with, so it is checked by
hand against the same rules as pinctl/schemas/plan-v1.json (no jsonschema at
run time: it costs more to import than ``launch`` may spend). Environment keys
come only from an allowlist (NCCL_*, UCX_*, OMP_*, PINCTL_*, CUDA_VISIBLE_DEVICES,
LOCAL_RANK): a plan must not be able to set LD_PRELOAD or PATH. A plan made for
another node is refused unless ``--force`` (see :func:`check_live_node`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from pinctl.cpuset import format_list, parse_list
from pinctl.errors import PlanError, UsageError
from pinctl.kernel.files import Sysfs
from pinctl.kernel.proc import online_nodes, read_status

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms) on the launch fast path
if TYPE_CHECKING:
    from typing import Any

SCHEMA_ID = "pinctl.plan/v1"
MAX_FILE_BYTES = 8 << 20
MAX_RANKS = 4096
MAX_ID = 65535  # CPU and NUMA node numbers
MAX_ENV = 256
MAX_KEY = 128
MAX_VALUE = 4096
MAX_STRING = 4096
MAX_LIST = 1024  # nics, storage, warnings
ENV_PREFIXES = ("NCCL_", "UCX_", "OMP_", "PINCTL_")
ENV_KEYS = frozenset({"CUDA_VISIBLE_DEVICES", "LOCAL_RANK"})
# Inside the allowed prefixes some variables load code or write files: NCCL_NET_PLUGIN,
# NCCL_TUNER_PLUGIN and NCCL_PROFILER_PLUGIN dlopen a library, NCCL_CONF_FILE sets further
# variables, NCCL_DEBUG_FILE writes anywhere, OMP_TOOL_LIBRARIES (OpenMP 5 OMPT) dlopens,
# UCX_MODULE_DIR picks the directory UCX loads its modules from. A plan never needs them.
ENV_DENY_PARTS = ("PLUGIN", "LIBRAR", "MODULE_DIR", "CONF_FILE", "DEBUG_FILE", "_PATH", "OMP_TOOL")
MEM_POLICIES = ("bind", "preferred", "interleave", "local", "none")
_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_TOP_KEYS = {"schema", "node", "options", "ranks", "warnings"}
_NODE_KEYS = {"hostname", "source", "fingerprint"}
_RANK_KEYS = {
    "local_rank", "gpu", "numa_node", "cpus", "cpulist", "cores", "mems", "mem_policy", "nics", "storage", "env",
}  # fmt: skip
_RANK_REQUIRED = {"local_rank", "cpus", "mems", "mem_policy", "env"}
_GPU_KEYS = {"index", "pci_bus_id", "uuid", "minor"}
_NIC_KEYS = {"name", "port", "netdev", "pci_bus_id", "distance", "kind"}
_STORAGE_KEYS = {"name", "pci_bus_id", "distance"}


@dataclass(frozen=True)
class RankPlan:
    """What one local rank gets: its CPUs, memory policy and environment."""

    local_rank: int
    cpus: frozenset[int]
    mems: frozenset[int]
    mem_policy: str
    env: tuple[tuple[str, str], ...]
    gpu_index: int | None = None
    gpu_bus_id: str | None = None
    numa_node: int | None = None


@dataclass(frozen=True)
class PlanFile:
    """A validated plan: only the facts launch, pin and check act on."""

    hostname: str
    source: str
    fingerprint: str
    ranks: tuple[RankPlan, ...]
    warnings: tuple[str, ...] = ()

    def rank(self, local_rank: int) -> RankPlan | None:
        for r in self.ranks:
            if r.local_rank == local_rank:
                return r
        return None

    def ranks_for_gpu(self, gpu: int) -> tuple[RankPlan, ...]:
        return tuple(r for r in self.ranks if r.gpu_index == gpu)


def _plain_key(key: str) -> bool:
    """[A-Z_][A-Z0-9_]*, checked without re (a regex compile is measurable on the fast path)."""
    return bool(key) and not key[0].isdigit() and set(key) <= _KEY_CHARS


def env_key_allowed(key: str) -> bool:
    if any(part in key for part in ENV_DENY_PARTS):
        return False
    return key in ENV_KEYS or any(key.startswith(p) and len(key) > len(p) for p in ENV_PREFIXES)


# --- loading ------------------------------------------------------------------------------------


def load_plan_file(path: str) -> PlanFile:
    """Read, parse and validate a plan file; any problem is one PlanError naming the place."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise PlanError(f"cannot read plan file {path!r}: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise PlanError(f"plan file {path!r} is larger than {MAX_FILE_BYTES >> 20} MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PlanError(f"plan file {path!r} is not UTF-8") from None
    return parse_plan_text(text, what=f"plan file {path!r}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise PlanError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise PlanError(f"{name} is not valid JSON")


def parse_plan_text(text: str, *, what: str = "plan") -> PlanFile:
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except PlanError as exc:
        raise PlanError(f"{what}: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise PlanError(f"{what} is not valid JSON: {str(exc)[:200]}") from None
    try:
        return validate_plan(obj)
    except PlanError as exc:
        raise PlanError(f"{what}: {exc}") from None


# --- validation ---------------------------------------------------------------------------------


def _fail(where: str, message: str) -> PlanError:
    return PlanError(f"{where}: {message}")


def _obj(value: object, where: str, keys: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, f"expected an object, got {type(value).__name__}")
    unknown = sorted(set(value) - keys)
    if unknown:
        raise _fail(where, f"unknown key {unknown[0]!r}")
    missing = sorted(required - set(value))
    if missing:
        raise _fail(where, f"missing key {missing[0]!r}")
    return value


def _str(value: object, where: str, *, nullable: bool = False, limit: int = MAX_STRING) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise _fail(where, f"expected a string, got {type(value).__name__}")
    if "\0" in value:
        raise _fail(where, "contains a NUL character")
    if len(value) > limit:
        raise _fail(where, f"longer than {limit} characters")
    return value


def _int(value: object, where: str, *, lo: int = 0, hi: int = MAX_ID, nullable: bool = False) -> int | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, f"expected an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise _fail(where, f"{value} is out of range {lo}..{hi}")
    return value


def _ids(value: object, where: str) -> frozenset[int]:
    if not isinstance(value, list):
        raise _fail(where, f"expected a list of integers, got {type(value).__name__}")
    if len(value) > MAX_ID + 1:
        raise _fail(where, "too many entries")
    out = {_int(v, f"{where}[{i}]") for i, v in enumerate(value)}
    if len(out) != len(value):
        raise _fail(where, "duplicate entries")
    return frozenset(v for v in out if v is not None)


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(where, f"expected a list, got {type(value).__name__}")
    if len(value) > MAX_LIST:
        raise _fail(where, f"more than {MAX_LIST} entries")
    return value


def _env(value: object, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise _fail(where, f"expected an object, got {type(value).__name__}")
    if len(value) > MAX_ENV:
        raise _fail(where, f"more than {MAX_ENV} variables")
    out: list[tuple[str, str]] = []
    for key, val in value.items():
        if len(key) > MAX_KEY or not _plain_key(key) or not env_key_allowed(key):
            raise _fail(
                where,
                f"variable {key[:MAX_KEY]!r} is not allowed (only NCCL_*, UCX_*, OMP_*, PINCTL_*, "
                "CUDA_VISIBLE_DEVICES, LOCAL_RANK)",
            )
        text = _str(val, f"{where}.{key}", limit=MAX_VALUE)
        assert text is not None
        out.append((key, text))
    return tuple(sorted(out))


def _rank(value: object, where: str) -> RankPlan:
    r = _obj(value, where, _RANK_KEYS, _RANK_REQUIRED)
    local_rank = _int(r["local_rank"], f"{where}.local_rank", hi=MAX_RANKS - 1)
    assert local_rank is not None
    cpus = _ids(r["cpus"], f"{where}.cpus")
    if not cpus:
        raise _fail(f"{where}.cpus", "empty")
    if "cpulist" in r:
        cpulist = _str(r["cpulist"], f"{where}.cpulist")
        if cpulist != format_list(cpus):
            raise _fail(f"{where}.cpulist", f"{cpulist!r} does not match cpus ({format_list(cpus)})")
    if "cores" in r:
        _ids(r["cores"], f"{where}.cores")
    mems = _ids(r["mems"], f"{where}.mems")
    policy = _str(r["mem_policy"], f"{where}.mem_policy")
    if policy not in MEM_POLICIES:
        raise _fail(f"{where}.mem_policy", f"{policy!r} is not one of {', '.join(MEM_POLICIES)}")
    if policy in ("local", "none") and mems:
        raise _fail(f"{where}.mems", f"must be empty for policy {policy}")
    if policy in ("bind", "preferred", "interleave") and not mems:
        raise _fail(f"{where}.mems", f"policy {policy} needs at least one node")
    numa_node = _int(r.get("numa_node"), f"{where}.numa_node", nullable=True)
    gpu_index: int | None = None
    bus_id: str | None = None
    if r.get("gpu") is not None:
        g = _obj(r["gpu"], f"{where}.gpu", _GPU_KEYS, {"index"})
        gpu_index = _int(g["index"], f"{where}.gpu.index", hi=MAX_RANKS)
        bus_id = _str(g.get("pci_bus_id"), f"{where}.gpu.pci_bus_id", nullable=True, limit=64)
        _str(g.get("uuid"), f"{where}.gpu.uuid", nullable=True, limit=128)
        _int(g.get("minor"), f"{where}.gpu.minor", nullable=True)
    for i, nic in enumerate(_list(r.get("nics", []), f"{where}.nics")):
        n = _obj(nic, f"{where}.nics[{i}]", _NIC_KEYS, {"name"})
        _str(n["name"], f"{where}.nics[{i}].name", limit=64)
        _int(n.get("port"), f"{where}.nics[{i}].port", nullable=True)
        for key in ("netdev", "pci_bus_id", "distance", "kind"):
            _str(n.get(key), f"{where}.nics[{i}].{key}", nullable=True, limit=64)
    for i, dev in enumerate(_list(r.get("storage", []), f"{where}.storage")):
        s = _obj(dev, f"{where}.storage[{i}]", _STORAGE_KEYS, {"name"})
        _str(s["name"], f"{where}.storage[{i}].name", limit=64)
        for key in ("pci_bus_id", "distance"):
            _str(s.get(key), f"{where}.storage[{i}].{key}", nullable=True, limit=64)
    env = _env(r["env"], f"{where}.env")
    declared = dict(env).get("LOCAL_RANK")
    if declared is not None and declared != str(local_rank):
        raise _fail(f"{where}.env.LOCAL_RANK", f"{declared!r} does not match local_rank {local_rank}")
    return RankPlan(local_rank, cpus, mems, policy, env, gpu_index, bus_id, numa_node)


def validate_plan(obj: object) -> PlanFile:
    """Check a parsed plan against the pinctl.plan/v1 rules and keep what acting on it needs."""
    top = _obj(obj, "plan", _TOP_KEYS, {"schema", "node", "ranks"})
    if top["schema"] != SCHEMA_ID:
        raise _fail("schema", f"{str(top['schema'])[:80]!r} is not {SCHEMA_ID!r}")
    node = _obj(top["node"], "node", _NODE_KEYS, _NODE_KEYS)
    hostname = _str(node["hostname"], "node.hostname", limit=255)
    source = _str(node["source"], "node.source")
    fingerprint = _str(node["fingerprint"], "node.fingerprint", limit=128)
    if "options" in top and not isinstance(top["options"], dict):
        raise _fail("options", "expected an object")
    warnings = tuple(_str(w, f"warnings[{i}]") or "" for i, w in enumerate(_list(top.get("warnings", []), "warnings")))
    raw_ranks = top["ranks"]
    if not isinstance(raw_ranks, list):
        raise _fail("ranks", "expected a list")
    if not raw_ranks:
        raise _fail("ranks", "no ranks")
    if len(raw_ranks) > MAX_RANKS:
        raise _fail("ranks", f"more than {MAX_RANKS} ranks")
    ranks = tuple(_rank(r, f"ranks[{i}]") for i, r in enumerate(raw_ranks))
    seen: set[int] = set()
    for r in ranks:
        if r.local_rank in seen:
            raise _fail("ranks", f"local_rank {r.local_rank} appears twice")
        seen.add(r.local_rank)
    if seen != set(range(len(ranks))):
        raise _fail("ranks", f"local ranks must be 0-{len(ranks) - 1}, got {format_list(seen)}")
    ranks = tuple(sorted(ranks, key=lambda r: r.local_rank))
    assert hostname is not None and source is not None and fingerprint is not None
    return PlanFile(hostname, source, fingerprint, ranks, warnings)


# --- is it this node's plan? ---------------------------------------------------------------------


def check_live_node(plan: PlanFile, rank: RankPlan | None, *, sysfs: Sysfs | None = None) -> list[str]:
    """Cheap checks that a plan was made for this node: one line per reason it was not (empty = fine).

    The fingerprint needs discovery (hwloc, NVML), too slow for ``launch --plan``; this
    checks what sysfs tells at once: the hostname, that every CPU of the plan exists here,
    every memory node is online and every rank's CPUs lie in its NUMA node, and that the
    launched rank's CPUs and nodes are in this process's allowed cpuset and mems
    (Cpus_allowed_list, Mems_allowed_list).
    """
    fs = sysfs or Sysfs()
    problems: list[str] = []
    live_host = os.uname().nodename  # what socket.gethostname() returns, without importing socket
    if plan.hostname != live_host:
        problems.append(f"plan was made on host {plan.hostname!r}, this is {live_host!r}")
    present_text = fs.read("/sys/devices/system/cpu/present")
    if present_text:
        present = parse_list(present_text, what="present CPU list")
        extra = set().union(*(r.cpus for r in plan.ranks)) - present
        if extra:
            problems.append(f"CPUs {format_list(extra)} of the plan do not exist here")
    nodes = online_nodes(fs)
    extra_nodes = set().union(*(r.mems for r in plan.ranks)) - nodes
    if extra_nodes:
        problems.append(f"NUMA nodes {format_list(extra_nodes)} of the plan are not online here")
    problems += _numa_layout_problems(plan, fs)
    if rank is not None:
        me = read_status(fs, "self")
        if me is not None:
            outside = rank.cpus - me.cpus_allowed
            if outside:
                problems.append(
                    f"rank {rank.local_rank}'s CPUs {format_list(outside)} are outside the allowed "
                    f"cpuset {format_list(me.cpus_allowed)}"
                )
            outside_mems = rank.mems - me.mems_allowed
            if outside_mems:
                problems.append(
                    f"rank {rank.local_rank}'s memory nodes {format_list(outside_mems)} are outside the "
                    f"allowed mems {format_list(me.mems_allowed)}"
                )
    return problems


def _numa_layout_problems(plan: PlanFile, fs: Sysfs) -> list[str]:
    """Each rank's CPUs must lie in its NUMA node here: a same-named node with another
    CPU numbering (BIOS change, other hardware) would otherwise be bound across sockets."""
    problems: list[str] = []
    node_cpus: dict[int, frozenset[int] | None] = {}
    for r in plan.ranks:
        if r.numa_node is None or not r.cpus:
            continue
        if r.numa_node not in node_cpus:
            text = fs.read(f"/sys/devices/system/node/node{r.numa_node}/cpulist")
            try:
                node_cpus[r.numa_node] = parse_list(text, what="node cpulist") if text is not None else None
            except UsageError:
                node_cpus[r.numa_node] = None
        here = node_cpus[r.numa_node]
        if here is not None and not r.cpus <= here:
            problems.append(
                f"rank {r.local_rank}'s CPUs {format_list(r.cpus - here)} are not on NUMA node {r.numa_node} here"
            )
    return problems


def refuse_foreign(problems: list[str], *, force: bool) -> None:
    """A plan for another node is an error unless --force (then the caller warns)."""
    if problems and not force:
        raise PlanError("plan does not fit this node: " + "; ".join(problems) + " (use --force to apply it anyway)")
