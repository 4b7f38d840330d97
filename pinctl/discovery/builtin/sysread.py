"""The live system or a gathered ``--root`` tree into an object tree, as hwloc's Linux backend builds it.

Read through :mod:`pinctl.kernel` only (root-prefixed, so a tree gathered by
hwloc-gather-topology reads like the live system): online CPUs grouped into cores by
their thread siblings and into packages by ``physical_package_id``; shared caches from
``cache/indexN``; NUMA nodes from ``/sys/devices/system/node`` attached to the smallest
object holding their CPUs (a Group when none has exactly those), CPU-less ones at the
GPU whose memory they are (``/proc/driver/nvidia/gpus``) or at the machine root; the
NUMA latency matrix from ``nodeN/distance``. PCI devices and OS devices come from
:mod:`~pinctl.discovery.builtin.syspci`.
"""

from __future__ import annotations

import os

from pinctl.discovery.builtin.convert import convert
from pinctl.discovery.builtin.syspci import add_pci
from pinctl.discovery.builtin.tree import KIND_VALUE_LATENCY, Distances, Obj, Tree
from pinctl.errors import TopologyError
from pinctl.kernel import hwtopo
from pinctl.kernel.cgroup import cpuset
from pinctl.kernel.cpus import has_cpu_dir, online_cpus
from pinctl.kernel.files import KernelFiles
from pinctl.kernel.numa import node_cpus, node_distances, node_memory
from pinctl.model import Node

_CACHE_TYPES = {1: "L1Cache", 2: "L2Cache", 3: "L3Cache", 4: "L4Cache", 5: "L5Cache"}


def load_sysfs(fsroot: str | None) -> Node:
    """The Node of a gathered tree (*fsroot*) or, with None, of this machine."""
    if fsroot is None:
        files = KernelFiles("/")
        tree = read_tree(files)
        limit = cpuset(files)  # libhwloc's allowed CPUs on this machine: the cgroup's
        if limit is not None and limit.cpus & tree.root.cpuset:
            tree.allowed_cpus = limit.cpus & tree.root.cpuset
        return convert(tree, source="live", hostname=os.uname().nodename)
    if not os.path.isdir(fsroot):
        raise TopologyError(f"gathered sysfs tree not found: {fsroot} is not a directory")
    root = os.path.abspath(fsroot)
    files = KernelFiles(root)
    if not has_cpu_dir(files):
        raise TopologyError(f"{fsroot} is not a gathered sysfs tree (no sys/devices/system/cpu under it)")
    return convert(read_tree(files), source=f"sysfs:{fsroot}", hostname=None)


def read_tree(files: KernelFiles) -> Tree:
    """The object tree of the machine under *files*."""
    online = online_cpus(files)
    cpus = hwtopo.cpu_numbers(files)
    if online is not None:
        cpus = [c for c in cpus if c in online]
    if not cpus:
        raise TopologyError(f"{files.root} has no sysfs cpu topology (no online CPU)")
    if not files.is_live and not hwtopo.has_topology(files, cpus):
        raise TopologyError(f"{files.root} has no sysfs cpu topology (no cpuN/topology folder): not a gathered tree")
    everything = frozenset(cpus)
    machine = Obj("Machine", os_index=0, cpuset=everything)
    if not files.is_live:
        machine.infos.update(hwtopo.nofile_infos(files))
    tree = Tree(machine)
    _cpu_objects(files, machine, cpus)
    _numa(files, tree)
    add_pci(files, tree, insert=insert_group)
    _nodesets(tree)
    return tree


def _cpu_objects(files: KernelFiles, machine: Obj, cpus: list[int]) -> None:
    everything = machine.cpuset
    topo = {c: hwtopo.cpu_topology(files, c) for c in cpus}
    packages: dict[int, set[int]] = {}
    for c, t in topo.items():
        if t.package is not None:
            packages.setdefault(t.package, set()).add(c)
    for number, members in sorted(packages.items()):
        machine.add(Obj("Package", os_index=number, cpuset=frozenset(members)))
    caches: dict[tuple[int, str, frozenset[int]], int] = {}
    for c in cpus:
        for fact in hwtopo.cpu_caches(files, c):
            shared = fact.cpus & everything
            if fact.level >= 2 and fact.kind != "Instruction" and shared:
                caches.setdefault((fact.level, fact.kind, shared), fact.size_bytes)
    for (level, _, shared), size in sorted(caches.items(), key=lambda e: (-e[0][0], min(e[0][2]))):
        if level in _CACHE_TYPES:
            insert_group(machine, Obj(_CACHE_TYPES[level], cpuset=shared, cache_size=size))
    cores: dict[frozenset[int], None] = {}
    for c in cpus:
        siblings = topo[c].siblings
        cores.setdefault((siblings & everything) if siblings else frozenset({c}), None)
    for pus in cores:
        core = insert_group(machine, Obj("Core", os_index=None, cpuset=pus))
        for pu in sorted(pus):
            core.add(Obj("PU", os_index=pu, cpuset=frozenset({pu})))


def insert_group(under: Obj, new: Obj) -> Obj:
    """Put *new* below the deepest normal object holding its CPUs, adopting the children inside it.

    An object with exactly the same CPUs is where a NUMA node or I/O parent goes (returned
    instead); *new* of type Group is then not inserted. Other types nest below their equal.
    """
    if under.cpuset == new.cpuset and new.type == "Group":  # the highest object below with these CPUs
        return next((c for c in under.normal_children() if c.cpuset == new.cpuset), under)
    parent = under
    while True:
        inner = next((c for c in parent.normal_children() if new.cpuset <= c.cpuset), None)
        if inner is None:
            break
        if inner.cpuset == new.cpuset and new.type == "Group":
            return inner
        parent = inner
    if parent.cpuset == new.cpuset and new.type == "Group":
        return parent
    inside = [c for c in parent.normal_children() if c.cpuset <= new.cpuset]
    for c in inside:
        parent.children.remove(c)
        new.add(c)
    return parent.add(new)


def _numa(files: KernelFiles, tree: Tree) -> None:
    machine = tree.root
    numbers = hwtopo.node_numbers(files)
    if not numbers:
        machine.add(Obj("NUMANode", os_index=0, cpuset=machine.cpuset, local_memory=hwtopo.machine_memory(files) or 0))
        return
    gpu_memory = {node: addr for addr, node in hwtopo.nvidia_gpu_numa(files).items()}
    for n in numbers:
        cpus = (node_cpus(files, n) or frozenset()) & machine.cpuset
        node = Obj("NUMANode", os_index=n, cpuset=cpus, local_memory=node_memory(files, n) or 0)
        if cpus:
            insert_group(machine, Obj("Group", cpuset=cpus)).add(node)
        elif n in gpu_memory:
            node.subtype = "GPUMemory"
            node.infos["PCIBusID"] = str(gpu_memory[n])
            tree.pending_memory.append((node, gpu_memory[n]))
        else:
            machine.add(node)
    rows = [node_distances(files, n) or () for n in numbers]
    if len(numbers) > 1 and all(len(r) == len(numbers) for r in rows):
        objs = {o.os_index: o for o in tree.of_type("NUMANode")}
        objs.update((node.os_index, node) for node, _ in tree.pending_memory)  # attached with their GPU later
        values = tuple(v for r in rows for v in r)
        tree.distances.append(Distances("NUMALatency", KIND_VALUE_LATENCY | 1, tuple(objs[n] for n in numbers), values))


def _nodesets(tree: Tree) -> None:
    """Each object's NUMA nodes: those attached at it, at its ancestors, or anywhere below it."""
    below: dict[int, frozenset[int]] = {}

    def collect(o: Obj, above: frozenset[int]) -> frozenset[int]:
        here = frozenset(c.os_index or 0 for c in o.children if c.type == "NUMANode")
        sub: frozenset[int] = here
        for c in o.children:
            if c.is_normal:
                sub |= collect(c, above | here)
            elif c.type == "NUMANode":
                c.nodeset = frozenset({c.os_index or 0})
        below[id(o)] = sub
        o.nodeset = above | sub
        return sub

    collect(tree.root, frozenset())
