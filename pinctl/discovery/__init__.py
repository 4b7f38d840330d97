"""Discovery: one source (live system, topology file, gathered tree) in, one Node out.

Sources are interchangeable and fill the same model: hwloc (live, XML, or a gathered
tree; :mod:`pinctl.discovery.hwloc`), NCCL topology XML (:mod:`~pinctl.discovery.nccl`),
sysfs (:mod:`~pinctl.discovery.sysfs`) and NVML (:mod:`~pinctl.discovery.nvml`).
:mod:`pinctl.discovery.merge` is the one pure step that joins them.

A topology file describes another machine, so it gets no sysfs or NVML facts from
this one; a gathered ``--root`` tree gets its own sysfs facts but no NVML (NVML can
only see this machine); the live system gets all three. Sources import their
libraries (pyhwloc, pynvml) only when they run.
"""

from __future__ import annotations

from dataclasses import replace

from pinctl.discovery import hwloc as hwloc_source
from pinctl.discovery import merge, nccl, sysfs
from pinctl.discovery import nvml as nvml_source
from pinctl.errors import UsageError
from pinctl.kernel.files import KernelFiles
from pinctl.model import Node


def discover(*, topology: str | None = None, root: str | None = None, nvml: bool = True) -> Node:
    """The Node of a topology file (hwloc or NCCL XML), a gathered tree, or this machine."""
    if topology is not None and root is not None:
        raise UsageError("--topology and --root are exclusive: a topology file already names its machine")
    if topology is not None:
        if nccl.sniff_topology_file(topology) == "nccl":
            return merge.normalize(nccl.load_nccl_xml(topology))
        return merge.normalize(hwloc_source.load_hwloc(xml_path=topology))
    if root is not None:
        return merge.normalize(enrich(KernelFiles(root), hwloc_source.load_hwloc(fsroot=root)))
    node = enrich(KernelFiles("/"), hwloc_source.load_hwloc())
    if nvml:
        result, reason = nvml_source.query_nvml()
        if result is not None:
            node = merge.apply_nvml(node, result)
        elif reason:
            node = replace(node, notes=(*node.notes, reason))
    return merge.normalize(node)


def enrich(files: KernelFiles, node: Node) -> Node:
    """*node* with the facts sysfs under *files* adds (ports, links, NVMe, devices hwloc missed)."""
    return merge.merge_sysfs(node, sysfs.read_sysfs(files, node))
