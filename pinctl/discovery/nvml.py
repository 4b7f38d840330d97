"""The NVML source: everything pinctl asks NVML, as frozen answers (:mod:`~pinctl.discovery.nvmlfacts`).

The only module that imports pynvml (nvitop's rule), and only inside a query
(it costs ~34 ms). Three queries share one session (:func:`_session`) and one
safe call (:func:`_try`), so every query has a "not known" answer: an NVMLError,
NVMLLibraryMismatchError (an unversioned call this library lacks; not an
NVMLError) or a function this pynvml lacks leaves that field None, and a
missing library or driver gives one reason, "NVML not available: ...", at once,
with NVML's error name (LIB_RM_VERSION_MISMATCH is a sick node, not "no GPU").
A GPU NVML cannot read is an answer too (:class:`Lost`): its handle failed
(GPU_IS_LOST, UNKNOWN, NO_PERMISSION) or its first query answered GPU_IS_LOST.
Nothing here raises on NVML's account. Only frozen values leave: no handle escapes.

- :func:`query_nvml`: GPU identity, NVLink peers, CPU/memory affinity and PCIe link,
  for discovery; :func:`pinctl.discovery.merge.apply_nvml` joins them on PCI
  addresses, never on indexes: NVML's order and CUDA_VISIBLE_DEVICES's need not match.
- :func:`query_health`: persistence mode, lost GPUs, page retirement / row
  remapping, PCIe replays and link, NVLink states, and the running condition
  (:class:`~pinctl.discovery.gpufacts.GpuCondition`: clock events, ECC, NVLink
  errors, fabric state, firmware) for ``pinctl doctor``.
- :func:`gpu_processes`: the PIDs on each GPU (``_v3``, else ``_v2``; per MIG instance when
  the GPU's list is refused), or why NVML would not list them, for ``pin --auto``,
  ``check --gpu-procs`` and the doctor's ``procs``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

from pinctl.discovery.gpufacts import FabricInfo, GpuCondition, NvLinkErrors
from pinctl.discovery.nvmlfacts import (
    LOST_ERRORS,
    GpuHealth,
    GpuProcesses,
    Lost,
    NvmlGpu,
    NvmlHealth,
    NvmlResult,
    NvmlUnavailable,
    PcieLink,
    as_int,
    bits,
    bus_id,
    one_node,
    text,
    unavailable,
    words_for,
)
from pinctl.model import MigDevice, NvLink, PciAddress

__all__ = ["GpuHealth", "GpuProcesses", "Lost", "NvmlGpu", "NvmlHealth", "NvmlResult", "NvmlUnavailable",
           "gpu_processes", "query_health", "query_nvml", "unavailable"]  # fmt: skip

T = TypeVar("T")  # no PEP 695 generics: Python 3.10 imports this module

_TOPOLOGY_UNKNOWN = "; GPU names/UUIDs/NVLink unknown"


# --- the one session, the one safe call ------------------------------------------------------------


def _code(nvml: Any, err: Exception) -> str | None:
    """NVML's name for *err* (``GPU_IS_LOST``), from pynvml's own NVML_ERROR_* constants."""
    value = getattr(err, "value", None)
    names = [n for n in dir(nvml) if n.startswith("NVML_ERROR_") and getattr(nvml, n) == value]
    return names[0][len("NVML_ERROR_") :] if value is not None and names else None


def _why(nvml: Any, err: Exception) -> str:
    return words_for(_code(nvml, err)) or str(err) or type(err).__name__


def _failures(nvml: Any) -> tuple[type[Exception], ...]:
    """What a pynvml call may raise on NVML's account: NVMLError, and NVMLLibraryMismatchError
    (an unversioned call whose newest version this library lacks; not an NVMLError subclass)."""
    extra = getattr(nvml, "NVMLLibraryMismatchError", None)
    return (nvml.NVMLError, extra) if isinstance(extra, type) else (nvml.NVMLError,)


def _session(query: Callable[[Any, int], T]) -> T | NvmlUnavailable:
    """``query(pynvml, gpu_count)`` between nvmlInit and nvmlShutdown, or why it could not run.

    An NVMLError the query lets through ends it with a reason too: callers never see one.
    """
    try:
        import pynvml as nvml
    except ImportError:
        return NvmlUnavailable(unavailable("the nvidia-ml-py package is not installed"))
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as e:
        return NvmlUnavailable(unavailable(_why(nvml, e)), _code(nvml, e))
    except OSError as e:  # a broken library file that dlopen rejects
        return NvmlUnavailable(unavailable(str(e)))
    try:
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except nvml.NVMLError as e:
            return NvmlUnavailable(unavailable(f"cannot count GPUs ({_why(nvml, e)})"), _code(nvml, e))
        try:
            return query(nvml, count)
        except _failures(nvml) as e:
            return NvmlUnavailable(f"NVML query failed: {_why(nvml, e)}", _code(nvml, e))
    finally:
        with contextlib.suppress(nvml.NVMLError):
            nvml.nvmlShutdown()


def _try(nvml: Any, name: str, *args: Any) -> tuple[Any, str | None]:
    """``(pynvml.<name>(*args), None)``, or ``(None, NVML's error name)``; FUNCTION_NOT_FOUND when
    this pynvml or this library lacks the function."""
    fn = getattr(nvml, name, None)
    if fn is None:
        return None, "FUNCTION_NOT_FOUND"
    try:
        return fn(*args), None
    except nvml.NVMLError as e:
        return None, _code(nvml, e) or "UNKNOWN"
    except _failures(nvml):  # NVMLLibraryMismatchError: the unversioned call's newest version is absent
        return None, "FUNCTION_NOT_FOUND"


def _call(nvml: Any, name: str, *args: Any) -> Any:
    """``pynvml.<name>(*args)``, or None when it fails or this pynvml has no such function."""
    return _try(nvml, name, *args)[0]


def _open(nvml: Any, index: int) -> tuple[Any, Any, Lost | None]:
    """``(handle, PCI info, None)``, or ``(None, None, how)`` for a GPU that is lost or not ours to read.
    A handle whose first query answers GPU_IS_LOST is lost too: nothing it says can be believed."""
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
    except nvml.NVMLError as e:
        return None, None, Lost(_code(nvml, e) or "UNKNOWN", "handle", f"nvmlDeviceGetHandleByIndex({index})")
    info, code = _try(nvml, "nvmlDeviceGetPciInfo", handle)
    if code in LOST_ERRORS and code != "NO_PERMISSION":
        return None, None, Lost(code or "UNKNOWN", "queries", f"nvmlDeviceGetPciInfo(GPU {index})")
    return handle, info, None


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
    result = _session(_collect_topology)
    if isinstance(result, NvmlUnavailable):
        return None, result.reason + _TOPOLOGY_UNKNOWN
    return result, None


def _collect_topology(nvml: Any, count: int) -> NvmlResult:
    gpus = []
    for i in range(count):
        handle, info, lost = _open(nvml, i)
        if handle is None:  # GPU lost / no permission: keep the index, and how, so it can be named
            gpus.append(NvmlGpu(index=i, pci=None, lost=lost))
            continue
        total = getattr(_call(nvml, "nvmlDeviceGetMemoryInfo", handle), "total", None)
        scope = getattr(nvml, "NVML_AFFINITY_SCOPE_NODE", 0)
        gpus.append(
            NvmlGpu(
                index=i,
                pci=bus_id(info),
                uuid=text(_call(nvml, "nvmlDeviceGetUUID", handle)),
                name=text(_call(nvml, "nvmlDeviceGetName", handle)),
                memory_bytes=int(total) if total is not None else None,
                nvlinks=_nvlinks(nvml, handle),
                minor=as_int(_call(nvml, "nvmlDeviceGetMinorNumber", handle)),
                mig_mode=_mig_mode(nvml, handle),
                mig=_mig_devices(nvml, handle),
                cpus=bits(_call(nvml, "nvmlDeviceGetCpuAffinity", handle, _CPU_WORDS)),
                numa_node=one_node(_call(nvml, "nvmlDeviceGetMemoryAffinity", handle, _NODE_WORDS, scope)),
                pcie=_pcie(nvml, handle),
                numa_node_id=as_int(_call(nvml, "nvmlDeviceGetNumaNodeId", handle)),
            )
        )
    return NvmlResult(driver_version=text(_call(nvml, "nvmlSystemGetDriverVersion")), gpus=tuple(gpus))


# Words of 64 bits asked for: 4096 CPUs and 1024 NUMA nodes (Linux's MAX_NUMNODES at most).
_CPU_WORDS = 64
_NODE_WORDS = 16


def _pcie(nvml: Any, handle: Any) -> PcieLink | None:
    found = PcieLink(
        gen=as_int(_call(nvml, "nvmlDeviceGetCurrPcieLinkGeneration", handle)),
        width=as_int(_call(nvml, "nvmlDeviceGetCurrPcieLinkWidth", handle)),
        max_gen=as_int(_call(nvml, "nvmlDeviceGetMaxPcieLinkGeneration", handle)),
        max_width=as_int(_call(nvml, "nvmlDeviceGetMaxPcieLinkWidth", handle)),
    )
    return None if found == PcieLink() else found


def _mig_mode(nvml: Any, handle: Any) -> bool | None:
    """Whether MIG mode is on now (the current mode, not a pending one); None when the GPU cannot say."""
    modes = _call(nvml, "nvmlDeviceGetMigMode", handle)  # (current, pending)
    if modes is None:
        return None
    return int(modes[0]) == int(getattr(nvml, "NVML_DEVICE_MIG_ENABLE", 1))


def _mig_handles(nvml: Any, handle: Any) -> list[tuple[Any, str]]:
    """``(handle, UUID)`` of each MIG instance that exists now (empty slots answer NOT_FOUND)."""
    if not _mig_mode(nvml, handle):
        return []
    found = (
        _call(nvml, "nvmlDeviceGetMigDeviceHandleByIndex", handle, slot)
        for slot in range(as_int(_call(nvml, "nvmlDeviceGetMaxMigDeviceCount", handle)) or 0)
    )
    return [(mig, uuid) for mig in found if mig is not None and (uuid := text(_call(nvml, "nvmlDeviceGetUUID", mig)))]


def _mig_devices(nvml: Any, handle: Any) -> tuple[MigDevice, ...]:
    out = []
    for mig, uuid in _mig_handles(nvml, handle):
        total = getattr(_call(nvml, "nvmlDeviceGetMemoryInfo", mig), "total", None)
        out.append(MigDevice(
            uuid=uuid, name=text(_call(nvml, "nvmlDeviceGetName", mig)),
            memory_bytes=as_int(total), gpu_instance=as_int(_call(nvml, "nvmlDeviceGetGpuInstanceId", mig)),
            compute_instance=as_int(_call(nvml, "nvmlDeviceGetComputeInstanceId", mig)),
        ))  # fmt: skip
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
        peer = bus_id(_call(nvml, "nvmlDeviceGetNvLinkRemotePciInfo", handle, link)) if active else None
        if peer is not None:
            peers[peer] = peers.get(peer, 0) + 1
    return tuple(NvLink(peer=p, links=n) for p, n in sorted(peers.items()))


# --- health, for doctor ---------------------------------------------------------------------


def query_health() -> NvmlHealth | NvmlUnavailable:
    """Ask NVML about every GPU; never raises."""
    return _session(_collect_health)


def _collect_health(nvml: Any, count: int) -> NvmlHealth:
    gpus = tuple(_gpu_health(nvml, i) for i in range(count))
    return NvmlHealth(driver_version=text(_call(nvml, "nvmlSystemGetDriverVersion")), gpus=gpus)


def _gpu_health(nvml: Any, index: int) -> GpuHealth:
    handle, info, lost = _open(nvml, index)
    if handle is None:
        assert lost is not None
        return GpuHealth(index=index, lost=True, error=lost.describe(), how=lost)
    links = _link_states(nvml, handle)
    replay = _call(nvml, "nvmlDeviceGetPcieReplayCounter", handle)
    remap = _call(nvml, "nvmlDeviceGetRemappedRows", handle)  # (corrected, uncorrected, pending, failure)
    return GpuHealth(
        index=index,
        pci_bus_id=bus_id(info),
        name=text(_call(nvml, "nvmlDeviceGetName", handle)),
        uuid=text(_call(nvml, "nvmlDeviceGetUUID", handle)),
        persistence_mode=_enabled(nvml, _call(nvml, "nvmlDeviceGetPersistenceMode", handle)),
        pcie_replay_counter=None if replay is None else int(replay),
        nvlinks=tuple(links),
        retired_pages_pending=_enabled(nvml, _call(nvml, "nvmlDeviceGetRetiredPagesPendingStatus", handle)),
        remap_pending=None if remap is None else bool(remap[2]),
        remap_failure=None if remap is None else bool(remap[3]),
        pcie=_pcie(nvml, handle),
        minor=as_int(_call(nvml, "nvmlDeviceGetMinorNumber", handle)),
        condition=_condition(nvml, handle, links),
    )


def _condition(nvml: Any, handle: Any, links: list[tuple[int, bool]]) -> GpuCondition:
    """Clock events, uncorrectable ECC, NVLink error counters, fabric state, firmware versions."""
    events = _call(nvml, "nvmlDeviceGetCurrentClocksEventReasons", handle)  # R535+; the older name below
    if events is None:
        events = _call(nvml, "nvmlDeviceGetCurrentClocksThrottleReasons", handle)
    unc = getattr(nvml, "NVML_MEMORY_ERROR_TYPE_UNCORRECTED", 1)
    ecc = [as_int(_call(nvml, "nvmlDeviceGetTotalEccErrors", handle, unc, getattr(nvml, c, i)))
           for i, c in enumerate(("NVML_VOLATILE_ECC", "NVML_AGGREGATE_ECC"))]  # fmt: skip
    return GpuCondition(
        clock_events=as_int(events), ecc_uncorrected_volatile=ecc[0], ecc_uncorrected_aggregate=ecc[1],
        ecc_enabled=_enabled(nvml, (_call(nvml, "nvmlDeviceGetEccMode", handle) or [None])[0]),
        nvlink_errors=tuple(NvLinkErrors(link, active, tuple(
            as_int(_call(nvml, "nvmlDeviceGetNvLinkErrorCounter", handle, link, counter)) for counter in range(4)))
            for link, active in links),
        fabric=_fabric(nvml, handle),
        vbios=text(_call(nvml, "nvmlDeviceGetVbiosVersion", handle)),
        gsp_firmware=text(_call(nvml, "nvmlDeviceGetGspFirmwareVersion", handle)),
    )  # fmt: skip


def _fabric(nvml: Any, handle: Any) -> FabricInfo | None:
    """nvmlDeviceGetGpuFabricInfoV (v2 struct), else the older unversioned call; None when unsupported.
    nvml.h types ``state`` as an unsigned char that pynvml reads as a c_uint: the low byte is it."""
    import ctypes

    for fn, struct in (
        ("nvmlDeviceGetGpuFabricInfoV", "c_nvmlGpuFabricInfoV_t"),
        ("nvmlDeviceGetGpuFabricInfo", "c_nvmlGpuFabricInfo_t"),
    ):
        cls = getattr(nvml, struct, None)
        info = None if cls is None else cls()
        if info is not None and _call(nvml, fn, handle, ctypes.byref(info)) is not None:
            mask = getattr(info, "healthMask", None)
            why = None if int(info.status) == 0 else text(_call(nvml, "nvmlErrorString", int(info.status)))
            return FabricInfo(int(info.state) & 0xFF, int(info.status), None if mask is None else int(mask), why)
    return None


# --- processes, for pin --auto / check --gpu-procs / doctor ----------------------------------

# Newest first: _v3 came with R510 (CUDA 11.6), _v2 with R450; pynvml's unversioned call (= _v3) last.
_PROCESS_QUERIES = tuple(
    tuple(f"nvmlDeviceGet{kind}RunningProcesses{v}" for v in ("_v3", "_v2", "")) for kind in ("Compute", "Graphics")
)


def gpu_processes() -> tuple[tuple[GpuProcesses, ...] | None, str | None]:
    """(per-GPU processes, None) or (None, why NVML could not tell). A GPU whose list NVML will not
    give (NO_PERMISSION, lost, no process query) carries ``error``; NOT_SUPPORTED adds no PIDs."""
    result = _session(_collect_processes)
    if isinstance(result, NvmlUnavailable):
        return None, result.reason
    return result, None


def _collect_processes(nvml: Any, count: int) -> tuple[GpuProcesses, ...]:
    out = []
    for index in range(count):
        handle, info, lost = _open(nvml, index)
        if handle is None:
            assert lost is not None
            out.append(GpuProcesses(index, None, (), f"GPU {index}: {lost.describe()}"))
            continue
        bus = bus_id(info)
        pids, errors = _gpu_pids(nvml, handle)
        if errors:  # in MIG mode only root gets the GPU's list; each MIG instance answers for itself
            per_mig = [_gpu_pids(nvml, mig) for mig, _ in _mig_handles(nvml, handle)]
            if per_mig and not any(e for _, e in per_mig):
                pids, errors = set().union(*(p for p, _ in per_mig)), []
        error = f"GPU {index}: {'; '.join(errors)}" if errors else None
        out.append(GpuProcesses(index, None if bus is None else str(bus), tuple(sorted(pids)), error))
    return tuple(out)


def _gpu_pids(nvml: Any, handle: Any) -> tuple[set[int], list[str]]:
    """Compute and graphics PIDs on *handle*, and what could not be listed."""
    pids: set[int] = set()
    errors = []
    for versions in _PROCESS_QUERIES:
        found, error = _processes(nvml, handle, versions)
        pids |= found
        errors += [error] if error else []
    return pids, errors


def _processes(nvml: Any, handle: Any, versions: tuple[str, ...]) -> tuple[set[int], str | None]:
    """The PIDs one kind of process query gives, trying each version this driver may have.

    NOT_SUPPORTED is "none of this kind"; a refusal or an absent query is said, never "no process".
    """
    for name in versions:
        procs, code = _try(nvml, name, handle)
        if code is None:
            return {int(p.pid) for p in procs or ()}, None
        if code == "NOT_SUPPORTED":
            return set(), None
        if code != "FUNCTION_NOT_FOUND":
            return set(), f"{name} -> {code}"
    return set(), f"this driver has neither {versions[0]} nor {versions[1]} (older than R450)"
