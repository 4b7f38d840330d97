"""Discovery: one source (live system, topology file, gathered tree) in, one Node out.

Sources are interchangeable and fill the same model: hwloc (live, XML, or a gathered
tree; :mod:`pinctl.discovery.hwloc` through pyhwloc, or the built-in reader
:mod:`pinctl.discovery.builtin` where pyhwloc is absent; :mod:`~pinctl.discovery.engine`
picks), NCCL topology XML (:mod:`~pinctl.discovery.nccl`),
sysfs (:mod:`~pinctl.discovery.sysfs`) and NVML (:mod:`~pinctl.discovery.nvml`).
:mod:`pinctl.discovery.merge` is the one pure step that joins them.

A topology file describes another machine, so it gets no sysfs or NVML facts from
this one; a gathered ``--root`` tree gets its own sysfs facts but no NVML (NVML can
only see this machine); the live system gets all three. Sources import their
libraries (pyhwloc, pynvml) only when they run.

Then :mod:`~pinctl.discovery.access` marks what this job may use: the GPUs NVML lists,
whose device files open and which the visibility variables keep, and the cgroup's CPUs
and memory nodes. This is the edge where the environment is read; a gathered tree gets
its own /dev and cgroup files, and the variables only when the caller passes *env*.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace

from pinctl.discovery import engine, merge, nccl, sysfs
from pinctl.discovery import nvml as nvml_source
from pinctl.discovery.access import JobAccess, apply_access
from pinctl.discovery.names import check_names
from pinctl.discovery.visible import VISIBILITY_VARS
from pinctl.errors import UsageError
from pinctl.kernel.cgroup import cpuset
from pinctl.kernel.devices import gpu_device_files
from pinctl.kernel.files import KernelFiles
from pinctl.kernel.host import hostname
from pinctl.model import Node

LIVE = KernelFiles("/")


def discover(
    *, topology: str | None = None, root: str | None = None, nvml: bool = True, env: Mapping[str, str] | None = None
) -> Node:
    """The Node of a topology file (hwloc or NCCL XML), a gathered tree, or this machine.

    *env*: the environment whose GPU visibility variables apply (default: this process's
    for this machine, none for a gathered tree; a topology file gets none).
    """
    if topology is not None and root is not None:
        raise UsageError("--topology and --root are exclusive: a topology file already names its machine")
    if topology is not None:
        if nccl.sniff_topology_file(topology) == "nccl":
            node = merge.normalize(nccl.load_nccl_xml(topology))
        else:
            node = merge.normalize(engine.load(xml_path=topology))
        check_names(node)  # a file from elsewhere: its names reach tables, env values and exports
        return node
    if root is not None:
        files = KernelFiles(root)
        node = merge.normalize(enrich(files, engine.load(fsroot=root)))
        check_names(node)
        if node.hostname == "unknown" and (name := hostname(files)) is not None:
            node = replace(node, hostname=name)  # the gathered node's own name, as doctor reports it
        return apply_access(node, job_access(files, env or {}, None))
    node = enrich(LIVE, engine.load())
    result = None
    if nvml:
        result, reason = nvml_source.query_nvml()
        if result is not None:
            node = merge.apply_nvml(node, result)
        elif reason:
            node = replace(node, notes=(*node.notes, reason))
    node = merge.normalize(node)
    return apply_access(node, job_access(LIVE, os.environ if env is None else env, result))


def job_access(files: KernelFiles, env: Mapping[str, str], result: nvml_source.NvmlResult | None) -> JobAccess:
    """The facts that say what this job may use: variables, NVML's list, device files, cgroup."""
    limit = cpuset(files)
    return JobAccess(
        env=tuple((k, env[k]) for k in VISIBILITY_VARS if k in env),
        nvml=None if result is None else frozenset(g.pci for g in result.gpus if g.pci is not None),
        device_files=gpu_device_files(files),
        cpus=None if limit is None else limit.cpus,
        mems=None if limit is None else limit.mems,
        cgroup=None if limit is None else limit.path.rsplit("/", 1)[0],
    )


def enrich(files: KernelFiles, node: Node) -> Node:
    """*node* with the facts sysfs under *files* adds (ports, links, NVMe, devices hwloc missed)."""
    return merge.merge_sysfs(node, sysfs.read_sysfs(files, node))
