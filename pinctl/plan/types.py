"""THE plan: what each local rank gets. The planner makes it, a plan file holds it, launch acts on it.

One type for every road: :func:`pinctl.plan.make.make_plan` builds a :class:`Plan`,
:meth:`Plan.to_dict` is exactly what ``pinctl plan --json`` prints (schema
pinctl.plan/v1, docs/plan.md), and :meth:`Plan.from_dict` turns an untrusted
parsed file back into the same type, refusing anything the rules do not allow
(:mod:`pinctl.plan.fields`, :mod:`pinctl.plan.environment`). ``from_dict(to_dict(p)) == p``.

These classes are on the ``launch --plan`` path, so they are :class:`~pinctl.record.Record`
values (no dataclasses) and this module imports only what that path already pays for.
"""

from __future__ import annotations

from pinctl.cpuset import format_list
from pinctl.plan import fields as f
from pinctl.plan.environment import env_key_allowed, env_refusal
from pinctl.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the launch path
if TYPE_CHECKING:
    from collections.abc import Collection
    from typing import Any, Final

SCHEMA_ID = "pinctl.plan/v1"
MEM_POLICIES = ("bind", "preferred", "interleave", "local", "none")
Env = tuple[tuple[str, str], ...]

_TOP_KEYS = {"schema", "node", "options", "ranks", "warnings"}
_NODE_KEYS = {"hostname", "source", "fingerprint", "smt_known"}
_NODE_REQUIRED = {"hostname", "source", "fingerprint"}
_RANK_KEYS = {
    "local_rank", "gpu", "numa_node", "cpus", "cpulist", "cores", "mems", "mem_policy", "nics", "storage", "env",
}  # fmt: skip
_RANK_REQUIRED = {"local_rank", "cpus", "mems", "mem_policy", "env"}
_GPU_KEYS = {"index", "pci_bus_id", "uuid", "minor", "vendor"}
_NIC_KEYS = {"name", "port", "netdev", "pci_bus_id", "distance", "kind"}
_STORAGE_KEYS = {"name", "pci_bus_id", "distance"}
GPU_VENDORS = ("nvidia", "amd", "intel", "other")  # pinctl.model.GpuVendor, without importing the model


class GpuRef(Record):
    """A rank's GPU: PCI-order index, bus id, UUID, N of its device file (/dev/nvidiaN, or
    /dev/dri/renderDN for AMD and Intel) when the source named it, and the vendor."""

    __slots__ = ("index", "minor", "pci_bus_id", "uuid", "vendor")

    def __init__(
        self, index: int, pci_bus_id: str | None, uuid: str | None = None, minor: int | None = None,
        vendor: str | None = None,
    ) -> None:  # fmt: skip
        self.index: Final = index
        self.pci_bus_id: Final = pci_bus_id
        self.uuid: Final = uuid
        self.minor: Final = minor
        self.vendor: Final = vendor


class NicUse(Record):
    """A NIC port a rank uses and its distance from the rank's GPU (X, PIX, ... SYS)."""

    __slots__ = ("distance", "kind", "name", "netdev", "pci_bus_id", "port")

    def __init__(
        self, name: str, port: int | None, netdev: str | None, pci_bus_id: str | None, distance: str | None,
        kind: str | None = None,
    ) -> None:  # fmt: skip
        self.name: Final = name
        self.port: Final = port
        self.netdev: Final = netdev
        self.pci_bus_id: Final = pci_bus_id
        self.distance: Final = distance
        self.kind: Final = kind


class StorageUse(Record):
    """A storage device a rank uses and its distance."""

    __slots__ = ("distance", "name", "pci_bus_id")

    def __init__(self, name: str, pci_bus_id: str | None, distance: str | None) -> None:
        self.name: Final = name
        self.pci_bus_id: Final = pci_bus_id
        self.distance: Final = distance


class RankPlan(Record):
    """One local rank. ``cores`` are logical core indexes (topology order), as Slurm counts them."""

    __slots__ = ("cores", "cpus", "env", "gpu", "local_rank", "mem_policy", "mems", "nics", "numa_node", "storage")

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

    @property
    def cpulist(self) -> str:
        return format_list(self.cpus)

    def to_dict(self) -> dict[str, Any]:
        g = self.gpu
        return {
            "local_rank": self.local_rank,
            "gpu": None if g is None else {"index": g.index, "pci_bus_id": g.pci_bus_id, "uuid": g.uuid,
                                           "minor": g.minor, "vendor": g.vendor},
            "numa_node": self.numa_node,
            "cpus": sorted(self.cpus),
            "cpulist": self.cpulist,
            "cores": list(self.cores),
            "mems": sorted(self.mems),
            "mem_policy": self.mem_policy,
            "nics": [
                {"name": n.name, "port": n.port, "netdev": n.netdev, "pci_bus_id": n.pci_bus_id,
                 "distance": n.distance, "kind": n.kind}
                for n in self.nics
            ],
            "storage": [{"name": s.name, "pci_bus_id": s.pci_bus_id, "distance": s.distance} for s in self.storage],
            "env": dict(self.env),
        }  # fmt: skip


class Plan(Record):
    """Every local rank of one node, with the request that shaped it and what had to give."""

    __slots__ = ("fingerprint", "hostname", "options", "ranks", "smt_known", "source", "warnings")

    def __init__(
        self,
        hostname: str,
        source: str,
        fingerprint: str,
        options: tuple[tuple[str, object], ...],
        ranks: tuple[RankPlan, ...],
        warnings: tuple[str, ...] = (),
        smt_known: bool = True,
    ) -> None:
        self.hostname: Final = hostname
        self.source: Final = source
        self.fingerprint: Final = fingerprint
        self.options: Final = options
        self.ranks: Final = ranks
        self.warnings: Final = warnings
        self.smt_known: Final = smt_known  # False: a "core" is one CPU (NCCL topology files)

    def rank(self, local_rank: int) -> RankPlan | None:
        for r in self.ranks:
            if r.local_rank == local_rank:
                return r
        return None

    def ranks_for_gpu(self, gpu: int) -> tuple[RankPlan, ...]:
        return tuple(r for r in self.ranks if r.gpu is not None and r.gpu.index == gpu)

    def to_dict(self) -> dict[str, Any]:
        """The pinctl.plan/v1 object: exactly what ``pinctl plan --json`` prints."""
        return {
            "schema": SCHEMA_ID,
            "node": {"hostname": self.hostname, "source": self.source, "fingerprint": self.fingerprint,
                     "smt_known": self.smt_known},
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
        if top["schema"] != SCHEMA_ID:
            raise f.fail("schema", f"{str(top['schema'])[:80]!r} is not {SCHEMA_ID!r}")
        node = f.obj(top["node"], "node", _NODE_KEYS, _NODE_REQUIRED)
        smt_known = node.get("smt_known", True)
        if not isinstance(smt_known, bool):
            raise f.fail("node.smt_known", "expected true or false")
        options = top.get("options", {})
        if not isinstance(options, dict):
            raise f.fail("options", "expected an object")
        if len(options) > f.MAX_LIST:
            raise f.fail("options", f"more than {f.MAX_LIST} entries")
        opts = tuple(sorted((f.text(k, "options", limit=f.MAX_KEY), f.option(v, f"options.{k}"))
                            for k, v in options.items()))  # fmt: skip
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
        return cls(
            hostname=f.text(node["hostname"], "node.hostname", limit=255),
            source=f.text(node["source"], "node.source"),
            fingerprint=f.text(node["fingerprint"], "node.fingerprint", limit=128),
            options=opts,
            ranks=tuple(sorted(ranks, key=lambda r: r.local_rank)),
            warnings=warnings,
            smt_known=smt_known,
        )


def _env_from_dict(value: object, where: str, allow: Collection[str]) -> Env:
    if not isinstance(value, dict):
        raise f.fail(where, f"expected an object, got {type(value).__name__}")
    if len(value) > f.MAX_ENV:
        raise f.fail(where, f"more than {f.MAX_ENV} variables")
    out: list[tuple[str, str]] = []
    for key, val in value.items():
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
            f.text_or_none(g.get("pci_bus_id"), f"{where}.gpu.pci_bus_id", limit=64),
            f.text_or_none(g.get("uuid"), f"{where}.gpu.uuid", limit=128),
            f.integer_or_none(g.get("minor"), f"{where}.gpu.minor"),
            _vendor(g.get("vendor"), f"{where}.gpu.vendor"),
        )
    nics = []
    for i, nic in enumerate(f.items(r.get("nics", []), f"{where}.nics")):
        at = f"{where}.nics[{i}]"
        n = f.obj(nic, at, _NIC_KEYS, {"name"})
        nics.append(NicUse(
            f.text(n["name"], f"{at}.name", limit=64),
            f.integer_or_none(n.get("port"), f"{at}.port"),
            f.text_or_none(n.get("netdev"), f"{at}.netdev", limit=64),
            f.text_or_none(n.get("pci_bus_id"), f"{at}.pci_bus_id", limit=64),
            f.text_or_none(n.get("distance"), f"{at}.distance", limit=64),
            f.text_or_none(n.get("kind"), f"{at}.kind", limit=64),
        ))  # fmt: skip
    storage = []
    for i, dev in enumerate(f.items(r.get("storage", []), f"{where}.storage")):
        at = f"{where}.storage[{i}]"
        s = f.obj(dev, at, _STORAGE_KEYS, {"name"})
        storage.append(StorageUse(
            f.text(s["name"], f"{at}.name", limit=64),
            f.text_or_none(s.get("pci_bus_id"), f"{at}.pci_bus_id", limit=64),
            f.text_or_none(s.get("distance"), f"{at}.distance", limit=64),
        ))  # fmt: skip
    env = _env_from_dict(r["env"], f"{where}.env", allow_env)
    declared = dict(env).get("LOCAL_RANK")
    if declared is not None and declared != str(local_rank):
        raise f.fail(f"{where}.env.LOCAL_RANK", f"{declared!r} does not match local_rank {local_rank}")
    return RankPlan(
        local_rank, gpu, f.integer_or_none(r.get("numa_node"), f"{where}.numa_node"), cpus, cores, mems, policy,
        tuple(nics), tuple(storage), env,
    )  # fmt: skip
