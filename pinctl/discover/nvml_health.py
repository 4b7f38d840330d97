"""A small NVML health query for ``pinctl doctor``: the facts a topology does not hold.

Persistence mode, lost GPUs, pending page retirement / row remapping, PCIe
replay counters and NVLink link states. Like nvitop, every query has a "not
known" answer: an NVMLError leaves its field None (or marks the GPU lost), so a
missing driver, an old GPU or a feature the board lacks never raises. pynvml is
imported inside :func:`query_health` only (it costs ~34 ms).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from pinctl.model import PciAddress

T = TypeVar("T")


@dataclass(frozen=True)
class GpuHealth:
    """One GPU as NVML sees it now. ``lost`` when no handle could be had (e.g. GPU_IS_LOST).

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

    @property
    def active_nvlinks(self) -> int:
        return sum(1 for _, active in self.nvlinks if active)


@dataclass(frozen=True)
class NvmlHealth:
    driver_version: str | None
    gpus: tuple[GpuHealth, ...]


@dataclass(frozen=True)
class NvmlUnavailable:
    """Why there is no health data (no library, no driver, init failed)."""

    reason: str


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def query_health() -> NvmlHealth | NvmlUnavailable:
    """Ask NVML about every GPU; never raises."""
    try:
        import pynvml
    except ImportError as exc:
        return NvmlUnavailable(f"pynvml not importable ({exc})")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return NvmlUnavailable(f"NVML init failed: {exc}")
    except OSError as exc:  # a broken libnvidia-ml.so can fail at load time
        return NvmlUnavailable(f"NVML init failed: {exc}")
    try:
        return _collect(pynvml)
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


def _collect(nv: Any) -> NvmlHealth | NvmlUnavailable:
    def call(fn: Callable[[], T]) -> T | None:
        try:
            return fn()
        except nv.NVMLError:
            return None

    count = call(nv.nvmlDeviceGetCount)
    if count is None:
        return NvmlUnavailable("nvmlDeviceGetCount failed")
    driver = call(nv.nvmlSystemGetDriverVersion)
    gpus = tuple(_one_gpu(nv, call, i) for i in range(int(count)))
    return NvmlHealth(driver_version=None if driver is None else _text(driver), gpus=gpus)


def _one_gpu(nv: Any, call: Callable[[Callable[[], Any]], Any], index: int) -> GpuHealth:
    try:
        handle = nv.nvmlDeviceGetHandleByIndex(index)
    except nv.NVMLError as exc:
        return GpuHealth(index=index, lost=True, error=str(exc))
    pci = call(lambda: nv.nvmlDeviceGetPciInfo(handle))
    address = None
    if pci is not None:
        try:
            address = PciAddress.parse(_text(pci.busId))
        except Exception:  # a malformed id leaves the address unknown, as every other field
            address = None
    name = call(lambda: nv.nvmlDeviceGetName(handle))
    uuid = call(lambda: nv.nvmlDeviceGetUUID(handle))
    persistence = call(lambda: nv.nvmlDeviceGetPersistenceMode(handle))
    replay = call(lambda: nv.nvmlDeviceGetPcieReplayCounter(handle))
    pending = call(lambda: nv.nvmlDeviceGetRetiredPagesPendingStatus(handle))
    remap = call(lambda: nv.nvmlDeviceGetRemappedRows(handle))
    links: list[tuple[int, bool]] = []
    for link in range(int(getattr(nv, "NVML_NVLINK_MAX_LINKS", 18))):
        state = call(partial(nv.nvmlDeviceGetNvLinkState, handle, link))
        if state is not None:
            links.append((link, int(state) == nv.NVML_FEATURE_ENABLED))
    return GpuHealth(
        index=index,
        pci_bus_id=address,
        name=None if name is None else _text(name),
        uuid=None if uuid is None else _text(uuid),
        persistence_mode=None if persistence is None else int(persistence) == nv.NVML_FEATURE_ENABLED,
        pcie_replay_counter=None if replay is None else int(replay),
        nvlinks=tuple(links),
        retired_pages_pending=None if pending is None else int(pending) == nv.NVML_FEATURE_ENABLED,
        remap_pending=None if remap is None else bool(remap[2]),
        remap_failure=None if remap is None else bool(remap[3]),
    )
