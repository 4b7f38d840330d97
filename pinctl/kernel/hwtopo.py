"""The facts hwloc's Linux backend reads, for pinctl's built-in discovery (no libhwloc).

CPU topology and caches (Documentation/ABI/stable/sysfs-devices-system-cpu: ``topology/``
``physical_package_id``, ``thread_siblings_list``; ``cache/indexN/`` ``level``, ``type``,
``size``, ``shared_cpu_list``), NUMA memory and distances (``nodeN/meminfo``, ``distance``),
GPU memory nodes (``/proc/driver/nvidia/gpus/*/numa_status``), PCI configuration headers,
the class devices hwloc turns into OS devices (block, net, infiniband, drm, dma) with the
udev database entries it takes models from, and the facts hwloc-gather-topology saves in
``/proc/hwloc-nofile-info`` (HostName, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pinctl.cpuset import decimal, parse_list
from pinctl.errors import UsageError
from pinctl.kernel.cpus import CPU_DIR
from pinctl.kernel.files import KernelFiles
from pinctl.kernel.numa import NODE_DIR
from pinctl.kernel.pci import DEVICES_DIR
from pinctl.model import PciAddress

_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]?)")
_NVIDIA_GPUS = "/proc/driver/nvidia/gpus"
_UDEV = "/run/udev/data"
CLASS_DIRS = {"block": "/sys/class/block", "net": "/sys/class/net", "infiniband": "/sys/class/infiniband"}
CLASS_DIRS.update({"drm": "/sys/class/drm", "dma": "/sys/class/dma"})


def _list(files: KernelFiles, rel: str) -> frozenset[int] | None:
    text = files.read(rel)
    if text is None:
        return None
    try:
        return parse_list(text, what=rel)
    except UsageError:
        return None


def cpu_numbers(files: KernelFiles) -> list[int]:
    """CPUs that have a ``cpuN`` directory."""
    found = (decimal(d[3:], limit=5) for d in files.listdir(CPU_DIR) if d.startswith("cpu"))
    return sorted(c for c in found if c is not None)


def has_topology(files: KernelFiles, cpus: list[int]) -> bool:
    """Whether any of *cpus* has a ``topology`` directory (a gathered tree without one is not a tree
    libhwloc reads: it stops with "failed to find sysfs cpu topology directory")."""
    return any(files.exists(f"{CPU_DIR}/cpu{c}/topology") for c in cpus)


@dataclass(frozen=True)
class CpuTopology:
    package: int | None
    siblings: frozenset[int] | None  # the core's hardware threads


def cpu_topology(files: KernelFiles, cpu: int) -> CpuTopology:
    base = f"{CPU_DIR}/cpu{cpu}/topology"
    package = files.read_int(f"{base}/physical_package_id")
    siblings = _list(files, f"{base}/core_cpus_list")
    if siblings is None:
        siblings = _list(files, f"{base}/thread_siblings_list")
    return CpuTopology(package if package is not None and package >= 0 else None, siblings)


@dataclass(frozen=True)
class CacheFact:
    level: int
    kind: str  # Unified, Data or Instruction
    size_bytes: int
    cpus: frozenset[int]


def parse_size(text: str | None) -> int:
    """``20480K`` -> bytes (sysfs cache sizes); 0 when absent or odd."""
    m = _SIZE.match(text or "")
    if m is None:
        return 0
    return int(m.group(1)) * {"": 1, "K": 1024, "M": 1 << 20, "G": 1 << 30}[m.group(2)]


def cpu_caches(files: KernelFiles, cpu: int) -> list[CacheFact]:
    out = []
    base = f"{CPU_DIR}/cpu{cpu}/cache"
    for index in files.listdir(base):
        if not index.startswith("index"):
            continue
        level = files.read_int(f"{base}/{index}/level")
        cpus = _list(files, f"{base}/{index}/shared_cpu_list")
        if cpus is None:
            cpus = _mask(files.read(f"{base}/{index}/shared_cpu_map"))
        if level is None or cpus is None:
            continue
        kind = files.read(f"{base}/{index}/type") or "Unified"
        out.append(CacheFact(level, kind, parse_size(files.read(f"{base}/{index}/size")), cpus))
    return out


def node_numbers(files: KernelFiles) -> list[int]:
    """NUMA nodes with a ``nodeN`` directory; empty on a kernel without NUMA."""
    found = (decimal(d[4:], limit=5) for d in files.listdir(NODE_DIR) if d.startswith("node"))
    return sorted(n for n in found if n is not None)


def meminfo_total(text: str | None) -> int | None:
    """Bytes of the ``MemTotal:`` line of a (node) meminfo file (``Node 0 MemTotal:  1234 kB``)."""
    for line in (text or "").splitlines():
        _, found, rest = line.partition("MemTotal:")
        words = rest.split()
        if found and words and (kb := decimal(words[0], limit=15)) is not None:
            return kb * 1024
    return None


def machine_memory(files: KernelFiles) -> int | None:
    return meminfo_total(files.read("/proc/meminfo"))


def nvidia_gpu_numa(files: KernelFiles) -> dict[PciAddress, int]:
    """GPU -> the NUMA node holding its memory (coherent GPU memory: POWER9 NVLink, Grace Hopper)."""
    out: dict[PciAddress, int] = {}
    for name in files.listdir(_NVIDIA_GPUS):
        address = PciAddress.parse_or_none(name)
        text = files.read(f"{_NVIDIA_GPUS}/{name}/numa_status") or ""
        for line in text.splitlines():
            key, _, value = line.partition(":")
            node = decimal(value.strip(), limit=5)
            if key.strip() == "Node" and node is not None and address is not None:
                out[address] = node
    return out


def nofile_infos(files: KernelFiles) -> dict[str, str]:
    """``Name: value`` lines hwloc-gather-topology saved for facts that have no file (HostName)."""
    out: dict[str, str] = {}
    for line in (files.read("/proc/hwloc-nofile-info") or "").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


def pci_functions(files: KernelFiles) -> list[PciAddress]:
    found = (PciAddress.parse_or_none(n) for n in files.listdir(DEVICES_DIR))
    return sorted(a for a in found if a is not None)


def pci_config(files: KernelFiles, address: PciAddress) -> bytes:
    """The function's configuration space as far as this user may read it (64 bytes unprivileged)."""
    try:
        with open(files.path(f"{DEVICES_DIR}/{address}/config"), "rb") as f:
            return f.read(4096)
    except (OSError, ValueError):
        return b""


def pci_local_cpus(files: KernelFiles, address: PciAddress) -> frozenset[int] | None:
    """``local_cpus`` (a mask) or ``local_cpulist``; None when neither is there."""
    listed = _list(files, f"{DEVICES_DIR}/{address}/local_cpulist")
    if listed is not None:
        return listed
    return _mask(files.read(f"{DEVICES_DIR}/{address}/local_cpus"))


def _mask(text: str | None) -> frozenset[int] | None:
    """A kernel CPU mask (``ffffffff,00000000``: 32-bit words, most significant first)."""
    if text is None:
        return None
    try:
        value = int(text.replace(",", ""), 16)
    except ValueError:
        return None
    return frozenset(i for i in range(value.bit_length()) if value >> i & 1)


def udev_entry(files: KernelFiles, key: str) -> dict[str, str]:
    """``E:`` properties of a udev database entry (``b8:0`` for a disk, ``+pci:0000:3b:00.0``)."""
    out: dict[str, str] = {}
    for line in (files.read(f"{_UDEV}/{key}") or "").splitlines():
        if line.startswith("E:"):
            name, _, value = line[2:].partition("=")
            out[name] = value
    return out


def class_devices(files: KernelFiles, kind: str) -> list[tuple[str, str]]:
    """(name, resolved device path) of each device of a class (``block``, ``net``, ...)."""
    base = CLASS_DIRS[kind]
    out = []
    for name in files.listdir(base):
        real = files.resolve(f"{base}/{name}")
        if real is not None:
            out.append((name, real))
    return out


def class_file(files: KernelFiles, kind: str, name: str, rel: str) -> str | None:
    return files.read(f"{CLASS_DIRS[kind]}/{name}/{rel}")


def class_entries(files: KernelFiles, kind: str, name: str, rel: str = "") -> list[str]:
    return files.listdir(f"{CLASS_DIRS[kind]}/{name}" + (f"/{rel}" if rel else ""))
