"""Which engine reads hwloc XML, gathered trees and the live system: libhwloc (pyhwloc) or the built-in one.

pyhwloc is the engine wherever it installs; where it cannot (no wheel for glibc < 2.34,
Python < 3.12) the built-in reader (:mod:`pinctl.discovery.builtin`) gives the same Node.
``PINCTL_DISCOVERY=hwloc`` or ``builtin`` forces one (hwloc then fails when pyhwloc is
not usable, with the reason); unset or ``auto`` picks pyhwloc when it imports. The CLI
registers :data:`listener` under ``-v`` to say once which engine ran when pyhwloc is absent.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Literal

from pinctl.discovery import builtin
from pinctl.discovery import hwloc as hwloc_source
from pinctl.discovery.hwloc.isolated import ensure_pyhwloc
from pinctl.errors import TopologyError, UsageError
from pinctl.model import Node

VARIABLE = "PINCTL_DISCOVERY"
Engine = Literal["hwloc", "builtin"]

# Called once with a one-line note when auto falls back to the built-in engine (set by the CLI's -v).
listener: Callable[[str], None] | None = None
_told = False


def choose() -> tuple[Engine, str | None]:
    """The engine to use, and why it is the built-in one when auto chose it (else None)."""
    value = os.environ.get(VARIABLE, "").strip().lower()
    if value == "builtin":
        return "builtin", None
    if value == "hwloc":
        return "hwloc", None
    if value not in ("", "auto"):
        raise UsageError(f"{VARIABLE}={value!r}: expected hwloc, builtin or auto")
    try:
        ensure_pyhwloc()
    except TopologyError as e:
        return "builtin", str(e)
    return "hwloc", None


def _chosen() -> Engine:
    global _told
    engine, why = choose()
    if why is not None and listener is not None and not _told:
        _told = True
        listener(f"discovery: pinctl's built-in reader ({why})")
    return engine


def load(*, xml_path: str | None = None, fsroot: str | None = None) -> Node:
    """The Node of an hwloc XML file, a gathered tree or this machine, by the chosen engine."""
    if _chosen() == "hwloc":
        return hwloc_source.load_hwloc(xml_path=xml_path, fsroot=fsroot)
    return builtin.load_builtin(xml_path=xml_path, fsroot=fsroot)


def live_xml() -> tuple[str, str | None]:
    """This machine as hwloc XML v2 (libhwloc's export, or the built-in tree written out), and
    a note when hwloc's NVML plugin crashed and the XML lacks its facts (never, built-in)."""
    if _chosen() == "hwloc":
        return hwloc_source.live_xml()
    return builtin.live_xml(), None
