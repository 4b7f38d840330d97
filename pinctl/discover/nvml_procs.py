"""Which processes use which GPU, from NVML (for ``pin --auto`` and ``check --gpu-procs``).

pynvml is imported lazily and nothing here raises: a node without the driver,
without pynvml, or a query NVML does not support gives None plus a note.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GpuProcesses:
    """The compute and graphics processes on one GPU; ``pci_bus_id`` in sysfs form (0000:3b:00.0)."""

    index: int
    pci_bus_id: str | None
    pids: tuple[int, ...]


def _bus_id(raw: Any) -> str | None:
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        from pinctl.model import PciAddress

        return str(PciAddress.parse(text))
    except Exception:
        return None


def gpu_processes() -> tuple[tuple[GpuProcesses, ...] | None, str | None]:
    """(per-GPU processes, None) or (None, why NVML could not tell)."""
    try:
        import pynvml
    except ImportError:
        return None, "NVML is not available (pynvml is not installed)"
    try:
        pynvml.nvmlInit()
    except Exception as exc:
        return None, f"NVML is not available ({exc})"
    try:
        out: list[GpuProcesses] = []
        for index in range(int(pynvml.nvmlDeviceGetCount())):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            try:
                bus = _bus_id(pynvml.nvmlDeviceGetPciInfo(handle).busId)
            except Exception:
                bus = None
            pids: set[int] = set()
            for query in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
                fn = getattr(pynvml, query, None)
                if fn is None:
                    continue
                try:
                    pids.update(int(p.pid) for p in fn(handle))
                except Exception:  # NVML_ERROR_NOT_SUPPORTED on some GPUs: that query stays empty
                    continue
            out.append(GpuProcesses(index, bus, tuple(sorted(pids))))
        return tuple(out), None
    except Exception as exc:
        return None, f"NVML process query failed ({exc})"
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()
