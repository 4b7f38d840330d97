"""Parsing a topology XML that nobody vouches for: its size and nesting depth are bounded first.

ElementTree builds a tree of any depth, but every walk over it (pinctl's own, and
libhwloc's, which recurses in C) costs a stack frame per level: an NCCL file nested
5000 deep ended in a RecursionError traceback (issue 11). Real files are shallow:
an NCCL file is about 8 levels deep, an hwloc file of a large node about 30 (machine,
package, die, caches, core, PU, then PCI bridges and switches), so parsing stops
at :data:`MAX_DEPTH`. Entities are expat's: no external ones are fetched, and
expat 2.4+ refuses exponential entity expansion.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from pinctl.errors import TopologyError

MAX_BYTES = 64 << 20  # an hwloc XML of a 1000-core node with its PCI tree is a few MB
MAX_DEPTH = 128
_CHUNK = 1 << 16


def read_capped(path: str, what: str) -> bytes:
    """The bytes of *path*, refusing a file over :data:`MAX_BYTES`; *what* names it in messages."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise TopologyError(f"cannot read {what} {path}: {e.strerror or e}") from None
    if len(data) > MAX_BYTES:
        raise TopologyError(f"{what} {path} is larger than {MAX_BYTES >> 20} MiB")
    return data


def parse_bounded(data: bytes, label: str, *, max_depth: int = MAX_DEPTH) -> ET.Element:
    """The root element of *data*; elements nested deeper than *max_depth* are a TopologyError.

    Malformed XML raises ``ET.ParseError`` so each caller words it as its format's error.
    """
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
    depth = 0
    root: ET.Element | None = None

    def drain() -> None:
        nonlocal depth, root
        for event in parser.read_events():
            elem = event[-1]
            if event[0] == "end":
                depth -= 1
                continue
            depth += 1
            if root is None and isinstance(elem, ET.Element):
                root = elem
            if depth > max_depth:
                raise TopologyError(f"{label}: elements nested more than {max_depth} levels deep (not a topology)")

    for start in range(0, len(data), _CHUNK):
        parser.feed(data[start : start + _CHUNK])
        drain()
    parser.close()
    drain()
    if root is None:
        raise ET.ParseError("no element found")
    return root
