"""GPU health from NVML: persistence mode, lost GPUs, memory retirement, NVLink links, PCIe replays."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from pinctl.discovery.access import CLOSED, device_file_closed
from pinctl.discovery.nvml import GpuHealth, NvmlHealth
from pinctl.doctor.finding import DoctorContext, Finding, ok, skipped
from pinctl.kernel import pci
from pinctl.kernel.devices import gpu_device_files
from pinctl.words import count, every, verb

PERSISTENCE = "gpu.persistence-mode"
LOST = "gpu.lost"
MEMORY = "gpu.memory-retirement"
NVLINK = "gpu.nvlink-missing"
REPLAY = "gpu.pcie-replay"


def _label(g: GpuHealth) -> str:
    return f"GPU {g.index} ({g.pci_bus_id})" if g.pci_bus_id else f"GPU {g.index}"


def _not_usable(ctx: DoctorContext, h: NvmlHealth) -> dict[int, str]:
    """NVML index -> why, for each GPU NVML answers for that this job may not use by the one
    usable-GPU rule (discovery/access.py, docs/partial-nodes.md): its device file does not open,
    or (when the node was discovered) a visibility variable or MIG leaves it out, as ``show`` says."""
    files = gpu_device_files(ctx.files)
    node = {str(g.pci.address): g for g in ctx.node.gpus} if ctx.node is not None else {}
    out = {}
    for g in h.gpus:
        seen = node.get(str(g.pci_bus_id)) if g.pci_bus_id is not None else None
        why = device_file_closed("nvidia", g.minor, files) or (seen.unusable if seen is not None else None)
        if not g.lost and why is not None and not why.startswith("lost"):
            out[g.index] = why
    return out


def _health(ctx: DoctorContext, check: str) -> NvmlHealth | Finding:
    """NVML's answers for the GPUs this job may use (gpu.lost names the others, once)."""
    if ctx.health is None:
        return skipped(check, ctx.nvml_note)
    if not ctx.health.gpus:
        return skipped(check, "NVML reports no GPUs")
    left_out = _not_usable(ctx, ctx.health)
    mine = tuple(g for g in ctx.health.gpus if g.index not in left_out)
    if not mine:
        return skipped(check, f"none of the {count(len(left_out), 'GPU')} NVML answers for is usable here (gpu.lost)")
    return replace(ctx.health, gpus=mine)


def persistence_mode(ctx: DoctorContext) -> list[Finding]:
    h = _health(ctx, PERSISTENCE)
    if isinstance(h, Finding):
        return [h]
    off = [g for g in h.gpus if g.persistence_mode is False]
    known = [g for g in h.gpus if g.persistence_mode is not None]
    if not known:
        return [skipped(PERSISTENCE, "persistence mode not reported")]
    out = [
        Finding(
            PERSISTENCE,
            "warn",
            _label(g),
            "persistence mode is off",
            (f"nvmlDeviceGetPersistenceMode(GPU {g.index}) = disabled",),
            "run nvidia-persistenced (systemctl enable --now nvidia-persistenced): without it the driver "
            "tears down and re-initialises the GPU for every job, adding seconds to each start",
        )
        for g in off
    ]
    return out or [ok(PERSISTENCE, "node", f"persistence mode on for {count(len(known), 'GPU')}")]


def nvidia_pci_gpus(ctx: DoctorContext) -> list[str]:
    """PCI functions of NVIDIA display/3D class bound to the nvidia driver."""
    out = []
    for addr in pci.functions(ctx.files):
        class_id, vendor, _ = pci.ids(ctx.files, addr)
        if vendor == 0x10DE and class_id >> 16 == 0x03 and pci.driver(ctx.files, addr) == "nvidia":
            out.append(addr)
    return out


_XID_REMEDY = (
    "check `dmesg` for Xid 79 (fallen off the bus) or 48/63/64 (memory); drain the node and "
    "reset the GPU (nvidia-smi -r) or reboot; replace it if it recurs"
)
_PERMISSION_REMEDY = (
    "the GPU's device file is not open to this user or container: check the mode of "
    "/dev/nvidia* (the driver's NVreg_DeviceFileMode/UID/GID), the cgroup's device rules, "
    "or the GPUs given to the container (--gpus, the device plugin)"
)


def _lost_finding(g: GpuHealth, subject: str) -> Finding:
    how = g.how
    code = how.code if how else "unknown"
    evidence = (f"{how.call} -> {how.code}",) if how else ()
    if how is not None and how.permission:
        return Finding(
            LOST,
            "fail",
            subject,
            "NVML may not open this GPU (NO_PERMISSION)",
            evidence,
            _PERMISSION_REMEDY,
        )
    if how is not None and how.step == "queries":
        return Finding(
            LOST,
            "fail",
            subject,
            f"lost: its every query answers {code}",
            evidence,
            _XID_REMEDY,
        )
    return Finding(LOST, "fail", subject, f"NVML cannot open the GPU ({code})", evidence, _XID_REMEDY)


def lost(ctx: DoctorContext) -> list[Finding]:
    """Lost GPUs, judged over the GPUs this job was given (docs/partial-nodes.md).

    NVML lists the GPUs whose device files this job has; a GPU bound to the driver that NVML
    does not list was not given to this job (a pod given 2 of 8), unless this job holds more
    GPU device files than NVML lists: then a given GPU has vanished from NVML. Where a device
    cgroup hides files (Slurm's ConstrainDevices), NVML may list every GPU and refuse the others'
    handles (NO_PERMISSION): when the job holds exactly the files of the GPUs NVML opens, those
    refused were not given either.
    """
    h = ctx.health
    if h is None:
        return [_nvml_failed(ctx) or skipped(LOST, ctx.nvml_note)]
    bound = nvidia_pci_gpus(ctx)
    listed = {str(g.pci_bus_id) for g in h.gpus if g.pci_bus_id is not None}
    absent = [a for a in bound if a not in listed]
    gone = [g for g in h.gpus if g.lost]
    files = gpu_device_files(ctx.files)
    held = sorted(f for f in files or () if f.startswith("nvidia"))
    denied = [g for g in gone if g.how is not None and g.how.permission]
    not_ours = bool(held and denied and len(held) == len(h.gpus) - len(denied))
    if not_ours:
        gone = [g for g in gone if g not in denied]
    left_out = _not_usable(ctx, h)
    given = len(h.gpus) - (len(denied) if not_ours else 0) - len(left_out)
    named = len(absent) == len(gone) > 0  # the bus can still name what NVML lost
    where = f" ({', '.join(absent)})" if named else ""
    out = [_lost_finding(g, f"GPU {g.index}{where}") for g in gone]
    not_given = [] if named else absent
    if len(held) > len(h.gpus):
        out.append(
            Finding(
                LOST,
                "fail",
                "node",
                f"this job holds {count(len(held), 'GPU device file')}, NVML sees {len(h.gpus)}",
                (
                    f"/dev: {', '.join(held)}",
                    f"nvmlDeviceGetCount() = {len(h.gpus)}",
                    f"{pci.DEVICES_DIR}/*: {count(len(bound), 'NVIDIA display device')} with driver nvidia",
                ),
                "check `dmesg` for RmInitAdapter failures or Xid errors; reboot or replace the missing GPU",
            )
        )
        not_given = []
    if not out and not h.gpus:
        return [skipped(LOST, "NVML reports no GPUs")]
    shut = {i: why for i, why in left_out.items() if why.endswith(CLOSED)}
    extra = [_shut_finding(h, shut)] if shut else []
    hidden = [f"GPU {i}: {why}" for i, why in left_out.items() if i not in shut]
    aside = f", {len(not_given)} not given" if not_given else ""
    aside += f", {len(hidden)} left out" if hidden else ""
    answer = verb(given, "answers", "answer")
    ev = [f"bound to the nvidia driver, not given to this job: {', '.join(not_given)}"] if not_given else []
    if out or (extra and not given):
        return out + extra
    return [ok(LOST, "node", f"{count(given, 'GPU')} given to this job {answer} NVML{aside}", *ev, *hidden), *extra]


def _shut_finding(h: NvmlHealth, shut: dict[int, str]) -> Finding:
    """The one place that says NVML answers for GPUs whose device file this job cannot open."""
    by_index = {g.index: g for g in h.gpus}
    return Finding(
        LOST,
        "warn",
        "node",
        f"{count(len(shut), 'GPU')} {verb(len(shut), 'answers', 'answer')} NVML, device file not openable",
        tuple(f"{_label(by_index[i])}: {why}" for i, why in shut.items()),
        _PERMISSION_REMEDY,
    )


# NVML absent or the driver not loaded: no GPU to judge here; a version mismatch is gpu.driver's
_NOT_HERE = ("LIBRARY_NOT_FOUND", "DRIVER_NOT_LOADED", "LIB_RM_VERSION_MISMATCH")


def _nvml_failed(ctx: DoctorContext) -> Finding | None:
    """FAIL when NVML starts but fails (cannot count GPUs, ...) while this job holds GPU device files."""
    held = sorted(f for f in gpu_device_files(ctx.files) or () if f.startswith("nvidia"))
    if not held or ctx.nvml_error is None or ctx.nvml_error in _NOT_HERE:
        return None
    return Finding(
        LOST,
        "fail",
        "node",
        f"NVML fails on this job's {count(len(held), 'GPU')} ({ctx.nvml_error})",
        (ctx.nvml_note, f"/dev: {', '.join(held)}"),
        _PERMISSION_REMEDY if ctx.nvml_error == "NO_PERMISSION" else _XID_REMEDY,
    )


def memory_retirement(ctx: DoctorContext) -> list[Finding]:
    h = _health(ctx, MEMORY)
    if isinstance(h, Finding):
        return [h]
    out: list[Finding] = []
    known = 0
    for g in h.gpus:
        facts = (g.retired_pages_pending, g.remap_pending, g.remap_failure)
        if all(f is None for f in facts):
            continue
        known += 1
        said = {None: "not reported", True: "yes", False: "no"}  # Hopper has no page retirement: not "None"
        ev = (
            f"GPU {g.index}: retired pages pending = {said[g.retired_pages_pending]}, "
            f"row remap pending = {said[g.remap_pending]}, row remap failure = {said[g.remap_failure]}",
        )
        if g.remap_failure:
            out.append(
                Finding(
                    MEMORY,
                    "fail",
                    _label(g),
                    "row remapping failed: uncorrectable memory",
                    ev,
                    "drain the node and have the GPU replaced (RMA)",
                )
            )
        elif g.remap_pending or g.retired_pages_pending:
            out.append(
                Finding(
                    MEMORY,
                    "warn",
                    _label(g),
                    "retirement pending a GPU reset",
                    ev,
                    "drain the node and reset the GPU (nvidia-smi -r) or reboot",
                )
            )
    if known == 0:
        return [skipped(MEMORY, "page retirement / row remapping not reported")]
    return out or [ok(MEMORY, "node", f"no pending or failed memory retirement on {count(known, 'GPU')}")]


def nvlink_missing(ctx: DoctorContext) -> list[Finding]:
    """Fewer active links than expected: the topology's count, else the best GPU of the same model."""
    h = _health(ctx, NVLINK)
    if isinstance(h, Finding):
        return [h]
    healthy = [g for g in h.gpus if not g.lost]
    if not any(g.nvlinks for g in healthy):
        return [skipped(NVLINK, "no NVLink on these GPUs")]
    expected_by_model: dict[str | None, int] = defaultdict(int)
    for g in healthy:
        expected_by_model[g.name] = max(expected_by_model[g.name], g.active_nvlinks)
    topo = {}
    if ctx.node is not None:
        topo = {gpu.pci.address: sum(link.links for link in gpu.nvlinks) for gpu in ctx.node.gpus}
    out: list[Finding] = []
    for g in healthy:
        expected = max(expected_by_model[g.name], topo.get(g.pci_bus_id, 0) if g.pci_bus_id else 0)
        if g.active_nvlinks < expected:
            down = [i for i, active in g.nvlinks if not active]
            out.append(
                Finding(
                    NVLINK,
                    "warn",
                    _label(g),
                    f"{g.active_nvlinks} of {count(expected, 'NVLink')} active",
                    (f"nvmlDeviceGetNvLinkState(GPU {g.index}, link) inactive for links {down}",),
                    "check `nvidia-smi nvlink -s` and the fabric manager (NVSwitch systems: "
                    "systemctl status nvidia-fabricmanager); reseat or service the baseboard if links stay down",
                )
            )
    return out or [ok(NVLINK, "node", every(len(healthy), "GPU", "has its", "have their") + " expected NVLinks active")]


def pcie_replay(ctx: DoctorContext) -> list[Finding]:
    h = _health(ctx, REPLAY)
    if isinstance(h, Finding):
        return [h]
    known = [g for g in h.gpus if g.pcie_replay_counter is not None]
    if not known:
        return [skipped(REPLAY, "PCIe replay counter not reported")]
    out = [
        Finding(
            REPLAY,
            "warn",
            _label(g),
            f"{g.pcie_replay_counter} PCIe replays",
            (f"nvmlDeviceGetPcieReplayCounter(GPU {g.index}) = {g.pcie_replay_counter} (since the driver loaded)",),
            "replays mean link-level CRC errors being retried: compare again later; a growing count "
            "points to a marginal slot, riser or retimer (reseat; check `lspci -vv` AER counters)",
        )
        for g in known
        if (g.pcie_replay_counter or 0) > 0
    ]
    return out or [ok(REPLAY, "node", f"no PCIe replays on {count(len(known), 'GPU')}")]
