"""Pre-checks of an hwloc XML file before libhwloc sees it (pure stdlib, no pyhwloc).

libhwloc 3.0 answers a bad file with a bare ``EINVAL`` or, worse, a crash, so the
cases a user can act on are told apart here first: a missing, unreadable, empty
or malformed file, a file that is not an hwloc topology (an NCCL ``<system>``
file, say), and hwloc 1.x XML, which hwloc 3 no longer imports (open-mpi/hwloc
PR #562). Known crash shapes are repaired in memory: hwloc 2.x writes an
unnamed ``<distances2>`` when it converts 1.x distances, and libhwloc 3.0
segfaults loading it (shared/topologies/SOURCES.md); naming it is enough.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from pinctl.discovery.xmltree import MAX_BYTES, parse_bounded
from pinctl.errors import TopologyError

# Distances kinds (hwloc_distances_kind_e): the matrix holds latencies.
_KIND_VALUE_LATENCY = 1 << 2
_DIST_TAGS = ("distances2", "distances2hetero")
_DIST_OPEN_RE = re.compile(r"<(distances2(?:hetero)?)(?=[\s/>])([^>]*)>")
_SUPPORTED_MAJORS = ("2", "3")


@dataclass(frozen=True)
class CheckedXml:
    """An hwloc XML that passed the checks: the text to hand to libhwloc and what was repaired."""

    text: str
    version: str
    repairs: tuple[str, ...] = ()


def check_hwloc_xml(path: str) -> CheckedXml:
    """Read *path* and check it is an hwloc v2/v3 XML libhwloc 3 can load; raise TopologyError if not."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise TopologyError(f"topology file not found: {path}") from None
    except IsADirectoryError:
        raise TopologyError(f"topology path is a directory, not a file: {path}") from None
    except PermissionError:
        raise TopologyError(f"cannot read topology file {path}: permission denied") from None
    except OSError as e:
        raise TopologyError(f"cannot read topology file {path}: {e.strerror or e}") from None
    if len(data) > MAX_BYTES:
        raise TopologyError(f"topology file {path} is larger than {MAX_BYTES >> 20} MiB")
    return check_hwloc_xml_bytes(data, path)


def check_hwloc_xml_bytes(data: bytes, label: str) -> CheckedXml:
    """The checks of :func:`check_hwloc_xml` on file contents; *label* names the file in messages."""
    if not data.strip():
        raise TopologyError(f"topology file {label} is empty")
    try:
        root = parse_bounded(data, label)
    except ET.ParseError as e:
        raise TopologyError(f"malformed XML in {label}: {e}") from None
    if root.tag != "topology":
        hint = " (an NCCL topology file?)" if root.tag == "system" else ""
        raise TopologyError(
            f"{label} is not an hwloc topology file: root element <{root.tag}>, expected <topology>{hint}"
        )
    version = root.get("version", "")
    if version == "" or version.startswith("1."):
        # hwloc 1.x wrote no version attribute on <topology>.
        raise TopologyError(
            f"{label}: hwloc 1.x XML cannot be read by hwloc 3; convert it with hwloc 2.x: "
            f"lstopo-no-graphics --input {label} --whole-io --of xml NEW.xml"
        )
    if version.split(".")[0] not in _SUPPORTED_MAJORS:
        raise TopologyError(f"{label}: unsupported hwloc XML version {version!r} (pinctl reads 2.x and 3.x)")
    text = data.decode("utf-8", errors="replace")
    repairs: list[str] = []
    if any(el.get("name") is None for tag in _DIST_TAGS for el in root.iter(tag)):
        text, count = _name_unnamed_distances(text)
        if _count_unnamed(text, label) or count == 0:
            raise TopologyError(f"{label} has an unnamed <distances2> matrix that crashes libhwloc 3.0")
        repairs.append(
            f"named {count} unnamed <distances2> matrix(es) in {os.path.basename(label)} before loading "
            "(libhwloc 3.0 crashes on them)"
        )
    return CheckedXml(text=text, version=version, repairs=tuple(repairs))


def _name_unnamed_distances(text: str) -> tuple[str, int]:
    """Give every unnamed distances element a name; NUMA latency matrices get hwloc's own name."""
    count = 0

    def fix(m: re.Match[str]) -> str:
        nonlocal count
        tag, attrs = m.group(1), m.group(2)
        if re.search(r"\sname\s*=", attrs):
            return m.group(0)
        count += 1
        kind_m = re.search(r"\skind\s*=\s*[\"'](\d+)[\"']", attrs)
        kind = int(kind_m.group(1)) if kind_m else 0
        numa = re.search(r"\stype\s*=\s*[\"']NUMANode[\"']", attrs) is not None
        name = "NUMALatency" if numa and kind & _KIND_VALUE_LATENCY else f"pinctl-unnamed-{count}"
        return f'<{tag} name="{name}"{attrs}>'

    return _DIST_OPEN_RE.sub(fix, text), count


def _count_unnamed(text: str, label: str) -> int:
    try:
        root = ET.fromstring(text.encode("utf-8"))
    except ET.ParseError as e:
        raise TopologyError(f"malformed XML in {label} after repair: {e}") from None
    return sum(1 for tag in _DIST_TAGS for el in root.iter(tag) if el.get("name") is None)
