"""The pure join of what /sys/devices/system/node says onto a Node: memory sizes, nodes the first
source left out, GPU memory nodes and CPUs that belong to no node.

hwloc turns a node's 0 kB into "no size" and may hide NVIDIA GPU memory nodes (hwloc before 2.11
on Grace, or HWLOC_KEEP_NVIDIA_GPU_NUMA_NODES=0); an hwloc or NCCL XML has no sizes at all. sysfs
is the kernel's own word, so where it is read (the live system, a gathered ``--root``) it wins:

* ``MemTotal: 0 kB`` is a memory-less node (``memory_bytes == 0``), which the planner never
  binds memory to and doctor's numa.memoryless-node reports;
* a CPU-less node sysfs lists and the model lacks is added, with its row of the distance matrix;
* on a Grace node each NVIDIA GPU's HBM is a CPU-less node: a GPU whose memory node no source
  named gets the CPU-less node with memory nearest its CPU node (one per GPU, GPUs in PCI order,
  on a CPU node with as many such nodes as GPUs, and only a node followed by the driver's 7 empty
  MIG nodes; NVML's nvmlDeviceGetNumaNodeId wins on the live node), marked ``kind == "gpu"``;
  the empty nodes the driver reserves for MIG after it (eight node ids per GPU in all) too;
* CPUs online but in no node's cpulist are named in a note.
No I/O here: values in, a new Node out.
"""

from __future__ import annotations

from dataclasses import replace

from pinctl.cpuset import format_list
from pinctl.discovery.sysfs import NumaFacts, SysfsFacts
from pinctl.kernel.numa import NODE_DIR
from pinctl.model import MIG_NODES_PER_GPU, Node, NumaNode


def merge_numa(node: Node, facts: SysfsFacts) -> Node:
    """*node* with sysfs's memory sizes, missing CPU-less nodes, GPU memory ties and unnumbered CPUs."""
    if not facts.numa:
        return node
    by_index = {f.os_index: f for f in facts.numa}
    numa = [_sized(n, by_index.get(n.os_index)) for n in node.numa_nodes]
    known = {n.os_index for n in numa}
    added = [f for f in facts.numa if f.os_index not in known and f.cpus is not None and not f.cpus]
    numa += [NumaNode(f.os_index, frozenset(), f.memory_bytes) for f in added]
    numa.sort(key=lambda n: n.os_index)
    distances = node.numa_distances
    if added or distances is None:
        distances = _matrix(facts.numa) or distances
    out = replace(node, numa_nodes=tuple(numa), numa_distances=distances)
    out = tie_gpu_memory(out)
    notes = list(out.notes)
    if added:
        notes.append(
            f"NUMA node(s) {format_list(f.os_index for f in added)} are CPU-less and missing from "
            f"{node.source}: added from the kernel's node list ({NODE_DIR})"
        )
    stray = cpus_without_node(out, facts)
    if stray:
        notes.append(
            f"CPUs {format_list(stray)} belong to no NUMA node (no node's cpulist holds them): "
            "they are planned by package and L3 cache, with no memory binding of their own"
        )
    return replace(out, notes=tuple(notes))


def _sized(n: NumaNode, f: NumaFacts | None) -> NumaNode:
    if f is None or f.memory_bytes is None:
        return n
    return replace(n, memory_bytes=f.memory_bytes)


def _matrix(nodes: tuple[NumaFacts, ...]) -> tuple[tuple[int, int, int], ...] | None:
    """The full SLIT matrix as (a, b, value) triples, or None when a row is missing or the wrong length."""
    order = [f.os_index for f in nodes]
    out = []
    for f in nodes:
        if f.distances is None or len(f.distances) != len(order):
            return None
        out += [(f.os_index, b, d) for b, d in zip(order, f.distances, strict=True)]
    return tuple(sorted(out))


def cpus_without_node(node: Node, facts: SysfsFacts) -> list[int]:
    """Online CPUs (and the model's CPUs) that no NUMA node lists."""
    listed = {c for n in node.numa_nodes for c in n.cpus}
    everyone = set(node.cpus) | set(facts.online_cpus or ())
    return sorted(everyone - listed) if listed else []


def tie_gpu_memory(node: Node) -> Node:
    """Give each NVIDIA GPU without a memory node the CPU-less node with memory nearest its CPU node."""
    gpus = [g for g in node.gpus if g.vendor == "nvidia" and g.memory_numa_node is None and g.numa_node is not None]
    taken = {g.memory_numa_node for g in node.gpus if g.memory_numa_node is not None}
    free = [
        n
        for n in node.numa_nodes
        if n.cpuless and n.memory_bytes and n.os_index not in taken and _mig_block(node, n.os_index)
    ]
    if not gpus or not free or node.numa_distances is None:
        return node
    home = {n.os_index: _nearest_cpu_node(node, n.os_index) for n in free}
    ties: dict[int, int] = {}
    for cpu_node in sorted({g.numa_node for g in gpus if g.numa_node is not None}):
        mine = [g for g in gpus if g.numa_node == cpu_node]
        near = sorted(i for i, h in home.items() if h == cpu_node)
        if len(near) != len(mine):
            continue  # not one memory node per GPU on this CPU node (CXL, HBM beside DRAM): no guess here
        ties.update({g.index: m for g, m in zip(sorted(mine, key=lambda g: g.pci.address), near, strict=True)})
    marked = set(ties.values())
    for first in list(marked):
        for i in range(first + 1, first + MIG_NODES_PER_GPU):
            n = node.numa(i)
            if n is None or not n.cpuless or n.memory_bytes != 0 or i in taken:
                break
            marked.add(i)
    gpus_out = tuple(replace(g, memory_numa_node=ties.get(g.index, g.memory_numa_node)) for g in node.gpus)
    numa = tuple(replace(n, kind="gpu") if n.os_index in marked else n for n in node.numa_nodes)
    return replace(node, gpus=gpus_out, numa_nodes=numa)


def _mig_block(node: Node, first: int) -> bool:
    """The NVIDIA driver's signature: the 7 node ids after a GPU memory node exist, CPU-less and empty.

    A CXL expander or an HBM tier is not followed by such a block, so it is never taken for a GPU's.
    """
    for i in range(first + 1, first + MIG_NODES_PER_GPU):
        n = node.numa(i)
        if n is None or not n.cpuless or n.memory_bytes != 0:
            return False
    return True


def _nearest_cpu_node(node: Node, index: int) -> int | None:
    cpu_nodes = [n.os_index for n in node.numa_nodes if n.cpus]
    known = [(d, c) for c in cpu_nodes if (d := node.distance(index, c)) is not None]
    return min(known)[1] if known else None
