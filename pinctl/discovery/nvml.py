"""The NVML source: everything pinctl asks NVML, as frozen answers.

The only module that imports pynvml (nvitop's rule), and only inside a query
(it costs ~34 ms). Three queries share one session (:func:`_session`: import,
nvmlInit, count, nvmlShutdown) and one safe call (:func:`_call`), so every
query has a "not known" answer: an NVMLError (not supported, no permission,
GPU lost) or a function this pynvml lacks leaves that field None, and a
missing library or driver gives one reason, "NVML not available: ...", at once
(nvmlInit fails in a few ms when libnvidia-ml.so.1 is absent). Nothing here
raises on NVML's account. Only frozen values leave: no handle escapes.

- :func:`query_nvml`: GPU identity and NVLink peers, for discovery;
  :func:`pinctl.discovery.merge.apply_nvml` joins them on PCI addresses, never on
  indexes: NVML's order and CUDA_VISIBLE_DEVICES's need not match the model's.
- :func:`query_health`: persistence mode, lost GPUs, page retirement / row
  remapping, PCIe replays, NVLink states, and the running condition
  (:class:`~pinctl.discovery.gpufacts.GpuCondition`: clock events, ECC, NVLink
  errors, fabric state, firmware) for ``pinctl doctor``.
- :func:`gpu_processes`: the PIDs on each GPU, for ``pin --auto``,
  ``check --gpu-procs`` and the doctor's ``procs`` check.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pinctl.discovery.gpufacts import FabricInfo, GpuCondition, NvLinkErrors
from pinctl.model import MigDevice, NvLink, PciAddress

T = TypeVar("T")  # no PEP 695 generics: Python 3.10 imports this module

_TOPOLOGY_UNKNOWN = "; GPU names/UUIDs/NVLink unknown"


# --- frozen answers -------------------------------------------------------------------------


@dataclass(frozen=True)
class NvmlGpu:
    """One GPU as NVML reports it; None = NVML could not say. ``nvlinks`` None = unknown."""

    index: int
    pci: PciAddress | None
    uuid: str | None = None
    name: str | None = None
    memory_bytes: int | None = None
    nvlinks: tuple[NvLink, ...] | None = None
    minor: int | None = None
    mig_mode: bool | None = None
    mig: tuple[MigDevice, ...] = ()
    numa_node_id: int | None = None  # its own memory's NUMA node (Grace: HBM as a CPU-less node)


@dataclass(frozen=True)
class NvmlResult:
    driver_version: str | None
    gpus: tuple[NvmlGpu, ...]


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
    """Why there is no health data (no library, no driver, init failed)."""

    reason: str


@dataclass(frozen=True)
class GpuProcesses:
    """The compute and graphics processes on one GPU; ``pci_bus_id`` in sysfs form (0000:3b:00.0)."""

    index: int
    pci_bus_id: str | None
    pids: tuple[int, ...]


# --- the one session, the one safe call, the one bus-id parser ------------------------------


def unavailable(why: str) -> str:
    """The one wording of "NVML cannot be used", shared by every query and its callers."""
    return f"NVML not available: {why}"


def _why(nvml: Any, err: Exception) -> str:
    value = getattr(err, "value", None)
    if value == getattr(nvml, "NVML_ERROR_LIBRARY_NOT_FOUND", object()):
        return "libnvidia-ml.so.1 not found"
    if value == getattr(nvml, "NVML_ERROR_DRIVER_NOT_LOADED", object()):
        return "NVIDIA driver not loaded"
    if value == getattr(nvml, "NVML_ERROR_NO_PERMISSION", object()):
        return "no permission to use NVML"
    return str(err) or type(err).__name__


def _session(query: Callable[[Any, int], T]) -> tuple[T | None, str | None]:
    """``query(pynvml, gpu_count)`` between nvmlInit and nvmlShutdown: ``(answer, None)`` or ``(None, reason)``.

    An NVMLError the query lets through ends it with a reason too: callers never see one.
    """
    try:
        import pynvml as nvml
    except ImportError:
        return None, unavailable("the nvidia-ml-py package is not installed")
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as e:
        return None, unavailable(_why(nvml, e))
    except OSError as e:  # a broken library file that dlopen rejects
        return None, unavailable(str(e))
    try:
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except nvml.NVMLError as e:
            return None, unavailable(f"cannot count GPUs ({_why(nvml, e)})")
        try:
            return query(nvml, count), None
        except nvml.NVMLError as e:
            return None, f"NVML query failed: {_why(nvml, e)}"
    finally:
        with contextlib.suppress(nvml.NVMLError):
            nvml.nvmlShutdown()


def _call(nvml: Any, name: str, *args: Any) -> Any:
    """``pynvml.<name>(*args)``, or None when it fails or this pynvml has no such function."""
    fn = getattr(nvml, name, None)
    if fn is None:
        return None
    try:
        return fn(*args)
    except nvml.NVMLError:
        return None


def _handle(nvml: Any, index: int) -> tuple[Any, str | None]:
    """``(handle, None)``, or ``(None, NVML's words)`` for a GPU that is lost or not ours to read."""
    try:
        return nvml.nvmlDeviceGetHandleByIndex(index), None
    except nvml.NVMLError as e:
        return None, _why(nvml, e)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    return str(value).strip("\x00 ") or None


def _bus_id(pci_info: Any) -> PciAddress | None:
    """``00000000:3B:00.0`` (NVML's form) -> PciAddress; None when absent or malformed."""
    text = _text(getattr(pci_info, "busId", None))
    if text is None:
        return None
    return PciAddress.parse_or_none(text)


def _enabled(nvml: Any, value: Any) -> bool | None:
    return None if value is None else int(value) == int(getattr(nvml, "NVML_FEATURE_ENABLED", 1))


def _link_states(nvml: Any, handle: Any) -> list[tuple[int, bool]]:
    """``(link, active)`` for each link that answers; links past the board's count do not."""
    out = []
    for link in range(int(getattr(nvml, "NVML_NVLINK_MAX_LINKS", 18))):
        state = _enabled(nvml, _call(nvml, "nvmlDeviceGetNvLinkState", handle, link))
        if state is not None:
            out.append((link, state))
    return out


# --- topology facts -------------------------------------------------------------------------


def query_nvml() -> tuple[NvmlResult | None, str | None]:
    """``(result, None)``, or ``(None, reason)`` when NVML cannot be used at all.

    The reason reads like "NVML not available: libnvidia-ml.so.1 not found; GPU
    names/UUIDs/NVLink unknown", ready to be a Node note.
    """
    result, reason = _session(_collect_topology)
    return result, None if reason is None else reason + _TOPOLOGY_UNKNOWN


def _collect_topology(nvml: Any, count: int) -> NvmlResult:
    gpus = []
    for i in range(count):
        handle, _ = _handle(nvml, i)
        if handle is None:  # GPU lost / no permission: keep the index so the gap is visible
            gpus.append(NvmlGpu(index=i, pci=None))
            continue
        total = getattr(_call(nvml, "nvmlDeviceGetMemoryInfo", handle), "total", None)
        gpus.append(
            NvmlGpu(
                index=i,
                pci=_bus_id(_call(nvml, "nvmlDeviceGetPciInfo", handle)),
                uuid=_text(_call(nvml, "nvmlDeviceGetUUID", handle)),
                name=_text(_call(nvml, "nvmlDeviceGetName", handle)),
                memory_bytes=int(total) if total is not None else None,
                nvlinks=_nvlinks(nvml, handle),
                minor=_int(_call(nvml, "nvmlDeviceGetMinorNumber", handle)),
                mig_mode=_mig_mode(nvml, handle),
                mig=_mig_devices(nvml, handle),
                numa_node_id=_int(_call(nvml, "nvmlDeviceGetNumaNodeId", handle)),
            )
        )
    return NvmlResult(driver_version=_text(_call(nvml, "nvmlSystemGetDriverVersion")), gpus=tuple(gpus))


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _mig_mode(nvml: Any, handle: Any) -> bool | None:
    """Whether MIG mode is on now (the current mode, not a pending one); None when the GPU cannot say."""
    modes = _call(nvml, "nvmlDeviceGetMigMode", handle)  # (current, pending)
    if modes is None:
        return None
    return int(modes[0]) == int(getattr(nvml, "NVML_DEVICE_MIG_ENABLE", 1))


def _mig_devices(nvml: Any, handle: Any) -> tuple[MigDevice, ...]:
    """The MIG instances that exist now (slots without one answer NOT_FOUND and are skipped)."""
    if not _mig_mode(nvml, handle):
        return ()
    out = []
    for slot in range(_int(_call(nvml, "nvmlDeviceGetMaxMigDeviceCount", handle)) or 0):
        mig = _call(nvml, "nvmlDeviceGetMigDeviceHandleByIndex", handle, slot)
        uuid = None if mig is None else _text(_call(nvml, "nvmlDeviceGetUUID", mig))
        if uuid is None:
            continue
        total = getattr(_call(nvml, "nvmlDeviceGetMemoryInfo", mig), "total", None)
        out.append(
            MigDevice(
                uuid=uuid,
                name=_text(_call(nvml, "nvmlDeviceGetName", mig)),
                memory_bytes=_int(total),
                gpu_instance=_int(_call(nvml, "nvmlDeviceGetGpuInstanceId", mig)),
                compute_instance=_int(_call(nvml, "nvmlDeviceGetComputeInstanceId", mig)),
            )
        )
    return tuple(out)


def _nvlinks(nvml: Any, handle: Any) -> tuple[NvLink, ...] | None:
    """Active links counted per peer PCI address (a GPU, or an NVSwitch on HGX boards).

    Boards without NVLink answer NOT_SUPPORTED for every link: if no link answers
    at all the facts are unknown (None), not "none".
    """
    states = _link_states(nvml, handle)
    if not states:
        return None
    peers: dict[PciAddress, int] = {}
    for link, active in states:
        peer = _bus_id(_call(nvml, "nvmlDeviceGetNvLinkRemotePciInfo", handle, link)) if active else None
        if peer is not None:
            peers[peer] = peers.get(peer, 0) + 1
    return tuple(NvLink(peer=p, links=n) for p, n in sorted(peers.items()))


# --- health, for doctor ---------------------------------------------------------------------


def query_health() -> NvmlHealth | NvmlUnavailable:
    """Ask NVML about every GPU; never raises."""
    result, reason = _session(_collect_health)
    return result if result is not None else NvmlUnavailable(reason or unavailable("no answer"))


def _collect_health(nvml: Any, count: int) -> NvmlHealth:
    gpus = tuple(_gpu_health(nvml, i) for i in range(count))
    return NvmlHealth(driver_version=_text(_call(nvml, "nvmlSystemGetDriverVersion")), gpus=gpus)


def _gpu_health(nvml: Any, index: int) -> GpuHealth:
    handle, error = _handle(nvml, index)
    if handle is None:
        return GpuHealth(index=index, lost=True, error=error)
    replay = _call(nvml, "nvmlDeviceGetPcieReplayCounter", handle)
    remap = _call(nvml, "nvmlDeviceGetRemappedRows", handle)  # (corrected, uncorrected, pending, failure)
    links = _link_states(nvml, handle)
    return GpuHealth(
        index=index,
        pci_bus_id=_bus_id(_call(nvml, "nvmlDeviceGetPciInfo", handle)),
        name=_text(_call(nvml, "nvmlDeviceGetName", handle)),
        uuid=_text(_call(nvml, "nvmlDeviceGetUUID", handle)),
        persistence_mode=_enabled(nvml, _call(nvml, "nvmlDeviceGetPersistenceMode", handle)),
        pcie_replay_counter=None if replay is None else int(replay),
        nvlinks=tuple(links),
        retired_pages_pending=_enabled(nvml, _call(nvml, "nvmlDeviceGetRetiredPagesPendingStatus", handle)),
        remap_pending=None if remap is None else bool(remap[2]),
        remap_failure=None if remap is None else bool(remap[3]),
        condition=_condition(nvml, handle, links),
    )


def _condition(nvml: Any, handle: Any, links: list[tuple[int, bool]]) -> GpuCondition:
    """Clock events, uncorrectable ECC, NVLink error counters, fabric state, firmware versions."""
    events = _call(nvml, "nvmlDeviceGetCurrentClocksEventReasons", handle)  # R535+; the older name below
    if events is None:
        events = _call(nvml, "nvmlDeviceGetCurrentClocksThrottleReasons", handle)
    unc = getattr(nvml, "NVML_MEMORY_ERROR_TYPE_UNCORRECTED", 1)
    ecc = [
        _int(_call(nvml, "nvmlDeviceGetTotalEccErrors", handle, unc, getattr(nvml, c, i)))
        for i, c in enumerate(("NVML_VOLATILE_ECC", "NVML_AGGREGATE_ECC"))
    ]
    return GpuCondition(
        clock_events=_int(events), ecc_uncorrected_volatile=ecc[0], ecc_uncorrected_aggregate=ecc[1],
        nvlink_errors=tuple(NvLinkErrors(link, active, tuple(
            _int(_call(nvml, "nvmlDeviceGetNvLinkErrorCounter", handle, link, counter)) for counter in range(4)))
            for link, active in links),
        fabric=_fabric(nvml, handle),
        vbios=_text(_call(nvml, "nvmlDeviceGetVbiosVersion", handle)),
        gsp_firmware=_text(_call(nvml, "nvmlDeviceGetGspFirmwareVersion", handle)),
    )  # fmt: skip


def _fabric(nvml: Any, handle: Any) -> FabricInfo | None:
    """nvmlDeviceGetGpuFabricInfoV (v2 struct), else the older unversioned call; None when unsupported.

    nvml.h types ``state`` as an unsigned char that pynvml reads as a c_uint: the low byte is it.
    """
    import ctypes

    for fn, struct in (
        ("nvmlDeviceGetGpuFabricInfoV", "c_nvmlGpuFabricInfoV_t"),
        ("nvmlDeviceGetGpuFabricInfo", "c_nvmlGpuFabricInfo_t"),
    ):
        cls = getattr(nvml, struct, None)
        info = None if cls is None else cls()
        if info is not None and _call(nvml, fn, handle, ctypes.byref(info)) is not None:
            mask = getattr(info, "healthMask", None)
            why = None if int(info.status) == 0 else _text(_call(nvml, "nvmlErrorString", int(info.status)))
            return FabricInfo(int(info.state) & 0xFF, int(info.status), None if mask is None else int(mask), why)
    return None


# --- processes, for pin --auto / check --gpu-procs / doctor ----------------------------------

_PROCESS_QUERIES = ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses")


def gpu_processes() -> tuple[tuple[GpuProcesses, ...] | None, str | None]:
    """(per-GPU processes, None) or (None, why NVML could not tell).

    A query a GPU does not support (NOT_SUPPORTED, or absent from this pynvml)
    adds no PIDs; a lost GPU is listed with no address and no PIDs.
    """
    return _session(_collect_processes)


def _collect_processes(nvml: Any, count: int) -> tuple[GpuProcesses, ...]:
    out = []
    for index in range(count):
        handle, _ = _handle(nvml, index)
        if handle is None:
            out.append(GpuProcesses(index, None, ()))
            continue
        bus = _bus_id(_call(nvml, "nvmlDeviceGetPciInfo", handle))
        pids = {int(p.pid) for query in _PROCESS_QUERIES for p in _call(nvml, query, handle) or ()}
        out.append(GpuProcesses(index, None if bus is None else str(bus), tuple(sorted(pids))))
    return tuple(out)
