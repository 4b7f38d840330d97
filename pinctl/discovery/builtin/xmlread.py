"""hwloc XML (v2 and v3, as ``lstopo --of xml`` and ``pinctl snapshot`` write it) into an object tree.

The format is hwloc's own (its ``hwloc2.dtd`` and the "Importing and exporting topologies
from/to XML files" chapter): nested ``<object type=...>`` elements with ``cpuset``,
``nodeset``, ``os_index``, ``gp_index``, ``local_memory``, ``cache_size``, PCI attributes
(``pci_busid``, ``pci_type``, ``pci_link_speed``, ``bridge_type``, ``bridge_pci``) and
``osdev_type``; ``<info name value>`` children; ``<distances2>`` and ``<distances2hetero>``
matrices whose ``<indexes>`` name objects by OS index, by gp_index, or as ``Type:gp_index``.
The same pre-checks as the libhwloc path run first (:func:`check_hwloc_xml`), so both paths
refuse the same files with the same words.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from pinctl.discovery.builtin.tree import OSDEV_FROM_V2, Distances, Obj, Tree, parse_bitmap
from pinctl.discovery.hwloc.xmlcheck import check_hwloc_xml
from pinctl.discovery.xmltree import parse_bounded
from pinctl.errors import TopologyError


def read_xml(path: str) -> tuple[Tree, tuple[str, ...]]:
    """The tree of the hwloc XML file *path*, and the repairs the pre-check made."""
    checked = check_hwloc_xml(path)
    try:
        root = parse_bounded(checked.text.encode("utf-8"), path)
    except ET.ParseError as e:
        raise TopologyError(f"malformed XML in {path}: {e}") from None
    return tree_of(root, path), checked.repairs


def tree_of(root: ET.Element, label: str) -> Tree:
    """The tree of a parsed ``<topology>`` element; *label* names the file in messages."""
    v2 = root.get("version", "").startswith("2")
    top = root.find("object")
    if top is None:
        raise TopologyError(f"{label}: the hwloc topology holds no object")
    machine = _object(top, None, v2)
    tree = Tree(machine, allowed_cpus=parse_bitmap(top.get("allowed_cpuset")) if top.get("allowed_cpuset") else None)
    objs = list(machine.walk())
    for el in root:
        if el.tag == "info" and el.get("name") is not None:
            tree.infos[el.get("name", "")] = el.get("value", "")
        elif el.tag in ("distances2", "distances2hetero"):
            found = _distances(el, objs)
            if found is not None:
                tree.distances.append(found)
    return tree


def _int(text: str | None, base: int = 10) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip(), base)
    except ValueError:
        return None


def _object(el: ET.Element, parent: Obj | None, v2: bool) -> Obj:
    """One ``<object>`` and everything below it (iteratively: the depth is bounded by the parser)."""
    top = _make(el, v2)
    top.parent = parent
    stack = [(el, top)]
    while stack:
        element, obj = stack.pop()
        for child in element:
            if child.tag == "object":
                made = obj.add(_make(child, v2))
                stack.append((child, made))
            elif child.tag == "info":
                name = child.get("name")
                if name is not None:
                    obj.infos[name] = child.get("value", "")
    return top


def _make(el: ET.Element, v2: bool) -> Obj:
    a = el.attrib
    osdev = _int(a.get("osdev_type")) or 0
    return Obj(
        type=a.get("type", ""),
        os_index=_int(a.get("os_index")),
        cpuset=parse_bitmap(a.get("cpuset")),
        nodeset=parse_bitmap(a.get("nodeset")),
        subtype=a.get("subtype"),
        name=a.get("name"),
        attrs=dict(a),
        gp_index=_int(a.get("gp_index")),
        osdev_types=OSDEV_FROM_V2.get(osdev, 0) if v2 and "osdev_type" in a else osdev,
        local_memory=_int(a.get("local_memory")) or 0,
        cache_size=_int(a.get("cache_size")) or 0,
    )


def _tokens(el: ET.Element, tag: str) -> list[str]:
    out: list[str] = []
    for part in el.iter(tag):
        out.extend((part.text or "").split())
    return out


def _distances(el: ET.Element, objs: list[Obj]) -> Distances | None:
    """A matrix whose objects all exist; one naming a missing object is dropped, as libhwloc does."""
    n = _int(el.get("nbobjs")) or 0
    indexes = _tokens(el, "indexes")
    values = [_int(v) for v in _tokens(el, "u64values")]
    if n <= 0 or len(indexes) != n or len(values) != n * n or any(v is None for v in values):
        return None
    found: list[Obj] = []
    for token in indexes:
        if el.tag == "distances2hetero":
            kind, _, number = token.partition(":")
            obj = _find(objs, kind, "gp", _int(number))
        else:
            obj = _find(objs, el.get("type", ""), el.get("indexing", "os"), _int(token))
        if obj is None:
            return None
        found.append(obj)
    return Distances(el.get("name"), _int(el.get("kind")) or 0, tuple(found), tuple(v or 0 for v in values))


def _find(objs: list[Obj], kind: str, indexing: str, number: int | None) -> Obj | None:
    if number is None:
        return None
    for o in objs:
        if o.type == kind and (o.gp_index if indexing == "gp" else o.os_index) == number:
            return o
    return None
