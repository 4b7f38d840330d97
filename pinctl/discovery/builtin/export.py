"""The built-in tree written back as hwloc XML v2 (``pinctl snapshot`` where pyhwloc is absent).

The v2 format that hwloc 2.x and 3.x import (``hwloc2.dtd``): each object with its
cpusets and nodesets, memory children (NUMA nodes) before normal children and I/O
children after them, OS device types as hwloc 2 numbers, infos as ``<info>`` elements,
and the NUMA latency matrix as a ``<distances2>`` indexed by OS index. What a sysfs read
does not know (cache line sizes, DMI and CPU model infos, page types) is left out, as a
topology with those filtered would be: libhwloc and the built-in reader load the file to
the same Node as the system it came from.
"""

from __future__ import annotations

from collections.abc import Iterator
from xml.sax.saxutils import quoteattr

from pinctl.discovery.builtin.tree import (
    OSDEV_COPROC,
    OSDEV_DMA,
    OSDEV_GPU,
    OSDEV_NETWORK,
    OSDEV_OPENFABRICS,
    Obj,
    Tree,
    format_bitmap,
)

_CACHE_DEPTH = {"L1Cache": 1, "L2Cache": 2, "L3Cache": 3, "L4Cache": 4, "L5Cache": 5}
_KEPT_ATTRS = ("pci_busid", "pci_type", "pci_link_speed", "bridge_type", "bridge_pci")


def _v2_osdev(types: int) -> int:
    """hwloc 2's single OS device type for hwloc 3's bitmask."""
    for bit, number in ((OSDEV_OPENFABRICS, 3), (OSDEV_COPROC, 5), (OSDEV_GPU, 1), (OSDEV_NETWORK, 2)):
        if types & bit:
            return number
    return 4 if types & OSDEV_DMA else 0


def to_xml(tree: Tree, *, hostname: str | None = None) -> str:
    """*tree* as the text of an hwloc XML v2 file."""
    gp = iter(range(1, 1 << 30))
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<!DOCTYPE topology SYSTEM "hwloc2.dtd">',
        '<topology version="2.0">',
    ]
    root = tree.root
    if hostname and "HostName" not in root.infos:
        root.infos["HostName"] = hostname
    _object(lines, root, 1, gp, allowed=tree.allowed_cpus if tree.allowed_cpus is not None else root.cpuset)
    for d in tree.distances:
        if not all(o.type == "NUMANode" for o in d.objects):
            continue
        indexes = "".join(f"{o.os_index} " for o in d.objects)
        values = "".join(f"{v} " for v in d.values)
        lines.append(
            f'  <distances2 type="NUMANode" nbobjs="{len(d.objects)}" kind="{d.kind}" '
            f'name={quoteattr(d.name or "NUMALatency")} indexing="os">'
        )
        lines.append(f'    <indexes length="{len(indexes)}">{indexes}</indexes>')
        lines.append(f'    <u64values length="{len(values)}">{values}</u64values>')
        lines.append("  </distances2>")
    lines.append("</topology>")
    return "\n".join(lines) + "\n"


def _attrs(o: Obj, gp: int, allowed: frozenset[int] | None) -> str:
    parts = [f"type={quoteattr(o.type)}"]
    if o.os_index is not None:
        parts.append(f'os_index="{o.os_index}"')
    if not o.is_io:
        cpus, nodes = format_bitmap(o.cpuset), format_bitmap(o.nodeset)
        parts += [f'cpuset="{cpus}"', f'complete_cpuset="{cpus}"']
        if allowed is not None:
            parts.append(f'allowed_cpuset="{format_bitmap(allowed)}"')
        parts += [f'nodeset="{nodes}"', f'complete_nodeset="{nodes}"']
        if allowed is not None:
            parts.append(f'allowed_nodeset="{nodes}"')
    parts.append(f'gp_index="{gp}"')
    if o.subtype:
        parts.append(f"subtype={quoteattr(o.subtype)}")
    if o.name:
        parts.append(f"name={quoteattr(o.name)}")
    if o.type == "NUMANode" and o.local_memory:
        parts.append(f'local_memory="{o.local_memory}"')
    if o.type in _CACHE_DEPTH:
        parts.append(f'cache_size="{o.cache_size}" depth="{_CACHE_DEPTH[o.type]}" cache_linesize="0"')
        parts.append('cache_associativity="0" cache_type="0"')
    if o.type == "Bridge":
        depth = 0
        p = o.parent
        while p is not None and p.type == "Bridge":
            depth, p = depth + 1, p.parent
        parts.append(f'depth="{depth}"')
    parts += [f"{k}={quoteattr(o.attrs[k])}" for k in _KEPT_ATTRS if k in o.attrs]
    if o.type == "OSDev":
        parts.append(f'osdev_type="{_v2_osdev(o.osdev_types)}"')
    return " ".join(parts)


def _object(lines: list[str], o: Obj, level: int, gp: Iterator[int], allowed: frozenset[int] | None = None) -> None:
    pad = "  " * level
    head = f"{pad}<object {_attrs(o, next(gp), allowed)}"
    ordered = [c for c in o.children if c.is_memory] + [c for c in o.children if c.is_normal]
    ordered += [c for c in o.children if c.is_io]
    if not ordered and not o.infos:
        lines.append(head + "/>")
        return
    lines.append(head + ">")
    lines += [f"{pad}  <info name={quoteattr(k)} value={quoteattr(v)}/>" for k, v in o.infos.items()]
    for c in ordered:
        _object(lines, c, level + 1, gp)
    lines.append(f"{pad}</object>")
