"""The object tree both built-in readers fill: hwloc's object model, as plain Python values.

hwloc describes a machine as a tree of typed objects (Machine, Package, Group, caches,
Core, PU; NUMANode and MemCache as memory children; Bridge, PCIDev and OSDev as I/O
children) with CPU and NUMA sets, infos (name/value pairs) and distance matrices. The
hwloc-XML reader (:mod:`~pinctl.discovery.builtin.xmlread`) and the sysfs reader
(:mod:`~pinctl.discovery.builtin.sysread`) both build this tree, and one converter
(:mod:`~pinctl.discovery.builtin.convert`) turns it into a Node, as
:mod:`pinctl.discovery.hwloc.convert` does with libhwloc's tree. The exporter writes it back
as hwloc XML. OS device types are hwloc 3's bitmask (hwloc 2's single number is mapped on read).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from pinctl.model import PciAddress

MEMORY_TYPES = frozenset({"NUMANode", "MemCache"})
IO_TYPES = frozenset({"Bridge", "PCIDev", "OSDev"})

# hwloc 3 OS device types (hwloc_obj_osdev_type_e): a bitmask.
OSDEV_STORAGE = 1
OSDEV_MEMORY = 2
OSDEV_GPU = 4
OSDEV_COPROC = 8
OSDEV_NETWORK = 16
OSDEV_OPENFABRICS = 32
OSDEV_DMA = 64
# hwloc 2 numbers (BLOCK, GPU, NETWORK, OPENFABRICS, DMA, COPROC) as hwloc 3 reads them.
OSDEV_FROM_V2 = {
    0: OSDEV_STORAGE,
    1: OSDEV_GPU,
    2: OSDEV_NETWORK,
    3: OSDEV_NETWORK | OSDEV_OPENFABRICS,
    4: OSDEV_DMA,
    5: OSDEV_GPU | OSDEV_COPROC,
}
# Distances kinds (hwloc_distances_kind_e).
KIND_VALUE_LATENCY = 1 << 2


@dataclass(eq=False)
class Obj:
    """One hwloc object. Sets hold OS indexes; ``attrs`` keeps the XML attributes a reader had."""

    type: str
    os_index: int | None = None
    cpuset: frozenset[int] = frozenset()
    nodeset: frozenset[int] = frozenset()
    subtype: str | None = None
    name: str | None = None
    infos: dict[str, str] = field(default_factory=dict)
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Obj] = field(default_factory=list)
    parent: Obj | None = None
    gp_index: int | None = None
    osdev_types: int = 0
    local_memory: int = 0
    cache_size: int = 0

    def add(self, child: Obj) -> Obj:
        child.parent = self
        self.children.append(child)
        return child

    @property
    def is_io(self) -> bool:
        return self.type in IO_TYPES

    @property
    def is_memory(self) -> bool:
        return self.type in MEMORY_TYPES

    @property
    def is_normal(self) -> bool:
        return not (self.is_io or self.is_memory or self.type == "Misc")

    def normal_children(self) -> Iterator[Obj]:
        return (c for c in self.children if c.is_normal)

    def io_children(self) -> Iterator[Obj]:
        return (c for c in self.children if c.is_io)

    def walk(self) -> Iterator[Obj]:
        """This object and every object below it, in document order (parents first)."""
        stack = [self]
        while stack:
            o = stack.pop()
            yield o
            stack.extend(reversed(o.children))

    def depth(self) -> int:
        d, p = 0, self.parent
        while p is not None:
            d, p = d + 1, p.parent
        return d

    def has_osdev(self, bits: int) -> bool:
        return self.type == "OSDev" and bool(self.osdev_types & bits)


@dataclass(frozen=True)
class Distances:
    """One distance matrix: its name, kind bits, objects (in order) and row-major values."""

    name: str | None
    kind: int
    objects: tuple[Obj, ...]
    values: tuple[int, ...]

    def value(self, i: int, j: int) -> int:
        return self.values[i * len(self.objects) + j]


@dataclass
class Tree:
    """A whole topology: its root (the Machine) and its distance matrices."""

    root: Obj
    distances: list[Distances] = field(default_factory=list)
    allowed_cpus: frozenset[int] | None = None
    # CPU-less GPU-memory NUMA nodes waiting for their GPU's place in the tree (sysfs reader only).
    pending_memory: list[tuple[Obj, PciAddress]] = field(default_factory=list)
    infos: dict[str, str] = field(default_factory=dict)  # hwloc 3 keeps the topology's infos apart

    def info(self, name: str) -> str | None:
        """A topology info (HostName, Architecture): hwloc 3's own, else the root object's (hwloc 2)."""
        return self.infos.get(name) or self.root.infos.get(name)

    def of_type(self, *types: str) -> list[Obj]:
        return [o for o in self.root.walk() if o.type in types]


def parse_bitmap(text: str | None) -> frozenset[int]:
    """An hwloc bitmap string (``0x0000ffff,0xffffffff``: 32-bit words, most significant first).

    hwloc writes an infinite set as ``0xf...f,...``; the infinite part is dropped (no real
    machine has CPUs past the words written).
    """
    if not text:
        return frozenset()
    words = [w.strip() for w in text.strip().split(",")]
    out: set[int] = set()
    for pos, word in enumerate(reversed(words)):
        digits = word[2:] if word.lower().startswith("0x") else word
        if digits.lower() == "f...f" or not digits:
            continue
        try:
            value = int(digits, 16)
        except ValueError:
            return frozenset()
        base = 32 * pos
        bit = 0
        while value:
            if value & 1:
                out.add(base + bit)
            value >>= 1
            bit += 1
    return frozenset(out)


def format_bitmap(cpus: frozenset[int]) -> str:
    """The hwloc spelling of a set (the inverse of :func:`parse_bitmap`)."""
    if not cpus:
        return "0x0"
    value = 0
    for c in cpus:
        value |= 1 << c
    words = []
    while value:
        words.append(value & 0xFFFFFFFF)
        value >>= 32
    return ",".join(f"0x{w:08x}" for w in reversed(words))
