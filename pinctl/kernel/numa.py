"""NUMA node facts from /sys/devices/system/node: which nodes are online, and their CPUs."""

from __future__ import annotations

from pinctl.cpuset import decimal, parse_list
from pinctl.errors import UsageError
from pinctl.kernel.files import KernelFiles

NODE_DIR = "/sys/devices/system/node"


def online_nodes(files: KernelFiles) -> frozenset[int]:
    """NUMA nodes that exist (``online``; node0 when the kernel has no NUMA support)."""
    text = files.read(f"{NODE_DIR}/online")
    if text:
        try:
            return parse_list(text, what="online node list")
        except UsageError:
            pass
    nodes = [n[4:] for n in files.listdir(NODE_DIR) if n.startswith("node")]
    return frozenset(i for n in nodes if (i := decimal(n, limit=5)) is not None) or frozenset({0})


def node_cpus(files: KernelFiles, node: int) -> frozenset[int] | None:
    """CPUs of one NUMA node; None when the node does not exist or its list is unreadable."""
    text = files.read(node_file(node, "cpulist"))
    if text is None:
        return None
    try:
        return parse_list(text, what=f"node{node} cpulist")
    except UsageError:
        return None


def node_file(node: int, name: str) -> str:
    """The path of one of a node's files (``cpulist``, ``meminfo``), for evidence lines."""
    return f"{NODE_DIR}/node{node}/{name}"


def node_memory(files: KernelFiles, node: int) -> int | None:
    """A node's MemTotal in bytes from ``nodeN/meminfo`` ("Node 1 MemTotal:  0 kB"): 0 is a memory-less node.

    None when the file is absent or holds no MemTotal line (unknown, which is not memory-less).
    """
    text = files.read(node_file(node, "meminfo"))
    for line in (text or "").splitlines():
        head, _, value = line.partition(":")
        if head.split()[-1:] == ["MemTotal"]:
            parts = value.split()
            kb = decimal(parts[0], limit=15) if parts else None
            if kb is not None:
                return kb * 1024 if parts[1:2] in (["kB"], []) else None
    return None


def node_distances(files: KernelFiles, node: int) -> tuple[int, ...] | None:
    """A node's row of the SLIT distance matrix (``nodeN/distance``), by online node order; None when unreadable."""
    text = files.read(node_file(node, "distance"))
    if not text:
        return None
    values = [decimal(v, limit=4) for v in text.split()]
    return None if any(v is None for v in values) else tuple(v for v in values if v is not None)
