"""The affinity planner: (Node, PlanRequest) -> Plan. Pure: no I/O, no clock, no environment.

Rules (docs/plan.md gives the reasoning; tests/test_plan_properties.py checks them):
CPU sets are disjoint, non-empty, inside the allowed cpuset minus reserved CPUs,
whole cores, in the GPU's NUMA node when it has usable CPUs, balanced within a
node and L3-aligned when the counts allow (pinctl.plan.cores). NICs and storage
are the nearest usable devices, spread at each level, solved exactly (pinctl.plan.devices).
Every degradation becomes a line in ``Plan.warnings``.
"""

from __future__ import annotations

import hashlib
import json

from pinctl.cpuset import format_list
from pinctl.errors import UsageError
from pinctl.model import Gpu, MigDevice, Node
from pinctl.plan.cores import (
    CoreSlot,
    Domain,
    ordered_cores,
    reserved_per_numa,
    reserved_per_range,
    split_domain,
    split_even,
    split_ranges,
    usable_cores,
)
from pinctl.plan.devices import assign_devices
from pinctl.plan.domains import assign_domains, cpu_domains, is_stray, mems_for
from pinctl.plan.environment import rank_env
from pinctl.plan.nicnotes import fabric_notes, grouped
from pinctl.plan.request import PlanRequest
from pinctl.plan.vendors import device_minor, isolation_env
from pinctl.plan.wholenode import cpu_classes, helper_sets, housekeeping_note, idle_note
from pinctl.planfile.types import Plan, RankPlan
from pinctl.planfile.uses import GpuRef
from pinctl.words import count, named, verb


def fingerprint(node: Node) -> str:
    """A stable id of the node's layout: CPUs per NUMA node, GPU PCI ids, NIC names (not the cgroup)."""
    facts = {
        "numa": [[n.os_index, sorted(n.cpus)] for n in sorted(node.numa_nodes, key=lambda n: n.os_index)],
        "gpus": sorted(str(g.pci.address) for g in node.gpus),
        "nics": sorted(n.name for n in node.nics),
    }
    text = json.dumps(facts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _selected_gpus(node: Node, request: PlanRequest, warnings: list[str]) -> list[Gpu]:
    """The usable GPUs asked for, in the order the launched process counts them (LOCAL_RANK i = the i-th)."""
    gpus = list(node.usable_gpus)
    if not gpus:
        why = "; ".join(f"GPU {g.index}: {g.unusable}" for g in node.gpus[:4])
        more = f" (and {len(node.gpus) - 4} more)" if len(node.gpus) > 4 else ""
        raise UsageError(f"no GPU of this node can be used by this job ({why}{more})")
    if request.gpus is not None:
        known = {g.index for g in node.gpus}
        unknown = sorted(set(request.gpus) - known)
        if unknown:
            have = format_list(known) or "none"
            raise UsageError(f"--gpus: no GPU {format_list(unknown)} on this node (GPUs: {have})")
        barred = [g for g in node.gpus if g.index in request.gpus and not g.usable]
        if barred:
            raise UsageError(f"--gpus: GPU {barred[0].index} cannot be used by this job: {barred[0].unusable}")
        gpus = [g for g in gpus if g.index in request.gpus]
    if request.visible_devices is not None:
        visible: set[int] = set()
        for entry in request.visible_devices:
            hits = [g.index for g in gpus if _matches(g, entry)]
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
    """An index counts as CUDA counts before CUDA_VISIBLE_DEVICES (runtime index, else pinctl's)."""
    if isinstance(entry, int):
        return (gpu.index if gpu.runtime_index is None else gpu.runtime_index) == entry
    return gpu.uuid is not None and gpu.uuid.lower().startswith(entry.lower())


def _counted(gpu: Gpu) -> int:
    """The index the launched process gives *gpu* (torch.cuda's), else pinctl's."""
    return gpu.index if gpu.visible_index is None else gpu.visible_index


def make_plan(node: Node, request: PlanRequest) -> Plan:
    """Plan every local rank's CPUs, memory policy, NICs, storage and environment."""
    request.check()
    warnings: list[str] = []
    all_cores = ordered_cores(node)
    outside = request.reserve - node.cpus
    if outside:
        warnings.append(f"--reserve {named('CPU', outside)} {verb(len(outside), 'does', 'do')} not exist on this node")
    if not node.smt_known and request.smt == "one-per-core":
        raise UsageError(
            "--smt one-per-core needs to know which CPUs share a core, and this topology "
            "does not say (an NCCL file?): plan on the node itself"
        )
    if node.smt_known:
        reserved = request.reserve | reserved_per_numa(all_cores, node.allowed_cpus, request.reserve_per_numa)
    else:
        reserved = request.reserve | reserved_per_range(all_cores, node.allowed_cpus, request.reserve_per_numa)
        if request.reserve_per_numa:
            warnings.append(
                f"--reserve-per-numa {request.reserve_per_numa} with SMT siblings unknown: the first "
                f"{request.reserve_per_numa} CPUs of each contiguous CPU range of a node are reserved "
                "(whole cores where siblings are numbered n and n+N)"
            )
    cores = usable_cores(all_cores, node.allowed_cpus - reserved, request.smt)
    domains = cpu_domains(node, cores)

    gpus: list[Gpu] = []
    if request.ranks is None:
        if not node.gpus:
            raise UsageError("no GPUs on this node: give --ranks N to plan CPU-only ranks")
        gpus = _selected_gpus(node, request, warnings)
        # A GPU in MIG mode gives ranks per instance; they share the GPU's CPU share and NICs.
        slots = [(g, m) for g in gpus for m in (g.mig or (None,)) for _ in range(request.procs_per_gpu)]
        rank_gpu: list[Gpu | None] = [g for g, _ in slots]
        rank_mig: list[MigDevice | None] = [m for _, m in slots]
    else:
        if node.gpus:
            warnings.append("--ranks plans CPU-only ranks: GPUs are not assigned to them")
        rank_gpu = [None] * request.ranks
        rank_mig = [None] * request.ranks
    total = len(rank_gpu)
    if total > len(cores):
        raise UsageError(
            f"{count(total, 'rank')} but only {count(len(cores), 'usable core')} (allowed CPUs minus reserved): "
            "use fewer ranks or reserve less"
        )
    if request.ranks is None:
        rank_domain = assign_domains(node, rank_gpu, domains, warnings)
    else:
        rank_domain = _cpu_only_domains(node, domains, request.ranks)

    runs = _split_domains(node, domains, rank_gpu, rank_domain)
    if not node.smt_known:
        warnings.append(
            "SMT siblings are unknown (the topology does not say which CPUs share a core): each rank "
            "gets an even share of every contiguous CPU range of its NUMA node, and counts are CPUs, not cores"
        )

    nic_map, storage_map, no_efa_selector = assign_devices(
        node,
        nics_per_gpu=request.nics_per_gpu,
        link_layer=request.nic_link_layer,
        local_rails=request.local_rails,
        gpus=gpus,
        rank_domains=rank_domain,
        warnings=warnings,
    )
    pairs = list(zip(rank_gpu, rank_mig, strict=True))
    off = [i for i, (g, m) in enumerate(pairs) if g is not None and m is None and _counted(g) != i]
    if not request.isolate_gpus and off:
        warnings.append(
            "LOCAL_RANK does not equal the GPU index for every rank: use --isolate-gpus, or select "
            "each rank's GPU from the plan, not from LOCAL_RANK"
        )

    rank_cpus = [frozenset(p for c in runs[i] for p in c.usable) for i in range(total)]
    used = frozenset().union(*rank_cpus)
    free = (node.allowed_cpus & node.cpus) - reserved - used
    anchors = [
        g.numa_node if g is not None and g.numa_node is not None else rank_domain[i] for i, g in enumerate(rank_gpu)
    ]
    helpers = helper_sets(node, all_cores, free, used, anchors) if request.helpers else [frozenset()] * total
    if request.helpers and not free:
        warnings.append("--helpers: every allowed CPU is a rank's or housekeeping, so no rank has helper CPUs")
    elif request.helpers and not all(helpers):
        bare = [i for i, h in enumerate(helpers) if not h]
        warnings.append(
            f"--helpers: fewer idle cores than ranks: rank{'s' if len(bare) > 1 else ''} "
            f"{format_list(bare)} get no helper CPUs (pinctl.bind_helper refuses there)"
        )
    classes = cpu_classes(node, all_cores, reserved, used.union(*helpers))
    notes = [housekeeping_note(node, classes), None if request.helpers else idle_note(node, all_cores, classes, used)]
    warnings.extend(n for n in notes if n)

    ranks: list[RankPlan] = []
    unisolated: dict[str, list[int]] = {}
    no_gpu_memory: dict[str, list[int]] = {}
    for i, gpu in enumerate(rank_gpu):
        run = runs[i]
        cpus = rank_cpus[i]
        dom = rank_domain[i]
        policy, mems = mems_for(node, request.mem_policy, dom, warnings, gpu, no_gpu_memory)
        key = gpu.index if gpu is not None else i
        nics = nic_map.get(key, ())
        storage = storage_map.get(key, ())
        ref = None
        visible: tuple[tuple[str, str], ...] = ()
        mig = rank_mig[i]
        if gpu is not None:
            ref = GpuRef(
                gpu.index,
                str(gpu.pci.address),
                gpu.uuid,
                device_minor(gpu),
                gpu.vendor,
                visible_index=gpu.visible_index,
                mig=None if mig is None else mig.uuid,
            )
            if mig is not None:  # a CUDA process sees one MIG instance: the one named here
                visible = (("CUDA_VISIBLE_DEVICES", mig.uuid),)
            elif request.isolate_gpus:
                visible, note = isolation_env(gpu, node.gpus)
                if note:
                    unisolated.setdefault(note, []).append(gpu.index)
        env = rank_env(
            i, len(run), nics, visible, efa_selector=key not in no_efa_selector, helpers=format_list(helpers[i])
        )
        ranks.append(
            RankPlan(
                i,
                ref,
                None if is_stray(dom) else dom,
                cpus,
                tuple(c.index for c in run),
                frozenset(mems),
                policy,
                nics,
                storage,
                env,
                helpers[i],
            )
        )
    warnings.extend(grouped(no_gpu_memory))
    warnings.extend(grouped(unisolated))
    warnings.extend(fabric_notes(nic_map))
    return Plan(
        hostname=node.hostname,
        source=node.source,
        fingerprint=fingerprint(node),
        options=request.options(),
        ranks=tuple(ranks),
        smt_known=node.smt_known,
        warnings=tuple(dict.fromkeys(warnings)),
        cpu_classes=classes,
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
    for p, share in zip(pkgs, per_pkg, strict=True):
        doms = by_pkg[p]
        for dom, c in zip(doms, split_even(share, [len(domains[d]) for d in doms]), strict=True):
            out.extend([dom] * c)
    return out


def _split_domains(
    node: Node, domains: dict[Domain, list[CoreSlot]], rank_gpu: list[Gpu | None], rank_domain: list[Domain]
) -> dict[int, list[CoreSlot]]:
    """Each domain's cores among its ranks, in local-rank order; a spilled rank no wider than its GPU's at home.

    A spilled rank alone on an idle node would otherwise take the whole node: its
    siblings wait for it at every step, so the extra cores buy nothing but imbalance.
    The cap goes into the domain's split, so the node stays balanced and its other
    ranks take the cores the capped one leaves. A cap can narrow the node it lands
    on, which may be another GPU's home and so lower that GPU's caps: caps only
    shrink, so repeating until none changes ends.
    """
    home: dict[int, Domain] = {}  # a GPU's home: its first rank's node (it leaves last, and only if all do)
    for i, gpu in enumerate(rank_gpu):
        if gpu is not None:
            home.setdefault(gpu.index, rank_domain[i])
    caps: dict[int, int] = {}
    while True:
        runs: dict[int, list[CoreSlot]] = {}
        for dom, dcores in domains.items():
            members = [i for i, d in enumerate(rank_domain) if d == dom]
            split = None if node.smt_known else split_ranges(dcores, len(members))
            if split is not None:  # SMT unknown: even shares of each CPU range, trimmed to the cap
                split = [run[: caps.get(i, len(run))] for i, run in zip(members, split, strict=True)]
            else:
                bounds = [caps.get(i, len(dcores)) for i in members]
                split = split_domain(dcores, len(members), bounds if any(i in caps for i in members) else None)
            runs.update(zip(members, split, strict=True))
        widest: dict[int, int] = {}
        for i, gpu in enumerate(rank_gpu):
            if gpu is not None and rank_domain[i] == home[gpu.index]:
                widest[gpu.index] = max(widest.get(gpu.index, 0), len(runs[i]))
        new = {
            i: min(caps.get(i, widest[gpu.index]), widest[gpu.index])
            for i, gpu in enumerate(rank_gpu)
            if gpu is not None and rank_domain[i] != home[gpu.index]
        }
        if new == caps:
            return runs
        caps = new
