"""How each GPU vendor's runtime is told which GPU a rank owns, and which device file it is.

A CUDA variable means nothing to ROCm or Level Zero, and an AMD unique id in
CUDA_VISIBLE_DEVICES hides every GPU from a CUDA program, so each vendor gets the
selector its own runtime documents (docs/plan.md cites them):

* NVIDIA: ``CUDA_VISIBLE_DEVICES`` = the UUID (``GPU-...``), else the index CUDA gives the
  GPU before any CUDA_VISIBLE_DEVICES: its place among the GPUs this job's process can
  open (a pod's two, not the node's eight), in PCI bus order, which is CUDA's only under
  CUDA_DEVICE_ORDER=PCI_BUS_ID; the UUID avoids the question. Device file /dev/nvidiaN.
  A MIG instance is always named by its ``MIG-...`` UUID (pinctl.plan.make).
* AMD: ``ROCR_VISIBLE_DEVICES`` (the ROCm runtime; HIP and OpenCL sit on it) = the
  unique id as ``GPU-<16 hex>``, which ROCm accepts in place of an index. Without
  one, the ROCm SMI index hwloc reported (rsmiN), else nothing: ROCm's own order is
  not PCI order (LLNL Corona's rsmi2 is the first GPU on the bus). Device file
  /dev/dri/renderDN.
* Intel: ``ZE_AFFINITY_MASK`` = the card's index among Intel GPUs in PCI order, made
  Level Zero's order by ``ZE_ENABLE_PCI_ID_DEVICE_ORDER=1``, with
  ``ZE_FLAT_DEVICE_HIERARCHY=COMPOSITE`` so the index counts cards, as the plan does,
  not tiles. Device file /dev/dri/renderDN.
"""

from __future__ import annotations

from collections.abc import Sequence

from pinctl.cpuset import decimal
from pinctl.model import Gpu, rocr_uuid

__all__ = ["device_file", "device_minor", "isolation_env", "rocr_uuid"]

Env = tuple[tuple[str, str], ...]


def device_minor(gpu: Gpu) -> int | None:
    """N of the GPU's device file (/dev/nvidiaN, /dev/dri/renderDN) when the source named it."""
    return gpu.device_minor


def device_file(vendor: str | None, minor: int | None) -> str | None:
    """The device file Slurm's gres.conf File= names for a GPU, or None when it is not known."""
    if minor is None:
        return None
    return f"/dev/nvidia{minor}" if vendor in (None, "nvidia") else f"/dev/dri/renderD{minor}"


def _rsmi_index(gpu: Gpu) -> int | None:
    for name in gpu.os_names:
        if name.startswith("rsmi") and (index := decimal(name[4:], limit=6)) is not None:
            return index
    return None


def _runtime(gpu: Gpu) -> int:
    return gpu.index if gpu.runtime_index is None else gpu.runtime_index


def isolation_env(gpu: Gpu, all_gpus: Sequence[Gpu]) -> tuple[Env, str | None]:
    """The variables that show a rank only *gpu*, and a note when they cannot be exact."""
    if gpu.vendor == "nvidia":
        # Without a UUID: the index CUDA gives it before any CUDA_VISIBLE_DEVICES (the job's GPUs, PCI order).
        return (("CUDA_VISIBLE_DEVICES", gpu.uuid or str(_runtime(gpu))),), None
    if gpu.vendor == "amd":
        uuid = rocr_uuid(gpu.uuid)
        if uuid is not None:
            return (("ROCR_VISIBLE_DEVICES", uuid),), None
        rsmi = _rsmi_index(gpu)
        if rsmi is not None and gpu.runtime_index is not None:
            rsmi = gpu.runtime_index  # ROCm's count among the GPUs this job's process can open
        if rsmi is not None:
            return (("ROCR_VISIBLE_DEVICES", str(rsmi)),), None
        return (), "--isolate-gpus sets no ROCR_VISIBLE_DEVICES: the topology gives no unique id or ROCm index"
    if gpu.vendor == "intel":
        order = sorted((g for g in all_gpus if g.vendor == "intel"), key=lambda g: g.pci.address)
        index = (
            gpu.runtime_index
            if gpu.runtime_index is not None
            else next(i for i, g in enumerate(order) if g.index == gpu.index)
        )
        return (
            ("ZE_AFFINITY_MASK", str(index)),
            ("ZE_ENABLE_PCI_ID_DEVICE_ORDER", "1"),
            ("ZE_FLAT_DEVICE_HIERARCHY", "COMPOSITE"),
        ), None
    return (), "--isolate-gpus sets no variable: the GPU vendor is unknown"
