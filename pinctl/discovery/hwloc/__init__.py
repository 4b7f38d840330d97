"""The hwloc source: the live system, an hwloc XML file or a gathered sysfs tree, as a Node.

The public face of the pyhwloc adapter. Files are checked first
(:mod:`pinctl.discovery.hwloc.xmlcheck`), then libhwloc loads and the tree is converted
in a forked child (:mod:`pinctl.discovery.hwloc.isolated`), so neither a bad file nor a
libhwloc crash can take pinctl down: each becomes a one-line TopologyError.
pyhwloc is imported only when a load runs (:func:`pinctl.discovery.hwloc.isolated.ensure_pyhwloc`).
"""

from __future__ import annotations

import os

from pinctl.discovery.hwloc import isolated
from pinctl.discovery.hwloc.xmlcheck import check_hwloc_xml
from pinctl.errors import TopologyError
from pinctl.kernel.cpus import has_cpu_dir
from pinctl.kernel.files import KernelFiles
from pinctl.model import Node


def load_hwloc(*, xml_path: str | None = None, fsroot: str | None = None) -> Node:
    """Discover a Node with hwloc.

    With neither argument: the live system (allowed_cpus = the cgroup cpuset; the
    affinity this process inherited is no limit, a binding replaces it).
    *xml_path*: an hwloc XML v2/v3 file (``lstopo --of xml``,
    ``pinctl snapshot``); hwloc 1.x XML is refused with the command that converts
    it. *fsroot*: a tree gathered by hwloc-gather-topology (its ``sys`` and
    ``proc`` under one folder).
    """
    if xml_path is not None and fsroot is not None:
        raise TopologyError("give either an hwloc XML file or a gathered sysfs tree, not both")
    if xml_path is not None:
        checked = check_hwloc_xml(xml_path)
        src = isolated.Source(
            kind="xml", what=xml_path, label=f"hwloc-xml:{xml_path}", xml_text=checked.text, notes=checked.repairs
        )
    elif fsroot is not None:
        src = isolated.Source(kind="fsroot", what=fsroot, label=f"sysfs:{fsroot}", fsroot=_check_fsroot(fsroot))
    else:
        src = isolated.Source(kind="live", what="the live system", label="live")
    return isolated.load_node(src)


def _check_fsroot(fsroot: str) -> str:
    """The absolute root of a gathered tree; libhwloc would silently read nothing from a wrong one."""
    if not os.path.isdir(fsroot):
        raise TopologyError(f"gathered sysfs tree not found: {fsroot} is not a directory")
    root = os.path.abspath(fsroot)
    if not has_cpu_dir(KernelFiles(root)):
        raise TopologyError(f"{fsroot} is not a gathered sysfs tree (no sys/devices/system/cpu under it)")
    return root


def live_xml() -> tuple[str, str | None]:
    """The live topology, I/O devices kept, as hwloc XML (v2 format: hwloc 2.x and 3.x read it),
    and a note when hwloc's NVML plugin crashed and the XML lacks its facts."""
    return isolated.export_live_xml()
