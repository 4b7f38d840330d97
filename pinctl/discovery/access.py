"""What this job may use of the node: its GPUs, CPUs and memory nodes (pure: facts in, Node out).

Most jobs do not own the node: a Kubernetes pod or ``docker --gpus`` container is given
some GPUs as device files (NVML then lists only those, while sysfs still shows every GPU
on the bus), Slurm's --gres sets SLURM_STEP_GPUS and CUDA_VISIBLE_DEVICES, and the
cgroup limits CPUs and memory nodes. A GPU is usable only when every source that can
say agrees: NVML lists it (when NVML works), its device file is there and openable, and
each visibility variable in force keeps it (:mod:`pinctl.discovery.visible`). Unusable
GPUs stay in the Node, marked with the first reason, so ``show`` can say why; the
planner takes only the usable ones, in the order the launched process counts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from pinctl.cpuset import decimal, format_list
from pinctl.discovery.visible import Pick, container_picks, entries, pick, slurm_indexes
from pinctl.model import Gpu, MigDevice, Node, PciAddress, rocr_uuid


@dataclass(frozen=True)
class JobAccess:
    """The facts the edge gathered: the visibility variables in force, the PCI addresses NVML
    lists (None: NVML not asked or not working), the GPU device files that can be opened
    (None: /dev not seen), and the cgroup's CPUs and memory nodes (None: no cgroup says)."""

    env: tuple[tuple[str, str], ...] = ()
    nvml: frozenset[PciAddress] | None = None
    device_files: frozenset[str] | None = None
    cpus: frozenset[int] | None = None
    mems: frozenset[int] | None = None
    cgroup: str | None = None


def _rocm_key(gpu: Gpu) -> tuple[int, PciAddress]:
    """ROCm's own order: the ROCm SMI index hwloc reported (rsmiN), else PCI order."""
    for name in gpu.os_names:
        if name.startswith("rsmi") and (index := decimal(name[4:], limit=6)) is not None:
            return index, gpu.pci.address
    return 1 << 30, gpu.pci.address


Slurm = tuple[str, dict[int, str]] | None  # the variable's text, and the GPUs outside the allocation (why)


def _slurm(env: dict[str, str], gpus: Sequence[Gpu]) -> Slurm:
    """The GPUs outside the Slurm allocation. The numbers are gres indexes: a GPU's place among
    the node's gres GPUs, PCI order under AutoDetect and gres.conf's File= order otherwise (which
    the usual File=/dev/nvidia[0-7] makes PCI order too), not device numbers: Slurm 22.05 sets
    SLURM_STEP_GPUS=0,1 for File=/dev/nvidia[4-7] (tests/test_job_slurm.py)."""
    name = next((v for v in ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS") if env.get(v)), None)
    numbers = slurm_indexes(env[name]) if name else None
    if name is None or numbers is None:
        return None
    denied = {}
    for vendor in {g.vendor for g in gpus}:
        same = sorted((g for g in gpus if g.vendor == vendor), key=lambda g: g.pci.address)
        for position, gpu in enumerate(same):
            if position not in numbers:
                denied[gpu.index] = f"not in {name}={env[name]}"
    return env[name], denied


def _same_as_slurm(text: str, slurm: Slurm) -> bool:
    """Slurm without ConstrainDevices writes its global numbers into CUDA_VISIBLE_DEVICES and
    ROCR_VISIBLE_DEVICES too (with it, 0..n-1, counting what the device cgroup leaves): then the
    variable says nothing more, and the runtime still enumerates every GPU it can open."""
    return slurm is not None and entries(text) == entries(slurm[0])


def _split(gpus: list[Gpu], slurm: Slurm) -> list[Gpu]:
    return [g for g in gpus if slurm is None or g.index not in slurm[1]]


def _keep(
    base: Sequence[Gpu], picks: list[Pick], why: dict[int, str], reason: str, migs: dict[int, tuple[MigDevice, ...]]
) -> list[Gpu]:
    """Deny what *picks* leaves out of *base*; MIG entries narrow their GPU's instances. The picked, in order."""
    chosen = list(dict.fromkeys(p.gpu.index for p in picks))
    for gpu in base:
        if gpu.index not in chosen:
            why.setdefault(gpu.index, reason)
    named = {p.gpu.index: {q.mig for q in picks if q.gpu.index == p.gpu.index and q.mig} for p in picks}
    for index, uuids in named.items():
        if uuids:
            migs[index] = tuple(m for m in migs[index] if m.uuid in uuids)
    by_index = {g.index: g for g in base}
    return [by_index[i] for i in chosen]


def _nvidia(
    env: dict[str, str], gpus: Sequence[Gpu], why: dict[int, str], migs: dict[int, tuple[MigDevice, ...]], slurm: Slurm
) -> tuple[list[Gpu], list[Gpu]]:
    """(what CUDA enumerates before CUDA_VISIBLE_DEVICES, what it enumerates with it), in CUDA's order."""
    host = [g for g in gpus if g.vendor == "nvidia"]
    text = env.get("NVIDIA_VISIBLE_DEVICES")
    if text is not None:
        picks = container_picks(host, text)
        if picks is not None:
            _keep(host, picks, why, f"not in NVIDIA_VISIBLE_DEVICES={text}", migs)
    opened = [g for g in host if g.index not in why]
    base = _split(opened, slurm)
    cuda = env.get("CUDA_VISIBLE_DEVICES")
    if cuda is None:
        return base, base
    if _same_as_slurm(cuda, slurm):
        return opened, base
    return base, _keep(base, pick(base, cuda), why, f"hidden by CUDA_VISIBLE_DEVICES={cuda}", migs)


def _amd(
    env: dict[str, str], gpus: Sequence[Gpu], why: dict[int, str], migs: dict[int, tuple[MigDevice, ...]], slurm: Slurm
) -> tuple[list[Gpu], list[Gpu]]:
    opened = sorted((g for g in gpus if g.vendor == "amd" and g.index not in why), key=_rocm_key)
    base = visible = _split(opened, slurm)
    for name in ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES"):
        text = env.get(name)
        if text is None:
            continue
        if _same_as_slurm(text, slurm):
            base = opened if name == "ROCR_VISIBLE_DEVICES" else base
            continue
        picks = pick(visible, text, uuid_of=lambda g: rocr_uuid(g.uuid))
        visible = _keep(visible, picks, why, f"hidden by {name}={text}", migs)
    return base, visible


def _ordered(
    env: dict[str, str], gpus: Sequence[Gpu], why: dict[int, str], migs: dict[int, tuple[MigDevice, ...]]
) -> dict[int, tuple[int, int | None]]:
    """GPU index -> (runtime index, visible index or None) for every GPU its runtime enumerates."""
    slurm = _slurm(env, gpus)
    groups = [_nvidia(env, gpus, why, migs, slurm), _amd(env, gpus, why, migs, slurm)]
    intel = _split([g for g in gpus if g.vendor == "intel" and g.index not in why], slurm)
    mask = env.get("ZE_AFFINITY_MASK")
    shown = (
        intel
        if mask is None or _same_as_slurm(mask, slurm)
        else _keep(intel, pick(intel, mask, tiles=True), why, f"hidden by ZE_AFFINITY_MASK={mask}", migs)
    )
    groups.append((intel, shown))
    other = _split([g for g in gpus if g.vendor == "other" and g.index not in why], slurm)
    groups.append((other, other))
    for index, reason in (slurm[1] if slurm else {}).items():
        why.setdefault(index, reason)
    out: dict[int, tuple[int, int | None]] = {}
    for base, visible in groups:
        seen = [g.index for g in visible if g.index not in why]
        for position, gpu in enumerate(base):
            out[gpu.index] = (position, seen.index(gpu.index) if gpu.index in seen else None)
    return out


CLOSED = "is absent or cannot be opened"


def device_file_closed(vendor: str, minor: int | None, device_files: frozenset[str] | None) -> str | None:
    """Why a GPU's device file keeps it from this job (None: the file opens, or nothing is known).
    The one wording for it, in ``show`` and in ``doctor``'s gpu checks, whoever names the minor."""
    if device_files is None or minor is None:
        return None
    name = f"nvidia{minor}" if vendor == "nvidia" else f"renderD{minor}"
    folder = "/dev" if vendor == "nvidia" else "/dev/dri"
    return None if name in device_files else f"{folder}/{name} {CLOSED}"


def apply_access(node: Node, access: JobAccess) -> Node:
    """*node* with each GPU marked usable or not (and why), counted as the process counts them,
    and its allowed CPUs and memory nodes narrowed to the cgroup's."""
    env = dict(access.env)
    why: dict[int, str] = {g.index: g.unusable for g in node.gpus if g.unusable}
    migs = {g.index: g.mig for g in node.gpus}
    for gpu in node.gpus:
        if access.nvml is not None and gpu.vendor == "nvidia" and gpu.pci.address not in access.nvml:
            why.setdefault(gpu.index, "NVML does not list it (not given to this container or job, or unreadable)")
        if (shut := device_file_closed(gpu.vendor, gpu.device_minor, access.device_files)) is not None:
            why.setdefault(gpu.index, shut)
    order = _ordered(env, node.gpus, why, migs)
    gpus = []
    for gpu in node.gpus:
        runtime, visible = order.get(gpu.index, (None, None))
        gpus.append(
            replace(
                gpu,
                unusable=why.get(gpu.index),
                mig=migs[gpu.index],
                runtime_index=runtime,
                visible_index=None if gpu.index in why else visible,
            )
        )
    notes = list(node.notes)
    usable = [g.index for g in gpus if g.usable]
    if len(usable) < len(gpus):
        if usable:
            notes.append(
                f"this job may use GPU(s) {format_list(usable)} of the node's {len(gpus)}; "
                "the others are marked with the reason"
            )
        else:
            notes.append(f"this job may use none of the node's {len(gpus)} GPUs; each is marked with the reason")
    allowed = node.allowed_cpus
    if access.cpus is not None and node.allowed_cpus & access.cpus and not node.allowed_cpus <= access.cpus:
        allowed = node.allowed_cpus & access.cpus
        notes.append(f"CPUs limited to {format_list(allowed)} by the cgroup ({access.cgroup})")
    mems = None
    if access.mems is not None:
        known = {n.os_index for n in node.numa_nodes}
        mems = frozenset(access.mems & known) if access.mems & known else None
        if mems is not None and mems != known:
            notes.append(f"memory nodes limited to {format_list(mems)} by the cgroup ({access.cgroup})")
    return replace(node, gpus=tuple(gpus), allowed_cpus=allowed, allowed_mems=mems, notes=tuple(notes))
