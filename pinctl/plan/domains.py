"""Which CPU NUMA domain each rank lives in, and which memory nodes its policy names (pure).

A GPU's ranks go to the GPU's NUMA node when it has usable cores. CPU-less nodes
(GPU memory, HBM, CXL) are never CPU domains: a GPU reported on one, or on a node
whose CPUs are all reserved or outside the cpuset, gets the nearest CPU node by
the NUMA distance matrix (then same package, then lowest index). GPUs with
unknown locality (VMs) are spread round-robin. A node with more ranks than
usable cores sends its last ranks to the nearest node with room.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pinctl.cpuset import format_list
from pinctl.model import Gpu, Node
from pinctl.plan.cores import CoreSlot, Domain
from pinctl.words import count


def stray_domain(package: int | None) -> int:
    """The domain of a package's CPUs that no NUMA node lists: a negative key, never a node number."""
    return -1 - (package if package is not None else 1 << 16)


def is_stray(dom: Domain) -> bool:
    return dom is not None and dom < 0


def cpu_domains(node: Node, cores: Sequence[CoreSlot]) -> dict[Domain, list[CoreSlot]]:
    """Usable cores grouped by NUMA node, domains and cores in topology order.

    Where some cores have a NUMA node and others none (no node's cpulist holds them), the
    node-less ones form one domain per package (:func:`stray_domain`), split by L3 like any
    other, so no rank is pooled across packages. A node without any NUMA facts keeps one domain.
    """
    some = any(c.numa is not None for c in cores)
    out: dict[Domain, list[CoreSlot]] = {}
    for c in cores:
        key = c.numa if c.numa is not None or not some else stray_domain(c.package)
        out.setdefault(key, []).append(c)
    return out


def numa_package(node: Node, numa: int) -> int | None:
    n = node.numa(numa)
    if n is None:
        return None
    if n.package is not None:
        return n.package
    for p in node.packages:
        if n.cpus & p.cpus:
            return p.os_index
    return None


def nearest(node: Node, src: int, candidates: Iterable[Domain]) -> list[Domain]:
    """Candidates sorted nearest first: NUMA distance, then same package, then lowest index."""
    pkg = numa_package(node, src)
    inf = 1 << 30

    def key(d: Domain) -> tuple[int, int, int]:
        if d is None:
            return (inf, 1, -1)
        dist = node.distance(src, d)
        same = 0 if pkg is not None and numa_package(node, d) == pkg else 1
        return (inf if dist is None else dist, same, d)

    return sorted(candidates, key=key)


def assign_domains(
    node: Node, rank_gpu: Sequence[Gpu | None], domains: dict[Domain, list[CoreSlot]], warnings: list[str]
) -> list[Domain]:
    """The CPU domain of each GPU rank (ranks of one GPU are consecutive in *rank_gpu*)."""
    order = list(domains)
    load: dict[Domain, int] = dict.fromkeys(order, 0)
    gpu_dom: dict[int, Domain] = {}
    unknown: list[Gpu] = []
    gpus: list[Gpu] = []
    for g in rank_gpu:
        if g is not None and all(g.index != x.index for x in gpus):
            gpus.append(g)
    procs = {g.index: sum(1 for x in rank_gpu if x is not None and x.index == g.index) for g in gpus}
    for g in gpus:
        numa = g.numa_node
        node_numa = None if numa is None else node.numa(numa)
        if numa is None or node_numa is None:
            unknown.append(g)
            continue
        if numa in domains:
            dom: Domain = numa
        else:
            dom = nearest(node, numa, order)[0]
            why = (
                "is CPU-less"
                if node_numa.cpuless
                else "has CPUs the topology does not list"
                if not node_numa.cpus_known
                else "has no usable CPUs (allowed minus reserved)"
            )
            warnings.append(f"GPU {g.index}: its NUMA node {numa} {why}; using the nearest CPU node {dom}")
        gpu_dom[g.index] = dom
        load[dom] += procs[g.index]
    if unknown:
        cap = {d: len(domains[d]) for d in order}
        for g in unknown:
            # Fill where there is room first, so ranks with known locality keep their own node.
            dom = min(order, key=lambda d: (load[d] + procs[g.index] > cap[d], load[d], order.index(d)))
            gpu_dom[g.index] = dom
            load[dom] += procs[g.index]
        warnings.append(
            f"NUMA locality of GPU {format_list(g.index for g in unknown)} is unknown (a VM?): "
            "spreading them round-robin over the NUMA nodes"
        )
    rank_domain: list[Domain] = [gpu_dom[g.index] if g is not None else order[0] for g in rank_gpu]
    unknown_ids = {g.index for g in unknown}
    # Ranks placed away from their own node (unknown locality, or a CPU-less home) yield first.
    movable = {
        i for i, g in enumerate(rank_gpu) if g is not None and (g.index in unknown_ids or g.numa_node != rank_domain[i])
    }
    _relieve(node, rank_domain, domains, warnings, movable)
    return rank_domain


def _relieve(
    node: Node,
    rank_domain: list[Domain],
    domains: dict[Domain, list[CoreSlot]],
    warnings: list[str],
    movable: set[int] | frozenset[int] = frozenset(),
) -> None:
    """Move ranks of an overfull domain to the nearest domain with free cores.

    Ranks in *movable* (GPU locality unknown: no node is theirs) go first, then the last ranks.
    """
    for dom in list(domains):
        members = [i for i, d in enumerate(rank_domain) if d == dom]
        excess = len(members) - len(domains[dom])
        members.sort(key=lambda i: (i in movable, i))
        moved: dict[Domain, list[int]] = {}
        for i in reversed(members[len(members) - excess :] if excess > 0 else []):
            room = [d for d in domains if d != dom and rank_domain.count(d) < len(domains[d])]
            target = nearest(node, dom, room)[0] if dom is not None else room[0]
            rank_domain[i] = target
            moved.setdefault(target, []).append(i)
        if moved:

            def label(group: list[int]) -> str:
                return f"rank{'s' if len(group) > 1 else ''} {format_list(group)}"

            groups = sorted(moved.items(), key=lambda item: min(item[1]))
            where = ", ".join(f"{label(sorted(g))} to node {target}" for target, g in groups)
            warnings.append(
                f"NUMA node {dom} is full "
                f"({count(len(domains[dom]), 'usable core')} for {count(len(members), 'rank')}): "
                f"{where}, the nearest with room"
            )


def _bindable(node: Node, index: int, *, gpu_memory: bool = False) -> bool:
    """A node a rank's memory may go to: the cgroup allows it, it has memory (a memory-less node's
    MemTotal is 0 kB), and it is not a GPU's HBM (Grace: CPU-less GPU memory nodes) unless asked."""
    n = node.numa(index)
    return n is not None and node.mem_allowed(index) and n.memory_bytes != 0 and (gpu_memory or n.kind != "gpu")


def mems_for(
    node: Node,
    policy: str,
    dom: Domain,
    warnings: list[str],
    gpu: Gpu | None = None,
    no_gpu_memory: dict[str, list[int]] | None = None,
) -> tuple[str, tuple[int, ...]]:
    """The memory policy and its node list for a rank whose CPUs are in *dom* (and whose GPU is *gpu*).

    Only memory nodes the job's cgroup allows (cpuset.mems.effective) are named: the kernel
    would refuse a bind outside them, so a rank whose node is not allowed binds to the
    nearest allowed one, with a warning. A memory-less node (0 kB) is never named either: its
    ranks' memory goes to the nearest node with memory. GPU memory nodes (a Grace node's HBM)
    are named only with ``bind+gpu`` / ``interleave+gpu``, which add the rank's GPU's own memory node;
    a GPU without one goes into *no_gpu_memory* (reason: GPU indexes), so the plan says it once
    for all such GPUs (pinctl.plan.nicnotes.grouped), not once per GPU.
    """
    with_gpu = policy.endswith("+gpu")
    policy = policy.removesuffix("+gpu")
    if policy in ("local", "none"):
        return policy, ()
    if dom is None:
        warnings.append(f"no NUMA facts for this node: memory policy {policy} dropped (none)")
        return "none", ()
    if is_stray(dom):
        stray = sorted(c for c in node.cpus if not any(c in n.cpus for n in node.numa_nodes))
        warnings.append(
            f"CPUs {format_list(stray)} belong to no NUMA node: ranks on them get memory policy "
            f"local (the kernel's node for the CPU that allocates), not {policy}"
        )
        return "local", ()
    extra: tuple[int, ...] = ()
    if with_gpu:
        hbm = None if gpu is None else gpu.memory_numa_node
        if hbm is not None and _bindable(node, hbm, gpu_memory=True):
            extra = (hbm,)
        else:
            if gpu is None:
                warnings.append(
                    f"--mem-policy {policy}+gpu: CPU-only ranks have no GPU memory to add: {policy} on CPU memory only"
                )
            else:
                reason = (
                    f"no memory node this job may use for --mem-policy {policy}+gpu (not a Grace-style GPU, "
                    f"or not allowed): {policy} on CPU memory only"
                )
                if no_gpu_memory is None:
                    warnings.append(f"GPU {gpu.index}: {reason}")
                else:
                    no_gpu_memory.setdefault(reason, []).append(gpu.index)
    if policy == "interleave":
        pkg = numa_package(node, dom)
        if pkg is not None:
            same = [
                n.os_index
                for n in node.numa_nodes
                if n.cpus and numa_package(node, n.os_index) == pkg and _bindable(node, n.os_index)
            ]
            if same:
                return policy, tuple(sorted({*same, *extra}))
    if _bindable(node, dom):
        return policy, tuple(sorted({dom, *extra}))
    allowed = [n.os_index for n in node.numa_nodes if _bindable(node, n.os_index)]
    if not allowed:
        warnings.append(
            f"the cgroup allows no memory node with memory on this node: memory policy {policy} dropped (none)"
        )
        return "none", ()
    target = nearest(node, dom, allowed)[0]
    assert target is not None
    home = node.numa(dom)
    if not node.mem_allowed(dom):
        warnings.append(
            f"NUMA node {dom} is not among this job's memory nodes (cgroup): its ranks' memory "
            f"goes to node {target}, the nearest allowed"
        )
    elif home is not None and home.memory_bytes == 0:
        warnings.append(
            f"NUMA node {dom} has no memory (memory-less): its ranks' memory goes to node {target}, "
            "the nearest with memory"
        )
    return policy, tuple(sorted({target, *extra}))
