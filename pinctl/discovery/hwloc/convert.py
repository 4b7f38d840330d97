"""Conversion of a loaded hwloc topology into a Node: CPUs, memory, caches and NUMA distances.

Everything is keyed by OS indexes (never hwloc's logical indexes). No pyhwloc
object leaves this module or :mod:`pinctl.discovery.hwloc.io`: values are
copied out while the topology is alive, because objects die with it.
Imported only after :func:`pinctl.discovery.hwloc_load.ensure_pyhwloc`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from pyhwloc.hwobject import Cache, Object, ObjType
from pyhwloc.hwobject import NumaNode as HwNuma
from pyhwloc.topology import DistancesKind

from pinctl.discovery.hwloc.io import collect_io, ints
from pinctl.model import CacheGroup, Core, Node, NumaNode, Package, PciAddress

if TYPE_CHECKING:
    from pyhwloc.distances import Distances
    from pyhwloc.topology import Topology

# hwloc NUMA subtypes -> NumaNode.kind (hwloc documents GPUMemory, MCDRAM, HBM, NVM, SPM, CXL-DRAM).
_NUMA_KINDS = {
    "gpumemory": "gpu",
    "mcdram": "hbm",
    "hbm": "hbm",
    "cxl-dram": "cxl",
    "cxl": "cxl",
    "nvm": "nvm",
    "spm": "nvm",
}
_SHARED_CACHE_FALLBACK = (ObjType.L2CACHE, ObjType.L4CACHE, ObjType.L5CACHE)


def convert(topo: Topology, *, source: str, hostname: str | None) -> Node:
    """Build a Node from a loaded topology (I/O kept, disallowed CPUs included).

    The allowed CPUs are hwloc's: the cgroup cpuset, never the affinity this process
    inherited (taskset, mpirun's bind-to-core), which a binding replaces."""
    packages = tuple(
        sorted((Package(p.os_index, ints(p.cpuset)) for p in topo.iter_packages()), key=lambda p: p.os_index)
    )
    numa, gpu_memory = _numa_nodes(topo)
    cpu_numa = {n.os_index: n.cpus for n in numa if n.cpus}
    groups = _cache_groups(topo)
    cores, smt_known = _cores(topo, packages, cpu_numa, groups)
    allowed = ints(topo.allowed_cpuset)
    dists = topo.get_distances()
    try:
        distances = _numa_distances(dists)
        io = collect_io(topo, dists, cpu_numa=cpu_numa, packages=packages, gpu_memory=gpu_memory)
        nvlink_facts = any(d.name == "NVLinkBandwidth" for d in dists)
    finally:
        for d in dists:
            d.release()
    notes = list(io.notes)
    nvidia = sum(g.vendor == "nvidia" for g in io.gpus)
    if source != "live" and nvidia >= 2 and not nvlink_facts:  # live: NVML adds the links, or says it cannot
        notes.append(
            f"NVLink unknown: {source} holds no NVLink facts (hwloc writes its NVLinkBandwidth matrix "
            "only with its NVML plugin), so GPU pairs show their PCIe level, not NV#"
        )
    if not smt_known:
        notes.append("hwloc reported no cores: each CPU is treated as its own core (SMT siblings unknown)")
    return Node(
        hostname=hostname or topo.info.get("HostName") or "unknown",
        source=source,
        packages=packages,
        numa_nodes=numa,
        cores=cores,
        l3_groups=groups,
        allowed_cpus=allowed,
        gpus=io.gpus,
        nics=io.nics,
        storage=io.storage,
        numa_distances=distances,
        notes=tuple(notes),
        smt_known=smt_known,
    )


def _numa_kind(subtype: str | None) -> str:
    return _NUMA_KINDS.get((subtype or "").lower(), "dram")


def _normal_parent(obj: Object) -> Object | None:
    """The first non-memory ancestor (NUMA nodes may sit below memory-side caches)."""
    p = obj.parent
    while p is not None and p.is_memory():
        p = p.parent
    return p


def _numa_nodes(topo: Topology) -> tuple[tuple[NumaNode, ...], dict[PciAddress, int]]:
    """NUMA nodes with the CPUs that are really theirs.

    hwloc gives every memory child the cpuset of the object it hangs from, so a
    CPU-less node (GPU memory, HBM next to DRAM, CXL) shows its neighbour's CPUs.
    Per attach point one node owns the CPUs: the first DRAM node, else the first
    that is not GPU memory; a node attached above CPUs already owned by a deeper
    node (CXL memory at the machine root) owns none. Also returns, per GPU PCI
    address, its GPU-memory node (hwloc's PCIBusID info).
    """
    by_parent: dict[int, tuple[Object, list[tuple[HwNuma, str]]]] = {}
    for n in topo.iter_numa_nodes():
        parent = _normal_parent(n)
        if parent is None:
            continue
        entry = by_parent.setdefault(parent.gp_index, (parent, []))
        entry[1].append((n, _numa_kind(n.subtype)))
    owned: set[int] = set()
    out: list[NumaNode] = []
    gpu_memory: dict[PciAddress, int] = {}
    for parent, members in sorted(by_parent.values(), key=lambda e: -e[0].depth):
        members.sort(key=lambda m: m[0].os_index)
        owner = next((n for n, kind in members if kind == "dram"), None)
        if owner is None:
            owner = next((n for n, kind in members if kind != "gpu"), None)
        parent_cpus = ints(parent.cpuset)
        package = _package_of(parent)
        for n, kind in members:
            cpus = parent_cpus if n is owner and not (parent_cpus & owned) else frozenset()
            owned |= cpus
            mem = n.local_memory
            out.append(NumaNode(n.os_index, cpus, mem if mem else None, kind, package))
            addr = PciAddress.parse_or_none(n.info.get("PCIBusID", "")) if kind == "gpu" else None
            if addr is not None:
                gpu_memory[addr] = n.os_index
    if not any(n.memory_bytes for n in out):  # no sizes at all (a synthetic or stripped file): unknown
        return tuple(sorted(out, key=lambda n: n.os_index)), gpu_memory
    # hwloc reads 0 kB as its own 0: beside nodes with memory, that is a memory-less node, not an unknown size
    sized = (n if n.memory_bytes is not None else replace(n, memory_bytes=0) for n in out)
    return tuple(sorted(sized, key=lambda n: n.os_index)), gpu_memory


def _package_of(obj: Object) -> int | None:
    o: Object | None = obj
    while o is not None:
        if o.type == ObjType.PACKAGE:
            return int(o.os_index)
        o = o.parent
    return None


def _cache_groups(topo: Topology) -> tuple[CacheGroup, ...]:
    """One group per L3; without L3, the nearest cache level above cores that some cores share."""
    caches: list[Cache] = [c for c in topo.iter_objs_by_type(ObjType.L3CACHE) if isinstance(c, Cache)]
    if not caches:
        for level in _SHARED_CACHE_FALLBACK:
            level_caches = [c for c in topo.iter_objs_by_type(level) if isinstance(c, Cache)]
            if any(_cores_below(c) > 1 for c in level_caches):
                caches = level_caches
                break
    found = [(ints(c.cpuset), c.size) for c in caches]
    found = [(cpus, size) for cpus, size in found if cpus]
    found.sort(key=lambda e: min(e[0]))
    return tuple(CacheGroup(i, cpus, size or None) for i, (cpus, size) in enumerate(found))


def _cores_below(cache: Object) -> int:
    count = 0
    stack = list(cache.iter_children())
    while stack:
        o = stack.pop()
        if o.type in (ObjType.CORE, ObjType.PU):
            count += 1
        else:
            stack.extend(o.iter_children())
    return count


def _cores(
    topo: Topology,
    packages: Sequence[Package],
    cpu_numa: dict[int, frozenset[int]],
    groups: Sequence[CacheGroup],
) -> tuple[tuple[Core, ...], bool]:
    """Physical cores with their PUs; without Core objects every PU is its own core."""
    pkg_of = _owner_map((p.os_index, p.cpus) for p in packages)
    numa_of = _owner_map(cpu_numa.items())
    l3_of = _owner_map((g.index, g.cpus) for g in groups)
    pu_sets = [tuple(sorted(ints(c.cpuset))) for c in topo.iter_cores()]
    smt_known = bool(pu_sets)
    if not smt_known:
        pu_sets = [(pu.os_index,) for pu in topo.iter_cpus()]
    cores = [Core(pus, pkg_of.get(pus[0]), numa_of.get(pus[0]), l3_of.get(pus[0])) for pus in pu_sets if pus]
    cores.sort(key=lambda c: c.pus[0])
    return tuple(cores), smt_known


def _owner_map(items: Iterable[tuple[int, frozenset[int]]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for owner, cpus in items:
        for cpu in cpus:
            out.setdefault(cpu, owner)
    return out


def _numa_distances(dists: Sequence[Distances]) -> tuple[tuple[int, int, int], ...] | None:
    """The NUMA latency matrix as (os_a, os_b, value) triples, or None when the topology has none."""
    chosen = next((d for d in dists if d.name == "NUMALatency"), None)
    if chosen is None:
        chosen = next(
            (
                d
                for d in dists
                if d.native_handle.contents.kind & DistancesKind.VALUE_LATENCY
                and all(o.type == ObjType.NUMANODE for o in d.objects)
            ),
            None,
        )
    if chosen is None:
        return None
    idx = [o.os_index for o in chosen.objects]
    return tuple(sorted((a, b, int(chosen[i, j])) for i, a in enumerate(idx) for j, b in enumerate(idx)))
