"""An object tree (:mod:`~pinctl.discovery.builtin.tree`) as a Node: CPUs, memory, caches, distances.

The rules are those of :mod:`pinctl.discovery.hwloc.convert` applied to libhwloc's tree,
so the two paths give equal Nodes (tests/test_discovery_parity.py holds them to it):
OS indexes only; a CPU-less NUMA node (GPU memory, HBM, CXL) owns no CPUs even
though hwloc hangs it under CPUs; one cache group per L3, else the nearest shared
level; without Core objects each PU is its own core.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from pinctl.discovery.builtin.io import collect_io
from pinctl.discovery.builtin.tree import KIND_VALUE_LATENCY, Obj, Tree
from pinctl.model import CacheGroup, Core, Node, NumaNode, Package, PciAddress

# hwloc NUMA subtypes -> NumaNode.kind (as pinctl.discovery.hwloc.convert maps them).
_NUMA_KINDS = {
    "gpumemory": "gpu",
    "mcdram": "hbm",
    "hbm": "hbm",
    "cxl-dram": "cxl",
    "cxl": "cxl",
    "nvm": "nvm",
    "spm": "nvm",
}
_SHARED_CACHE_FALLBACK = ("L2Cache", "L4Cache", "L5Cache")


def convert(tree: Tree, *, source: str, hostname: str | None) -> Node:
    """Build a Node from *tree* (I/O kept, disallowed CPUs included).

    The allowed CPUs are the tree's (the cgroup cpuset on the live system), never the affinity
    this process inherited, which a binding replaces."""
    packages = tuple(
        sorted(
            (Package(p.os_index or 0, p.cpuset) for p in tree.of_type("Package")),
            key=lambda p: p.os_index,
        )
    )
    numa, gpu_memory = _numa_nodes(tree)
    cpu_numa = {n.os_index: n.cpus for n in numa if n.cpus}
    groups = _cache_groups(tree)
    cores, smt_known = _cores(tree, packages, cpu_numa, groups)
    allowed = tree.allowed_cpus if tree.allowed_cpus is not None else tree.root.cpuset
    io = collect_io(tree, cpu_numa=cpu_numa, packages=packages, gpu_memory=gpu_memory)
    notes = list(io.notes)
    nvlink_facts = any(d.name == "NVLinkBandwidth" for d in tree.distances)
    nvidia = sum(g.vendor == "nvidia" for g in io.gpus)
    if source != "live" and nvidia >= 2 and not nvlink_facts:  # live: NVML adds the links, or says it cannot
        notes.append(
            f"NVLink unknown: {source} holds no NVLink facts (hwloc writes its NVLinkBandwidth matrix "
            "only with its NVML plugin), so GPU pairs show their PCIe level, not NV#"
        )
    if not smt_known:
        notes.append("hwloc reported no cores: each CPU is treated as its own core (SMT siblings unknown)")
    return Node(
        hostname=hostname or tree.info("HostName") or "unknown",
        source=source,
        packages=packages,
        numa_nodes=numa,
        cores=cores,
        l3_groups=groups,
        allowed_cpus=allowed,
        gpus=io.gpus,
        nics=io.nics,
        storage=io.storage,
        numa_distances=_numa_distances(tree),
        notes=tuple(notes),
        smt_known=smt_known,
    )


def _numa_kind(subtype: str | None) -> str:
    return _NUMA_KINDS.get((subtype or "").lower(), "dram")


def _normal_parent(obj: Obj) -> Obj | None:
    p = obj.parent
    while p is not None and p.is_memory:
        p = p.parent
    return p


def _numa_nodes(tree: Tree) -> tuple[tuple[NumaNode, ...], dict[PciAddress, int]]:
    """NUMA nodes with the CPUs that are really theirs (per attach point: the first DRAM node,
    else the first that is not GPU memory; none when a deeper node already owns the CPUs)."""
    by_parent: dict[int, tuple[Obj, list[tuple[Obj, str]]]] = {}
    for n in tree.of_type("NUMANode"):
        parent = _normal_parent(n)
        if parent is None:
            continue
        entry = by_parent.setdefault(id(parent), (parent, []))
        entry[1].append((n, _numa_kind(n.subtype)))
    owned: set[int] = set()
    out: list[NumaNode] = []
    gpu_memory: dict[PciAddress, int] = {}
    for parent, members in sorted(by_parent.values(), key=lambda e: -e[0].depth()):
        members.sort(key=lambda m: m[0].os_index or 0)
        owner = next((n for n, kind in members if kind == "dram"), None)
        if owner is None:
            owner = next((n for n, kind in members if kind != "gpu"), None)
        package = _package_of(parent)
        for n, kind in members:
            cpus = parent.cpuset if n is owner and not (parent.cpuset & owned) else frozenset[int]()
            owned |= cpus
            mem = n.local_memory
            out.append(NumaNode(n.os_index or 0, cpus, mem if mem else None, kind, package))
            addr = PciAddress.parse_or_none(n.infos.get("PCIBusID", "")) if kind == "gpu" else None
            if addr is not None:
                gpu_memory[addr] = n.os_index or 0
    if not any(n.memory_bytes for n in out):  # no sizes at all (a synthetic or stripped file): unknown
        return tuple(sorted(out, key=lambda n: n.os_index)), gpu_memory
    # hwloc reads 0 kB as its own 0: beside nodes with memory, that is a memory-less node, not an unknown size
    sized = (n if n.memory_bytes is not None else replace(n, memory_bytes=0) for n in out)
    return tuple(sorted(sized, key=lambda n: n.os_index)), gpu_memory


def _package_of(obj: Obj) -> int | None:
    o: Obj | None = obj
    while o is not None:
        if o.type == "Package":
            return o.os_index
        o = o.parent
    return None


def _cache_groups(tree: Tree) -> tuple[CacheGroup, ...]:
    """One group per L3; without L3, the nearest cache level above cores that some cores share."""
    caches = tree.of_type("L3Cache")
    if not caches:
        for level in _SHARED_CACHE_FALLBACK:
            level_caches = tree.of_type(level)
            if any(_cores_below(c) > 1 for c in level_caches):
                caches = level_caches
                break
    found = [(c.cpuset, c.cache_size) for c in caches if c.cpuset]
    found.sort(key=lambda e: min(e[0]))
    return tuple(CacheGroup(i, cpus, size or None) for i, (cpus, size) in enumerate(found))


def _cores_below(cache: Obj) -> int:
    count = 0
    stack = list(cache.normal_children())
    while stack:
        o = stack.pop()
        if o.type in ("Core", "PU"):
            count += 1
        else:
            stack.extend(o.normal_children())
    return count


def _cores(
    tree: Tree, packages: Sequence[Package], cpu_numa: dict[int, frozenset[int]], groups: Sequence[CacheGroup]
) -> tuple[tuple[Core, ...], bool]:
    """Physical cores with their PUs; without Core objects every PU is its own core."""
    pkg_of = _owner_map((p.os_index, p.cpus) for p in packages)
    numa_of = _owner_map(cpu_numa.items())
    l3_of = _owner_map((g.index, g.cpus) for g in groups)
    pu_sets = [tuple(sorted(c.cpuset)) for c in tree.of_type("Core")]
    smt_known = bool(pu_sets)
    if not smt_known:
        pu_sets = [(pu.os_index or 0,) for pu in tree.of_type("PU")]
    cores = [Core(pus, pkg_of.get(pus[0]), numa_of.get(pus[0]), l3_of.get(pus[0])) for pus in pu_sets if pus]
    cores.sort(key=lambda c: c.pus[0])
    return tuple(cores), smt_known


def _owner_map(items: Iterable[tuple[int, frozenset[int]]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for owner, cpus in items:
        for cpu in cpus:
            out.setdefault(cpu, owner)
    return out


def _numa_distances(tree: Tree) -> tuple[tuple[int, int, int], ...] | None:
    """The NUMA latency matrix as (os_a, os_b, value) triples, or None when the tree has none."""
    chosen = next((d for d in tree.distances if d.name == "NUMALatency"), None)
    if chosen is None:
        chosen = next(
            (d for d in tree.distances if d.kind & KIND_VALUE_LATENCY and all(o.type == "NUMANode" for o in d.objects)),
            None,
        )
    if chosen is None:
        return None
    idx = [o.os_index or 0 for o in chosen.objects]
    return tuple(sorted((a, b, chosen.value(i, j)) for i, a in enumerate(idx) for j, b in enumerate(idx)))
