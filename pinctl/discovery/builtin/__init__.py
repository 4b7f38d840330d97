"""The built-in discovery source: hwloc XML files, the live system and gathered trees without pyhwloc.

Where pyhwloc cannot install (glibc older than 2.34, Python older than 3.12), pinctl still
reads what libhwloc would: an hwloc XML file with its own parser
(:mod:`~pinctl.discovery.builtin.xmlread`), and the live system or a gathered ``--root``
tree through :mod:`pinctl.kernel` (:mod:`~pinctl.discovery.builtin.sysread`). Both fill
hwloc's object model (:mod:`~pinctl.discovery.builtin.tree`) and one converter makes the
Node, by the same rules as the pyhwloc path, so the two give equal Nodes.
"""

from __future__ import annotations

import os
from dataclasses import replace

from pinctl.discovery.builtin.convert import convert
from pinctl.discovery.builtin.export import to_xml
from pinctl.discovery.builtin.sysread import load_sysfs, read_tree
from pinctl.discovery.builtin.xmlread import read_xml
from pinctl.kernel.files import KernelFiles
from pinctl.model import Node


def load_builtin(*, xml_path: str | None = None, fsroot: str | None = None) -> Node:
    """The Node of an hwloc XML file, a gathered tree, or (neither) the live system."""
    if xml_path is not None:
        tree, repairs = read_xml(xml_path)
        node = convert(tree, source=f"hwloc-xml:{xml_path}", hostname=None)
        return replace(node, notes=node.notes + repairs) if repairs else node
    return load_sysfs(fsroot)


def live_xml() -> str:
    """This machine as hwloc XML v2, written from the built-in tree (``pinctl snapshot`` without pyhwloc)."""
    return to_xml(read_tree(KernelFiles("/")), hostname=os.uname().nodename)
