"""The affinity planner: (Node, PlanRequest) -> Plan. Pure: no I/O, no clock, no environment.

Rules (docs/plan.md gives the reasoning; tests/test_plan_properties.py checks them):
CPU sets are disjoint, non-empty, inside the allowed cpuset minus reserved CPUs,
whole cores, in the GPU's NUMA node when it has usable CPUs, balanced within a
node and L3-aligned when the counts allow (pinctl.plan.cores). NICs and storage
are the nearest usable devices under a load cap, solved exactly (pinctl.plan.devices).
Every degradation becomes a line in ``Plan.warnings``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Literal

from pinctl.cpuset import format_list, parse_list
from pinctl.distance import rank
from pinctl.errors import UsageError
from pinctl.model import Gpu, Nic, Node, PciAddress
from pinctl.plan.cores import (
    CoreSlot,
    Domain,
    ordered_cores,
    reserved_per_numa,
    split_domain,
    split_even,
    usable_cores,
)
from pinctl.plan.devices import NicCandidate, assign, level_between, natural_key, spread, usable_nics
from pinctl.plan.domains import assign_domains, cpu_domains, mems_for

SMT_MODES = ("all", "one-per-core")
MEM_POLICIES = ("bind", "preferred", "interleave", "local", "none")
LINK_LAYERS = ("ib", "eth", "any")
_VERBS_KINDS = ("infiniband", "roce", "other", "ethernet")  # NICs NCCL_IB_HCA / UCX_NET_DEVICES name


@dataclass(frozen=True)
class PlanRequest:
    """What the user asked for; defaults plan one rank per GPU, bound to its local node.

    ``visible_devices`` is CUDA_VISIBLE_DEVICES as parsed by the CLI (indexes or
    UUID strings); the planner never reads the environment itself.
    """

    gpus: tuple[int, ...] | None = None
    procs_per_gpu: int = 1
    ranks: int | None = None
    reserve: frozenset[int] = frozenset()
    reserve_per_numa: int = 0
    smt: Literal["all", "one-per-core"] = "all"
    mem_policy: str = "bind"
    nic_link_layer: Literal["ib", "eth", "any"] = "ib"
    nics_per_gpu: int = 1
    isolate_gpus: bool = False
    visible_devices: tuple[int | str, ...] | None = None


@dataclass(frozen=True)
class GpuRef:
    index: int
    pci_bus_id: str
    uuid: str | None = None
    minor: int | None = None  # N of /dev/nvidiaN when the source named it


@dataclass(frozen=True)
class NicUse:
    name: str
    port: int | None
    netdev: str | None
    pci_bus_id: str | None
    distance: str
    kind: str = "other"


@dataclass(frozen=True)
class StorageUse:
    name: str
    pci_bus_id: str | None
    distance: str


@dataclass(frozen=True)
class RankPlan:
    """One local rank. ``cores`` are logical core indexes (topology order), as Slurm counts them."""

    local_rank: int
    gpu: GpuRef | None
    numa_node: int | None
    cpus: tuple[int, ...]
    cores: tuple[int, ...]
    mems: tuple[int, ...]
    mem_policy: str
    nics: tuple[NicUse, ...] = ()
    storage: tuple[StorageUse, ...] = ()
    env: tuple[tuple[str, str], ...] = ()

    @property
    def cpulist(self) -> str:
        return format_list(self.cpus)


@dataclass(frozen=True)
class Plan:
    hostname: str
    source: str
    fingerprint: str
    options: tuple[tuple[str, object], ...]
    ranks: tuple[RankPlan, ...]
    warnings: tuple[str, ...] = field(default=())


def fingerprint(node: Node) -> str:
    """A stable id of the node's layout: CPUs per NUMA node, GPU PCI ids, NIC names (not the cgroup)."""
    facts = {
        "numa": [[n.os_index, sorted(n.cpus)] for n in sorted(node.numa_nodes, key=lambda n: n.os_index)],
        "gpus": sorted(str(g.pci.address) for g in node.gpus),
        "nics": sorted(n.name for n in node.nics),
    }
    text = json.dumps(facts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def select_gpus(node: Node, text: str) -> tuple[int, ...] | None:
    """Parse ``--gpus``: ``all``, indexes and ranges (0-3,6) or PCI bus ids (0000:1b:00.0)."""
    if text.strip() == "all":
        return None
    by_addr = {g.pci.address: g.index for g in node.gpus}
    out: set[int] = set()
    for token in text.split(","):
        token = token.strip()
        if ":" in token:
            addr = PciAddress.parse(token)
            if addr not in by_addr:
                raise UsageError(f"--gpus: no GPU at PCI address {token}")
            out.add(by_addr[addr])
        else:
            out.update(parse_list(token, what="--gpus list"))
    if not out:
        raise UsageError("--gpus selects no GPU")
    return tuple(sorted(out))


def parse_visible_devices(text: str) -> tuple[int | str, ...]:
    """CUDA_VISIBLE_DEVICES: comma-separated indexes or UUIDs (GPU-..., MIG-...)."""
    out: list[int | str] = []
    for token in text.split(","):
        token = token.strip()
        if token:
            out.append(int(token) if token.isdigit() else token)
    return tuple(out)


def _check(request: PlanRequest) -> None:
    if request.procs_per_gpu < 1:
        raise UsageError(f"--procs-per-gpu must be at least 1, got {request.procs_per_gpu}")
    if request.ranks is not None and request.ranks < 1:
        raise UsageError(f"--ranks must be at least 1, got {request.ranks}")
    if request.nics_per_gpu < 0:
        raise UsageError(f"--nics-per-gpu must be 0 or more, got {request.nics_per_gpu}")
    if request.reserve_per_numa < 0:
        raise UsageError(f"--reserve-per-numa must be 0 or more, got {request.reserve_per_numa}")
    for name, value, allowed in (
        ("--smt", request.smt, SMT_MODES),
        ("--mem-policy", request.mem_policy, MEM_POLICIES),
        ("--nic-link-layer", request.nic_link_layer, LINK_LAYERS),
    ):
        if value not in allowed:
            raise UsageError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    if request.ranks is not None and (request.gpus is not None or request.procs_per_gpu != 1):
        raise UsageError("--ranks plans CPU-only ranks; it cannot be combined with --gpus or --procs-per-gpu")


def _selected_gpus(node: Node, request: PlanRequest, warnings: list[str]) -> list[Gpu]:
    gpus = sorted(node.gpus, key=lambda g: g.index)
    known = {g.index for g in gpus}
    if request.gpus is not None:
        unknown = sorted(set(request.gpus) - known)
        if unknown:
            have = format_list(known) or "none"
            raise UsageError(f"--gpus: no GPU {format_list(unknown)} on this node (GPUs: {have})")
        gpus = [g for g in gpus if g.index in request.gpus]
    if request.visible_devices is not None:
        visible: set[int] = set()
        for entry in request.visible_devices:
            hits = [g.index for g in node.gpus if _matches(g, entry)]
            if not hits:
                warnings.append(f"CUDA_VISIBLE_DEVICES entry {entry!r} matches no GPU of this node; ignored")
            visible.update(hits)
        gpus = [g for g in gpus if g.index in visible]
        if not gpus:
            raise UsageError("CUDA_VISIBLE_DEVICES hides every selected GPU")
    if not gpus:
        raise UsageError("the GPU selection is empty")
    return gpus


def _matches(gpu: Gpu, entry: int | str) -> bool:
    if isinstance(entry, int):
        return gpu.index == entry
    return gpu.uuid is not None and gpu.uuid.lower().startswith(entry.lower())


def make_plan(node: Node, request: PlanRequest) -> Plan:
    """Plan every local rank's CPUs, memory policy, NICs, storage and environment."""
    _check(request)
    warnings: list[str] = []
    all_cores = ordered_cores(node)
    outside = request.reserve - node.cpus
    if outside:
        warnings.append(f"--reserve CPUs {format_list(outside)} do not exist on this node")
    reserved = request.reserve | reserved_per_numa(all_cores, node.allowed_cpus, request.reserve_per_numa)
    cores = usable_cores(all_cores, node.allowed_cpus - reserved, request.smt)
    domains = cpu_domains(node, cores)

    gpus: list[Gpu] = []
    if request.ranks is None:
        if not node.gpus:
            raise UsageError("no GPUs on this node: give --ranks N to plan CPU-only ranks")
        gpus = _selected_gpus(node, request, warnings)
        rank_gpu: list[Gpu | None] = [g for g in gpus for _ in range(request.procs_per_gpu)]
    else:
        if node.gpus:
            warnings.append("--ranks plans CPU-only ranks: GPUs are not assigned to them")
        rank_gpu = [None] * request.ranks
    total = len(rank_gpu)
    if total > len(cores):
        raise UsageError(
            f"{total} ranks but only {len(cores)} usable cores (allowed CPUs minus reserved): "
            "use fewer ranks or reserve less"
        )
    if request.ranks is None:
        rank_domain = assign_domains(node, rank_gpu, domains, warnings)
    else:
        rank_domain = _cpu_only_domains(node, domains, request.ranks)

    # Split each domain's cores among its ranks, in local-rank order.
    runs: dict[int, list[CoreSlot]] = {}
    for dom, dcores in domains.items():
        members = [i for i, d in enumerate(rank_domain) if d == dom]
        for i, run in zip(members, split_domain(dcores, len(members)), strict=True):
            runs[i] = run

    nic_map, storage_map = _devices(node, request, gpus, rank_gpu, rank_domain, warnings)
    if not request.isolate_gpus and any(g is not None and g.index != i for i, g in enumerate(rank_gpu)):
        warnings.append(
            "LOCAL_RANK does not equal the GPU index for every rank: use --isolate-gpus, or select "
            "each rank's GPU from the plan, not from LOCAL_RANK"
        )

    ranks: list[RankPlan] = []
    for i, gpu in enumerate(rank_gpu):
        run = runs[i]
        cpus = tuple(sorted(p for c in run for p in c.usable))
        dom = rank_domain[i]
        policy, mems = mems_for(node, request.mem_policy, dom, warnings)
        key = gpu.index if gpu is not None else i
        nics = nic_map.get(key, ())
        storage = storage_map.get(key, ())
        ref = None
        if gpu is not None:
            ref = GpuRef(gpu.index, str(gpu.pci.address), gpu.uuid, _minor(gpu))
        env = _env(i, len(run), nics, ref, request.isolate_gpus)
        ranks.append(RankPlan(i, ref, dom, cpus, tuple(c.index for c in run), mems, policy, nics, storage, env))
    return Plan(
        hostname=node.hostname,
        source=node.source,
        fingerprint=fingerprint(node),
        options=_options(request),
        ranks=tuple(ranks),
        warnings=tuple(dict.fromkeys(warnings)),
    )


def _cpu_only_domains(node: Node, domains: dict[Domain, list[CoreSlot]], n: int) -> list[Domain]:
    """hwloc-distrib style: split N ranks over packages, then their NUMA nodes, by usable cores."""
    by_pkg: dict[int, list[Domain]] = {}
    for dom, dcores in domains.items():
        pkg = dcores[0].package
        by_pkg.setdefault(-1 if pkg is None else pkg, []).append(dom)
    pkgs = sorted(by_pkg)
    per_pkg = split_even(n, [sum(len(domains[d]) for d in by_pkg[p]) for p in pkgs])
    out: list[Domain] = []
    for p, count in zip(pkgs, per_pkg, strict=True):
        doms = by_pkg[p]
        for dom, c in zip(doms, split_even(count, [len(domains[d]) for d in doms]), strict=True):
            out.extend([dom] * c)
    return out


def _devices(
    node: Node,
    request: PlanRequest,
    gpus: list[Gpu],
    rank_gpu: list[Gpu | None],
    rank_domain: list[Domain],
    warnings: list[str],
) -> tuple[dict[int, tuple[NicUse, ...]], dict[int, tuple[StorageUse, ...]]]:
    """NICs and storage per consumer: per GPU (keyed by GPU index) or per CPU-only rank (rank index)."""
    nic_map: dict[int, tuple[NicUse, ...]] = {}
    storage_map: dict[int, tuple[StorageUse, ...]] = {}
    cands: list[NicCandidate] = []
    if request.nics_per_gpu > 0:
        cands, w = usable_nics(node.nics, request.nic_link_layer)
        warnings.extend(w)
        if cands and request.nics_per_gpu > len(cands):
            warnings.append(f"--nics-per-gpu {request.nics_per_gpu} but only {len(cands)} usable NICs")
    disks = sorted(node.storage, key=lambda s: natural_key(s.name))
    if gpus:
        keys = [g.index for g in gpus]
        nic_levels = [[level_between(g.pci, c.nic.pci) for c in cands] for g in gpus]
        disk_levels = [[level_between(g.pci, d.pci) for d in disks] for g in gpus]
    else:
        keys = list(range(len(rank_gpu)))
        nic_levels = [[_numa_level(dom, c.nic.numa_node) for c in cands] for dom in rank_domain]
        disk_levels = [[_numa_level(dom, d.numa_node) for d in disks] for dom in rank_domain]
    # GPUs: exact min-cost assignment under a load cap; CPU-only ranks (many, alike): round-robin per tier.
    solve = assign if gpus else spread
    if cands:
        for key, levels, chosen in zip(keys, nic_levels, solve(nic_levels, request.nics_per_gpu), strict=True):
            nic_map[key] = tuple(_nic_use(cands[j], levels[j]) for j in chosen)
        if gpus:
            warnings.extend(_nic_warnings(node, gpus, nic_map, frozenset(c.nic.name for c in cands)))
        unnamed = sorted({u.name for uses in nic_map.values() for u in uses if "@" in u.name}, key=natural_key)
        if unnamed:
            warnings.append(
                f"NIC {', '.join(unnamed)}: the topology gives no verbs device name, so NCCL_IB_HCA and "
                "UCX_NET_DEVICES are not set for it (plan on the node itself to get mlx5_N names)"
            )
    if disks:
        for key, levels, chosen in zip(keys, disk_levels, solve(disk_levels, 1), strict=True):
            storage_map[key] = tuple(StorageUse(disks[j].name, _bus(disks[j].pci), levels[j]) for j in chosen)
    return nic_map, storage_map


def _nic_warnings(
    node: Node, gpus: list[Gpu], nic_map: dict[int, tuple[NicUse, ...]], candidates: frozenset[str]
) -> list[str]:
    """Say when a GPU's NIC is farther than the nearest RDMA NIC it has, and why."""
    out: list[str] = []
    rdma = sorted((n for n in node.nics if n.rdma and n.pci is not None), key=lambda n: natural_key(n.name))
    for gpu in gpus:
        used = nic_map.get(gpu.index, ())
        if not used or not rdma:
            continue
        got = max(rank(u.distance) for u in used)
        best = min(rank(level_between(gpu.pci, n.pci)) for n in rdma)
        in_use = {u.name for u in used}
        nearer = [n for n in rdma if n.name not in in_use and rank(level_between(gpu.pci, n.pci)) < got]
        names = ", ".join(u.name for u in used)
        level = used[-1].distance if len(used) == 1 else "/".join(u.distance for u in used)
        if nearer:
            why = "; ".join(f"{n.name} {_unused_reason(n, candidates)}" for n in nearer)
            out.append(f"GPU {gpu.index} uses {names} ({level}) although nearer NICs exist: {why}")
        elif best >= rank("PHB"):
            out.append(f"GPU {gpu.index}: no RDMA NIC shares a PCIe switch with it; {names} is {level} "
                       "(GPUDirect RDMA traffic crosses the host bridge or the CPU interconnect)")
    return out


def _unused_reason(nic: Nic, candidates: frozenset[str]) -> str:
    """Why a nearer NIC was not taken: its port, the --nic-link-layer filter, or the load cap."""
    port = nic.primary_port
    if port is not None and port.state not in (None, "ACTIVE"):
        return f"port {port.number} is {port.state}"
    if port is not None and port.phys_state not in (None, "LinkUp"):
        return f"port {port.number} is {port.phys_state}"
    if nic.name not in candidates:
        layer = port.link_layer if port is not None and port.link_layer else nic.kind
        return f"is {layer}, excluded by --nic-link-layer"
    return "serves other GPUs (NIC load is balanced)"


def _numa_level(dom: Domain, numa: int | None) -> str:
    return "NODE" if dom is not None and dom == numa else "SYS"


def _bus(pci: object) -> str | None:
    address = getattr(pci, "address", None)
    return str(address) if address is not None else None


def _nic_use(cand: NicCandidate, level: str) -> NicUse:
    port = cand.port
    netdev = port.netdev if port and port.netdev else (cand.nic.netdevs[0] if cand.nic.netdevs else None)
    return NicUse(cand.nic.name, port.number if port else None, netdev, _bus(cand.nic.pci), level, cand.nic.kind)


def _minor(gpu: Gpu) -> int | None:
    for name in gpu.os_names:
        if name.startswith("nvidia") and name[6:].isdigit():
            return int(name[6:])
    return None


def _env(
    local_rank: int, ncores: int, nics: tuple[NicUse, ...], gpu: GpuRef | None, isolate: bool
) -> tuple[tuple[str, str], ...]:
    env = {
        "LOCAL_RANK": str(local_rank),
        "OMP_NUM_THREADS": str(ncores),
        "OMP_PLACES": "cores",
        "OMP_PROC_BIND": "close",
    }
    # A name with '@' was made up by pinctl (the source knew the PCI address, not the verbs
    # device name): NCCL and UCX would match nothing, so such NICs set no variable.
    verbs = [n for n in nics if n.kind in _VERBS_KINDS and "@" not in n.name]
    if verbs:
        # The '=' prefix makes NCCL match names exactly (mlx5_1 must not also select mlx5_10).
        env["NCCL_IB_HCA"] = "=" + ",".join(n.name if n.port is None else f"{n.name}:{n.port}" for n in verbs)
        env["UCX_NET_DEVICES"] = ",".join(f"{n.name}:{n.port or 1}" for n in verbs)
    if isolate and gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu.uuid or str(gpu.index)
    return tuple(sorted(env.items()))


def _options(request: PlanRequest) -> tuple[tuple[str, object], ...]:
    return (
        ("gpus", None if request.gpus is None else tuple(sorted(request.gpus))),
        ("isolate_gpus", request.isolate_gpus),
        ("mem_policy", request.mem_policy),
        ("nic_link_layer", request.nic_link_layer),
        ("nics_per_gpu", request.nics_per_gpu),
        ("procs_per_gpu", request.procs_per_gpu),
        ("ranks", request.ranks),
        ("reserve", format_list(request.reserve)),
        ("reserve_per_numa", request.reserve_per_numa),
        ("smt", request.smt),
        ("visible_devices", None if request.visible_devices is None else tuple(request.visible_devices)),
    )
