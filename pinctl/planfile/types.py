"""THE plan: what each local rank gets. The planner makes it, a plan file holds it, launch acts on it.

One type for every road: :func:`pinctl.plan.make.make_plan` builds a :class:`Plan`,
:meth:`Plan.to_dict` is exactly what ``pinctl plan --json`` prints (schema
pinctl.plan/v2, docs/plan.md; v1 files are still read), and :meth:`Plan.from_dict` turns an untrusted
parsed file back into the same type, refusing anything the rules do not allow
(:mod:`pinctl.planfile.fields`, :mod:`pinctl.planfile.allowlist`). ``from_dict(to_dict(p)) == p``.

The devices a rank uses (GpuRef, NicUse, StorageUse) are :mod:`pinctl.planfile.uses`.
These classes are on the ``launch --plan`` path, so they are :class:`~pinctl.record.Record`
values (no dataclasses) and this module imports only what that path already pays for.
"""

from __future__ import annotations

from pinctl.cpuset import format_list
from pinctl.planfile import fields as f
from pinctl.planfile.allowlist import env_key_allowed, env_refusal
from pinctl.planfile.cpuclasses import CpuClasses
from pinctl.planfile.uses import GPU_VENDORS, GpuRef, NicUse, StorageUse
from pinctl.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the launch path
if TYPE_CHECKING:
    from collections.abc import Collection
    from typing import Any, Final

SCHEMA_ID = "pinctl.plan/v2"
# v1 (before the node's CPU classes and helpers) is still read: its ranks mean the same.
SCHEMA_IDS_READ = ("pinctl.plan/v1", SCHEMA_ID)
MEM_POLICIES = ("bind", "preferred", "interleave", "local", "none")
# Request-only spellings (`--mem-policy`): the policy plus the rank's GPU's own memory node (Grace HBM);
# a plan stores them as bind / interleave with that node among its mems.
GPU_MEM_POLICIES = ("bind+gpu", "interleave+gpu")
Env = tuple[tuple[str, str], ...]

_TOP_KEYS = {"schema", "node", "options", "ranks", "warnings", "cpus"}
_NODE_KEYS = {"hostname", "source", "fingerprint", "smt_known"}
_NODE_REQUIRED = {"hostname", "source", "fingerprint"}
_RANK_KEYS = {
    "local_rank",
    "gpu",
    "numa_node",
    "cpus",
    "cpulist",
    "cores",
    "mems",
    "mem_policy",
    "nics",
    "storage",
    "env",
    "helpers",
}
_RANK_REQUIRED = {"local_rank", "cpus", "mems", "mem_policy", "env"}
_GPU_KEYS = {"index", "pci_bus_id", "uuid", "minor", "vendor", "visible_index", "mig"}
_NIC_KEYS = {"name", "port", "netdev", "pci_bus_id", "distance", "kind"}
_STORAGE_KEYS = {"name", "pci_bus_id", "distance"}


class RankPlan(Record):
    """One local rank. ``cores`` are logical core indexes (topology order), as Slurm counts them;
    ``helpers`` the idle CPUs its data-loader workers may run on (--helpers; empty otherwise)."""

    __slots__ = (
        "cores",
        "cpus",
        "env",
        "gpu",
        "helpers",
        "local_rank",
        "mem_policy",
        "mems",
        "nics",
        "numa_node",
        "storage",
    )

    def __init__(
        self,
        local_rank: int,
        gpu: GpuRef | None,
        numa_node: int | None,
        cpus: frozenset[int],
        cores: tuple[int, ...],
        mems: frozenset[int],
        mem_policy: str,
        nics: tuple[NicUse, ...] = (),
        storage: tuple[StorageUse, ...] = (),
        env: Env = (),
        helpers: frozenset[int] = frozenset(),
    ) -> None:
        self.local_rank: Final = local_rank
        self.gpu: Final = gpu
        self.numa_node: Final = numa_node
        self.cpus: Final = cpus
        self.cores: Final = cores
        self.mems: Final = mems
        self.mem_policy: Final = mem_policy
        self.nics: Final = nics
        self.storage: Final = storage
        self.env: Final = env
        self.helpers: Final = helpers

    @property
    def cpulist(self) -> str:
        return format_list(self.cpus)

    def to_dict(self) -> dict[str, Any]:
        g = self.gpu
        return {
            "local_rank": self.local_rank,
            "gpu": None if g is None else g.to_dict(),
            "numa_node": self.numa_node,
            "cpus": sorted(self.cpus),
            "cpulist": self.cpulist,
            "cores": list(self.cores),
            "mems": sorted(self.mems),
            "mem_policy": self.mem_policy,
            "nics": [
                {
                    "name": n.name,
                    "port": n.port,
                    "netdev": n.netdev,
                    "pci_bus_id": n.pci_bus_id,
                    "distance": n.distance,
                    "kind": n.kind,
                }
                for n in self.nics
            ],
            "storage": [{"name": s.name, "pci_bus_id": s.pci_bus_id, "distance": s.distance} for s in self.storage],
            "env": dict(self.env),
            "helpers": sorted(self.helpers),
        }


class Plan(Record):
    """Every local rank of one node, with the request that shaped it and what had to give."""

    __slots__ = ("cpu_classes", "fingerprint", "hostname", "options", "ranks", "smt_known", "source", "warnings")

    def __init__(
        self,
        hostname: str,
        source: str,
        fingerprint: str,
        options: tuple[tuple[str, object], ...],
        ranks: tuple[RankPlan, ...],
        warnings: tuple[str, ...] = (),
        smt_known: bool = True,
        cpu_classes: CpuClasses | None = None,
    ) -> None:
        self.hostname: Final = hostname
        self.source: Final = source
        self.fingerprint: Final = fingerprint
        self.options: Final = options
        self.ranks: Final = ranks
        self.warnings: Final = warnings
        self.smt_known: Final = smt_known  # False: a "core" is one CPU (NCCL topology files)
        self.cpu_classes: Final = cpu_classes  # None: a v1 plan file, which did not say

    @property
    def rank_cpus(self) -> frozenset[int]:
        """Every rank's CPUs together."""
        return frozenset().union(*(r.cpus for r in self.ranks))

    @property
    def helper_cpus(self) -> frozenset[int]:
        """Every rank's helper CPUs together (empty without --helpers)."""
        return frozenset().union(*(r.helpers for r in self.ranks))

    def rank(self, local_rank: int) -> RankPlan | None:
        for r in self.ranks:
            if r.local_rank == local_rank:
                return r
        return None

    def ranks_for_gpu(self, gpu: int) -> tuple[RankPlan, ...]:
        return tuple(r for r in self.ranks if r.gpu is not None and r.gpu.index == gpu)

    def to_dict(self) -> dict[str, Any]:
        """The pinctl.plan/v2 object: exactly what ``pinctl plan --json`` prints."""
        return {
            "schema": SCHEMA_ID,
            "cpus": None if self.cpu_classes is None else self.cpu_classes.to_dict(),
            "node": {
                "hostname": self.hostname,
                "source": self.source,
                "fingerprint": self.fingerprint,
                "smt_known": self.smt_known,
            },
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in self.options},
            "ranks": [r.to_dict() for r in self.ranks],
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, obj: object, allow_env: Collection[str] = ()) -> Plan:
        """A Plan from parsed JSON that nobody vouches for; any problem is a PlanError naming the place.

        *allow_env*: variable names beyond pinctl's list that the person acting on the plan named
        (``launch --allow-env``); the file itself cannot widen the list."""
        top = f.obj(obj, "plan", _TOP_KEYS, {"schema", "node", "ranks"})
        if top["schema"] not in SCHEMA_IDS_READ:
            raise f.fail("schema", f"{str(top['schema'])[:80]!r} is not {' or '.join(map(repr, SCHEMA_IDS_READ))}")
        if top["schema"] != SCHEMA_ID and (
            "cpus" in top or any(isinstance(r, dict) and "helpers" in r for r in top.get("ranks") or [])
        ):
            raise f.fail("schema", "a pinctl.plan/v1 file has no cpus or helpers")
        classes = None if top.get("cpus") is None else CpuClasses.from_dict(top["cpus"], "cpus")
        node = f.obj(top["node"], "node", _NODE_KEYS, _NODE_REQUIRED)
        smt_known = node.get("smt_known", True)
        if not isinstance(smt_known, bool):
            raise f.fail("node.smt_known", "expected true or false")
        options = top.get("options", {})
        if not isinstance(options, dict):
            raise f.fail("options", "expected an object")
        if len(options) > f.MAX_LIST:
            raise f.fail("options", f"more than {f.MAX_LIST} entries")
        opts = tuple(
            sorted((f.text(k, "options", limit=f.MAX_KEY), f.option(v, f"options.{k}")) for k, v in options.items())
        )
        raw_warnings = f.items(top.get("warnings", []), "warnings")
        warnings = tuple(f.text(w, f"warnings[{i}]") for i, w in enumerate(raw_warnings))
        raw_ranks = top["ranks"]
        if not isinstance(raw_ranks, list):
            raise f.fail("ranks", "expected a list")
        if not raw_ranks:
            raise f.fail("ranks", "no ranks")
        if len(raw_ranks) > f.MAX_RANKS:
            raise f.fail("ranks", f"more than {f.MAX_RANKS} ranks")
        ranks = [_rank_from_dict(r, f"ranks[{i}]", allow_env) for i, r in enumerate(raw_ranks)]
        seen: set[int] = set()
        for r in ranks:
            if r.local_rank in seen:
                raise f.fail("ranks", f"local_rank {r.local_rank} appears twice")
            seen.add(r.local_rank)
        if seen != set(range(len(ranks))):
            raise f.fail("ranks", f"local ranks must be 0-{len(ranks) - 1}, got {format_list(seen)}")
        _check_classes(ranks, classes)
        return cls(
            hostname=f.text(node["hostname"], "node.hostname", limit=255),
            source=f.text(node["source"], "node.source"),
            fingerprint=f.text(node["fingerprint"], "node.fingerprint", limit=128),
            options=opts,
            ranks=tuple(sorted(ranks, key=lambda r: r.local_rank)),
            warnings=warnings,
            smt_known=smt_known,
            cpu_classes=classes,
        )


def _check_classes(ranks: list[RankPlan], classes: CpuClasses | None) -> None:
    """No CPU in two classes: a rank's (each rank's its own), a helper's, housekeeping, idle, not allowed."""
    owner: dict[int, int] = {}
    for r in sorted(ranks, key=lambda r: r.local_rank):
        for cpu in sorted(r.cpus):
            if cpu in owner:
                raise f.fail(f"ranks[{r.local_rank}].cpus", f"CPU {cpu} is also rank {owner[cpu]}'s")
            owner[cpu] = r.local_rank
    used = frozenset(owner)
    helper_of: dict[int, int] = {}
    for r in sorted(ranks, key=lambda r: r.local_rank):
        if r.helpers & used:
            raise f.fail(f"ranks[{r.local_rank}].helpers", f"CPU {min(r.helpers & used)} is a rank's own")
        for cpu in sorted(r.helpers):
            if cpu in helper_of:
                raise f.fail(f"ranks[{r.local_rank}].helpers", f"CPU {cpu} is also rank {helper_of[cpu]}'s helper")
            helper_of[cpu] = r.local_rank
    if classes is None:
        return
    used |= frozenset().union(*(r.helpers for r in ranks))
    others = classes.housekeeping | classes.idle | classes.not_allowed
    if used & others:
        raise f.fail("cpus", f"CPU {min(used & others)} is a rank's and also {_class_of(min(used & others), classes)}")


def _class_of(cpu: int, classes: CpuClasses) -> str:
    return "housekeeping" if cpu in classes.housekeeping else "idle" if cpu in classes.idle else "not allowed"


def _env_from_dict(value: object, where: str, allow: Collection[str]) -> Env:
    if not isinstance(value, dict):
        raise f.fail(where, f"expected an object, got {type(value).__name__}")
    if len(value) > f.MAX_ENV:
        raise f.fail(where, f"more than {f.MAX_ENV} variables")
    out: list[tuple[str, str]] = []
    for key, val in value.items():
        if not isinstance(key, str):
            raise f.fail(where, f"variable name {key!r} is not a string")
        if len(key) > f.MAX_KEY:
            raise f.fail(where, f"variable {key[:40]!r}... is longer than {f.MAX_KEY} characters")
        if not env_key_allowed(key, allow):
            raise f.fail(where, env_refusal(key))
        out.append((key, f.text(val, f"{where}.{key}", limit=f.MAX_VALUE)))
    return tuple(sorted(out))


def _vendor(value: object, where: str) -> str | None:
    vendor = f.text_or_none(value, where, limit=16)
    if vendor is not None and vendor not in GPU_VENDORS:
        raise f.fail(where, f"{vendor!r} is not one of {', '.join(GPU_VENDORS)}")
    return vendor


def _rank_from_dict(value: object, where: str, allow_env: Collection[str] = ()) -> RankPlan:
    r = f.obj(value, where, _RANK_KEYS, _RANK_REQUIRED)
    local_rank = f.integer(r["local_rank"], f"{where}.local_rank", hi=f.MAX_RANKS - 1)
    cpus = frozenset(f.ids(r["cpus"], f"{where}.cpus"))
    if not cpus:
        raise f.fail(f"{where}.cpus", "empty")
    if "cpulist" in r:
        cpulist = f.text(r["cpulist"], f"{where}.cpulist")
        if cpulist != format_list(cpus):
            raise f.fail(f"{where}.cpulist", f"{cpulist!r} does not match cpus ({format_list(cpus)})")
    cores = f.ids(r["cores"], f"{where}.cores") if "cores" in r else ()
    mems = frozenset(f.ids(r["mems"], f"{where}.mems"))
    policy = f.text(r["mem_policy"], f"{where}.mem_policy")
    if policy not in MEM_POLICIES:
        raise f.fail(f"{where}.mem_policy", f"{policy!r} is not one of {', '.join(MEM_POLICIES)}")
    if policy in ("local", "none") and mems:
        raise f.fail(f"{where}.mems", f"must be empty for policy {policy}")
    if policy in ("bind", "preferred", "interleave") and not mems:
        raise f.fail(f"{where}.mems", f"policy {policy} needs at least one node")
    gpu = None
    if r.get("gpu") is not None:
        g = f.obj(r["gpu"], f"{where}.gpu", _GPU_KEYS, {"index"})
        gpu = GpuRef(
            f.integer(g["index"], f"{where}.gpu.index", hi=f.MAX_RANKS),
            f.word_or_none(g.get("pci_bus_id"), f"{where}.gpu.pci_bus_id", limit=64),
            f.word_or_none(g.get("uuid"), f"{where}.gpu.uuid", limit=128),
            f.integer_or_none(g.get("minor"), f"{where}.gpu.minor"),
            _vendor(g.get("vendor"), f"{where}.gpu.vendor"),
            visible_index=f.integer_or_none(g.get("visible_index"), f"{where}.gpu.visible_index"),
            mig=f.word_or_none(g.get("mig"), f"{where}.gpu.mig", limit=128),
        )
    nics = []
    for i, nic in enumerate(f.items(r.get("nics", []), f"{where}.nics")):
        at = f"{where}.nics[{i}]"
        n = f.obj(nic, at, _NIC_KEYS, {"name"})
        nics.append(
            NicUse(
                f.word(n["name"], f"{at}.name", limit=64),
                f.integer_or_none(n.get("port"), f"{at}.port"),
                f.word_or_none(n.get("netdev"), f"{at}.netdev", limit=64),
                f.word_or_none(n.get("pci_bus_id"), f"{at}.pci_bus_id", limit=64),
                f.word_or_none(n.get("distance"), f"{at}.distance", limit=64),
                f.word_or_none(n.get("kind"), f"{at}.kind", limit=64),
            )
        )
    storage = []
    for i, dev in enumerate(f.items(r.get("storage", []), f"{where}.storage")):
        at = f"{where}.storage[{i}]"
        s = f.obj(dev, at, _STORAGE_KEYS, {"name"})
        storage.append(
            StorageUse(
                f.word(s["name"], f"{at}.name", limit=64),
                f.word_or_none(s.get("pci_bus_id"), f"{at}.pci_bus_id", limit=64),
                f.word_or_none(s.get("distance"), f"{at}.distance", limit=64),
            )
        )
    helpers = frozenset(f.ids(r.get("helpers", []), f"{where}.helpers"))
    if helpers & cpus:
        raise f.fail(f"{where}.helpers", f"CPU {min(helpers & cpus)} is also the rank's own")
    env = _env_from_dict(r["env"], f"{where}.env", allow_env)
    declared = dict(env).get("LOCAL_RANK")
    if declared is not None and declared != str(local_rank):
        raise f.fail(f"{where}.env.LOCAL_RANK", f"{declared!r} does not match local_rank {local_rank}")
    return RankPlan(
        local_rank,
        gpu,
        f.integer_or_none(r.get("numa_node"), f"{where}.numa_node"),
        cpus,
        cores,
        mems,
        policy,
        tuple(nics),
        tuple(storage),
        env,
        helpers,
    )
