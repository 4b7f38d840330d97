"""The one discovery entry point: pick the source, join the enrichments, normalize.

A topology file describes another machine, so it gets no sysfs or NVML facts
from this one; a gathered ``--root`` tree gets its own sysfs facts but no NVML
(NVML can only see this machine); the live system gets all three.
"""

from __future__ import annotations

from dataclasses import replace

from pinctl.errors import TopologyError, UsageError
from pinctl.model import Node


def discover(*, topology: str | None = None, root: str | None = None, nvml: bool = True) -> Node:
    """The Node of a topology file (hwloc or NCCL XML), a gathered tree, or this machine."""
    if topology is not None and root is not None:
        raise UsageError("--topology and --root are exclusive: a topology file already names its machine")
    from pinctl.discover.hwloc import load_hwloc

    if topology is not None:
        from pinctl.discover.nccl import load_nccl_xml, sniff_topology_file

        if sniff_topology_file(topology) == "nccl":
            return normalize(load_nccl_xml(topology))
        return normalize(load_hwloc(xml_path=topology))
    from pinctl.discover.sysfs import enrich
    from pinctl.kernel.files import Sysfs

    if root is not None:
        return normalize(enrich(Sysfs(root), load_hwloc(fsroot=root)))
    node = enrich(Sysfs("/"), load_hwloc())
    if nvml:
        from pinctl.discover.nvml import apply_nvml, query_nvml

        result, reason = query_nvml()
        if result is not None:
            node = apply_nvml(node, result)
        elif reason:
            node = replace(node, notes=(*node.notes, reason))
    return normalize(node)


def normalize(node: Node) -> Node:
    """GPUs re-indexed in PCI order (NVML's order); NICs and storage sorted by name.

    A source that yields nothing at all (``<system></system>``, a stripped XML) is not a
    node: every later step would report on nothing, so it is an error here. NCCL files
    whose ``<cpu>`` elements carry no affinity (AWS ships such) still name NUMA nodes.
    """
    if not (node.cpus or node.numa_nodes or node.gpus or node.nics or node.storage):
        raise TopologyError(f"{node.source}: the topology describes no CPUs, NUMA nodes or devices")
    gpus = sorted(node.gpus, key=lambda g: g.pci.address)
    return replace(
        node,
        gpus=tuple(replace(g, index=i) for i, g in enumerate(gpus)),
        nics=tuple(sorted(node.nics, key=lambda n: n.name)),
        storage=tuple(sorted(node.storage, key=lambda s: s.name)),
    )
