"""The GPU visibility variables, read as each runtime documents them (pure: text in, GPUs out).

* CUDA_VISIBLE_DEVICES (CUDA C Programming Guide, "CUDA Environment Variables"): indexes
  or UUIDs (``GPU-...`` prefixes, ``MIG-...``), in the order they are listed, which is the
  order CUDA then counts; enumeration stops at the first entry that names no device.
* NVIDIA_VISIBLE_DEVICES (NVIDIA Container Toolkit): host indexes, UUIDs or ``all``;
  ``none``, ``void`` or empty give the container no GPU. It is read by the container
  runtime, so inside the container its indexes are the host's (PCI order).
* ROCR_VISIBLE_DEVICES (ROCm): indexes or ``GPU-<unique id>``; HIP_VISIBLE_DEVICES then
  counts among what ROCR left.
* ZE_AFFINITY_MASK (Level Zero): ``N`` or ``N.M`` (tile M of card N); cards counted in
  PCI order here (pinctl sets ZE_ENABLE_PCI_ID_DEVICE_ORDER=1 where it writes one).
* SLURM_STEP_GPUS / SLURM_JOB_GPUS: the gres indexes of the allocated GPUs, their places among
  the node's gres GPUs (not the N of File=/dev/nvidiaN: File=/dev/nvidia[4-7] gives 0-3).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pinctl.cpuset import decimal
from pinctl.model import Gpu

VISIBILITY_VARS = (
    "NVIDIA_VISIBLE_DEVICES",
    "CUDA_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "ZE_AFFINITY_MASK",
    "SLURM_STEP_GPUS",
    "SLURM_JOB_GPUS",
)


@dataclass(frozen=True)
class Pick:
    """One GPU a variable names, and the MIG instance when the entry named one."""

    gpu: Gpu
    mig: str | None = None


def entries(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _by_uuid(base: Sequence[Gpu], token: str, uuid_of: Callable[[Gpu], str | None]) -> Pick | None:
    """The GPU whose UUID starts with *token* (CUDA accepts unique prefixes), or owns MIG instance *token*."""
    want = token.lower()
    if want.startswith("mig-"):
        for gpu in base:
            for mig in gpu.mig:
                if mig.uuid.lower() == want:
                    return Pick(gpu, mig.uuid)
        return None
    hits = [g for g in base if (uuid_of(g) or "").lower().startswith(want)]
    return Pick(hits[0]) if len(hits) == 1 else None


def pick(
    base: Sequence[Gpu],
    text: str,
    *,
    uuid_of: Callable[[Gpu], str | None] = lambda g: g.uuid,
    tiles: bool = False,
) -> list[Pick]:
    """The GPUs of *base* that a selector's *text* names, in its order; stops at the first entry
    that names none (CUDA's rule, and the safe reading for the others). *tiles*: ``N.M`` names card N."""
    out: list[Pick] = []
    for token in entries(text):
        head = token.split(".", 1)[0] if tiles else token
        found: Pick | None
        if head.isdigit():  # '²' too: then decimal() says None and it names nothing
            number = decimal(head, limit=6)
            found = Pick(base[number]) if number is not None and number < len(base) else None
        else:
            found = _by_uuid(base, token, uuid_of)
        if found is None:
            break
        if all(p.gpu.index != found.gpu.index for p in out) or found.mig is not None:
            out.append(found)
    return out


def container_picks(nvidia: Sequence[Gpu], text: str) -> list[Pick] | None:
    """NVIDIA_VISIBLE_DEVICES against the host's NVIDIA GPUs in PCI order; None = all of them."""
    value = text.strip().lower()
    if value == "all":
        return None
    if value in ("", "none", "void"):
        return []
    out: list[Pick] = []
    for token in entries(text):
        if ":" in token and token.replace(":", "").isdigit():  # GPU:MIG, both indexes
            token = token.split(":", 1)[0]
        if token.isdigit():
            if (number := decimal(token, limit=6)) is not None and number < len(nvidia):
                out.append(Pick(nvidia[number]))
        else:
            found = _by_uuid(nvidia, token, lambda g: g.uuid)
            if found is not None:
                out.append(found)
    return out


def slurm_indexes(text: str) -> frozenset[int] | None:
    """SLURM_STEP_GPUS / SLURM_JOB_GPUS as gres indexes; None when it is not a list of numbers."""
    items = entries(text)
    numbers = [decimal(t, limit=9) for t in items]
    if not numbers or None in numbers:
        return None
    return frozenset(n for n in numbers if n is not None)
