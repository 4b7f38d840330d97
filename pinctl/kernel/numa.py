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
