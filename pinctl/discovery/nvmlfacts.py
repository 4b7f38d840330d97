"""What NVML said, as frozen values: the answers :mod:`pinctl.discovery.nvml` hands out.

Kept apart from the queries so the model, doctor and the tests can name these types
without the module that talks to the library. A GPU NVML could not read is still an
answer: ``lost`` says how (NVML's error name, and whether the handle or the queries
failed), never a missing entry, so every caller can name it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pinctl.discovery.gpufacts import GpuCondition
from pinctl.model import MigDevice, NvLink, PciAddress

# NVML's errors that mean "this GPU cannot be read" (nvml.h): the first two are a GPU off the
# bus or a driver that lost it; NO_PERMISSION is a device file or cgroup that does not let us in.
LOST_ERRORS = ("GPU_IS_LOST", "UNKNOWN", "NO_PERMISSION")


@dataclass(frozen=True)
class Lost:
    """How NVML failed a GPU: ``code`` is NVML's error name (GPU_IS_LOST, NO_PERMISSION, ...);
    ``step`` is ``handle`` (nvmlDeviceGetHandleByIndex failed) or ``queries`` (a handle, but every
    query answers GPU_IS_LOST)."""

    code: str
    step: str
    call: str

    @property
    def permission(self) -> bool:
        return self.code == "NO_PERMISSION"

    def describe(self) -> str:
        if self.permission:
            return "NVML may not open it (NO_PERMISSION)"
        if self.step == "queries":
            return f"its handle opens but every query answers {self.code}"
        return f"NVML cannot open it ({self.code})"

    def line(self, gpu: str) -> str:
        """One line for a note: *gpu* named, NVML's words once, and where the fix is."""
        what = "NVML may not open it" if self.permission else "NVML cannot open it"
        if self.step == "queries" and not self.permission:
            what = "its handle opens but every query fails"
        return f"{gpu}: {what} ({self.call} -> {self.code}); `pinctl doctor` says what to do"


@dataclass(frozen=True)
class PcieLink:
    """NVML's view of a GPU's link: generation and lanes now and at most (None: not reported)."""

    gen: int | None = None
    width: int | None = None
    max_gen: int | None = None
    max_width: int | None = None


@dataclass(frozen=True)
class NvmlGpu:
    """One GPU as NVML reports it; None = NVML could not say. ``nvlinks`` None = unknown.

    ``cpus`` and ``numa_node`` are NVML's CPU and memory affinity (where a GPU the topology
    lacks belongs); ``lost`` is set when NVML could not read it at all.
    """

    index: int
    pci: PciAddress | None
    uuid: str | None = None
    name: str | None = None
    memory_bytes: int | None = None
    nvlinks: tuple[NvLink, ...] | None = None
    minor: int | None = None
    mig_mode: bool | None = None
    mig: tuple[MigDevice, ...] = ()
    lost: Lost | None = None
    cpus: frozenset[int] | None = None
    numa_node: int | None = None
    pcie: PcieLink | None = None
    numa_node_id: int | None = None  # its own memory's NUMA node (Grace: HBM as a CPU-less node)


@dataclass(frozen=True)
class NvmlResult:
    driver_version: str | None
    gpus: tuple[NvmlGpu, ...]


@dataclass(frozen=True)
class GpuHealth:
    """One GPU as NVML sees it now. ``lost`` when no handle could be had (e.g. GPU_IS_LOST),
    or every query on it answers GPU_IS_LOST; ``error`` is the words for it.

    ``nvlinks`` holds ``(link index, active)`` for each link NVML knows on this board;
    links whose state query fails (absent on this board) are not listed.
    """

    index: int
    pci_bus_id: PciAddress | None = None
    name: str | None = None
    uuid: str | None = None
    lost: bool = False
    error: str | None = None
    persistence_mode: bool | None = None
    pcie_replay_counter: int | None = None
    nvlinks: tuple[tuple[int, bool], ...] = ()
    retired_pages_pending: bool | None = None
    remap_pending: bool | None = None
    remap_failure: bool | None = None
    how: Lost | None = None
    pcie: PcieLink | None = None
    minor: int | None = None  # N of /dev/nvidiaN
    condition: GpuCondition = field(default_factory=GpuCondition)

    @property
    def active_nvlinks(self) -> int:
        return sum(1 for _, active in self.nvlinks if active)


@dataclass(frozen=True)
class NvmlHealth:
    driver_version: str | None
    gpus: tuple[GpuHealth, ...]


@dataclass(frozen=True)
class NvmlUnavailable:
    """Why there is no health data (no library, no driver, init failed); ``code`` is NVML's
    error name when nvmlInit answered one (LIB_RM_VERSION_MISMATCH, DRIVER_NOT_LOADED, ...)."""

    reason: str
    code: str | None = None


@dataclass(frozen=True)
class GpuProcesses:
    """The compute and graphics processes on one GPU; ``pci_bus_id`` in sysfs form (0000:3b:00.0).

    ``error`` says why the list is not known (NVML refused to look: NO_PERMISSION on a MIG
    GPU for non-root, a lost GPU, a driver without the process queries): then ``pids`` is
    empty and means nothing, never "no process".
    """

    index: int
    pci_bus_id: str | None
    pids: tuple[int, ...]
    error: str | None = None


def bits(words: Any) -> frozenset[int] | None:
    """NVML's affinity bitmask (an array of 64-bit words) as bit numbers; None when unknown or empty."""
    if words is None:
        return None
    out = frozenset(w * 64 + b for w, word in enumerate(words) for b in range(64) if int(word) >> b & 1)
    return out or None


def one_node(words: Any) -> int | None:
    """The NUMA node of a memory affinity mask naming exactly one node; None otherwise."""
    nodes = bits(words)
    return next(iter(nodes)) if nodes is not None and len(nodes) == 1 else None


def unavailable(why: str) -> str:
    """The one wording of "NVML cannot be used", shared by every query and its callers."""
    return f"NVML not available: {why}"


_WORDS: dict[str, str] = {
    "LIBRARY_NOT_FOUND": "libnvidia-ml.so.1 not found",
    "DRIVER_NOT_LOADED": "NVIDIA driver not loaded",
    "NO_PERMISSION": "no permission to use NVML",
    # nvidia-smi's own words; doctor's gpu.driver gives the cause and the fix (a doctor line stays short)
    "LIB_RM_VERSION_MISMATCH": "driver/library version mismatch",
}


def words_for(code: str | None) -> str:
    """pinctl's words for an NVML error name that means NVML cannot be used ("" for the others)."""
    return _WORDS.get(code or "", "")


def text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    return str(value).strip("\x00 ") or None


def bus_id(pci_info: Any) -> PciAddress | None:
    """``00000000:3B:00.0`` (NVML's form) -> PciAddress; None when absent or malformed."""
    found = text(getattr(pci_info, "busId", None))
    return None if found is None else PciAddress.parse_or_none(found)


def as_int(value: Any) -> int | None:
    return None if value is None else int(value)
