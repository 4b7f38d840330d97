"""GPU identity and NVLink facts from NVML, and their join onto the model.

The only topology module that imports pynvml, and only inside :func:`query_nvml`
(it costs ~34 ms). Like nvitop, every query has a "not known" answer: an NVMLError
(not supported, no permission, GPU lost) leaves that field None, and a missing
library or driver makes :func:`query_nvml` return ``(None, reason)`` at once
(nvmlInit fails in a few ms when libnvidia-ml.so.1 is absent). :func:`apply_nvml`
is pure and joins on PCI addresses, never on indexes: NVML's order and
CUDA_VISIBLE_DEVICES's need not match the model's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from pinctl.errors import UsageError
from pinctl.model import Gpu, Node, NvLink, PciAddress, PciInfo

T = TypeVar("T")


@dataclass(frozen=True)
class NvmlGpu:
    """One GPU as NVML reports it; None = NVML could not say. ``nvlinks`` None = unknown."""

    index: int
    pci: PciAddress | None
    uuid: str | None = None
    name: str | None = None
    memory_bytes: int | None = None
    nvlinks: tuple[NvLink, ...] | None = None


@dataclass(frozen=True)
class NvmlResult:
    driver_version: str | None
    gpus: tuple[NvmlGpu, ...]


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
    try:
        return PciAddress.parse(text)
    except UsageError:
        return None


def _why(nvml: Any, err: Exception) -> str:
    value = getattr(err, "value", None)
    if value == getattr(nvml, "NVML_ERROR_LIBRARY_NOT_FOUND", object()):
        return "libnvidia-ml.so.1 not found"
    if value == getattr(nvml, "NVML_ERROR_DRIVER_NOT_LOADED", object()):
        return "NVIDIA driver not loaded"
    if value == getattr(nvml, "NVML_ERROR_NO_PERMISSION", object()):
        return "no permission to use NVML"
    return str(err) or type(err).__name__


def query_nvml() -> tuple[NvmlResult | None, str | None]:
    """``(result, None)``, or ``(None, reason)`` when NVML cannot be used at all.

    The reason reads like "NVML not available: libnvidia-ml.so.1 not found; GPU
    names/UUIDs/NVLink unknown", ready to be a Node note.
    """
    try:
        import pynvml as nvml
    except ImportError:
        return None, _unavailable("the nvidia-ml-py package is not installed")
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as e:
        return None, _unavailable(_why(nvml, e))
    except OSError as e:  # a broken library file that dlopen rejects
        return None, _unavailable(str(e))
    try:
        return _collect(nvml), None
    finally:
        with contextlib.suppress(nvml.NVMLError):
            nvml.nvmlShutdown()


def _unavailable(why: str) -> str:
    return f"NVML not available: {why}; GPU names/UUIDs/NVLink unknown"


def _collect(nvml: Any) -> NvmlResult:
    def call(fn: Callable[..., T], *args: Any) -> T | None:
        try:
            return fn(*args)
        except nvml.NVMLError:
            return None

    count = call(nvml.nvmlDeviceGetCount) or 0
    gpus = []
    for i in range(count):
        handle = call(nvml.nvmlDeviceGetHandleByIndex, i)
        if handle is None:  # GPU lost / no permission: keep the index so the gap is visible
            gpus.append(NvmlGpu(index=i, pci=None))
            continue
        memory = call(nvml.nvmlDeviceGetMemoryInfo, handle)
        total = getattr(memory, "total", None)
        gpus.append(
            NvmlGpu(
                index=i,
                pci=_bus_id(call(nvml.nvmlDeviceGetPciInfo, handle)),
                uuid=_text(call(nvml.nvmlDeviceGetUUID, handle)),
                name=_text(call(nvml.nvmlDeviceGetName, handle)),
                memory_bytes=int(total) if total is not None else None,
                nvlinks=_nvlinks(nvml, call, handle),
            )
        )
    return NvmlResult(driver_version=_text(call(nvml.nvmlSystemGetDriverVersion)), gpus=tuple(gpus))


def _nvlinks(nvml: Any, call: Callable[..., Any], handle: Any) -> tuple[NvLink, ...] | None:
    """Active links counted per peer PCI address (a GPU, or an NVSwitch on HGX boards).

    Links past the board's count answer INVALID_ARGUMENT and boards without NVLink
    NOT_SUPPORTED; if no link answers at all the facts are unknown (None), not "none".
    """
    answered = False
    peers: dict[PciAddress, int] = {}
    for link in range(int(getattr(nvml, "NVML_NVLINK_MAX_LINKS", 18))):
        state = call(nvml.nvmlDeviceGetNvLinkState, handle, link)
        if state is None:
            continue
        answered = True
        if not state:
            continue
        peer = _bus_id(call(nvml.nvmlDeviceGetNvLinkRemotePciInfo, handle, link))
        if peer is not None:
            peers[peer] = peers.get(peer, 0) + 1
    if not answered:
        return None
    return tuple(NvLink(peer=p, links=n) for p, n in sorted(peers.items()))


def apply_nvml(node: Node, result: NvmlResult) -> Node:
    """Fill GPU name/UUID/memory/NVLink by PCI address; add GPUs only NVML knows (with a note).

    GPUs are re-indexed in PCI order afterwards (NVML's own order on every driver
    since PCI_BUS_ID enumeration, which the model's ``index`` promises).
    """
    by_addr = {g.pci: g for g in result.gpus if g.pci is not None}
    notes = list(node.notes)
    gpus: list[Gpu] = []
    for gpu in node.gpus:
        found = by_addr.pop(gpu.pci.address, None)
        if found is None:
            gpus.append(gpu)
            continue
        gpus.append(
            replace(
                gpu,
                vendor="nvidia",
                name=found.name or gpu.name,
                uuid=found.uuid or gpu.uuid,
                memory_bytes=found.memory_bytes if found.memory_bytes is not None else gpu.memory_bytes,
                nvlinks=found.nvlinks if found.nvlinks is not None else gpu.nvlinks,
            )
        )
    for addr, found in sorted(by_addr.items()):
        notes.append(f"GPU {addr} is known to NVML but not to the topology: added without locality")
        gpus.append(
            Gpu(
                index=0,
                pci=PciInfo(address=addr),
                vendor="nvidia",
                name=found.name,
                uuid=found.uuid,
                memory_bytes=found.memory_bytes,
                nvlinks=found.nvlinks or (),
            )
        )
    lost = [g.index for g in result.gpus if g.pci is None]
    if lost:
        notes.append(f"NVML could not read GPU(s) {', '.join(map(str, lost))} (lost or no permission)")
    ordered = sorted(gpus, key=lambda g: g.pci.address)
    return replace(node, gpus=tuple(replace(g, index=i) for i, g in enumerate(ordered)), notes=tuple(notes))
