"""GPU running condition from NVML: clock events, uncorrectable ECC, NVLink errors, fabric, versions.

The watches DCGM's health system keeps and NHC's GPU checks run, read passively from what
NVML gives any user (:class:`pinctl.discovery.gpufacts.GpuCondition`). Healthy states are
not alarms: an idle GPU, one held at its software power cap under load, application clocks,
and corrected ECC errors are how a good GPU looks.
"""

from __future__ import annotations

from collections import defaultdict

from pinctl.discovery.gpufacts import FABRIC_COMPLETED, clock_event_names
from pinctl.discovery.nvml import GpuHealth
from pinctl.doctor.finding import DoctorContext, Finding, ok, skipped
from pinctl.words import count, named

CLOCKS = "gpu.clocks"
ECC = "gpu.ecc"
NVLINK_ERRORS = "gpu.nvlink-errors"
FABRIC = "gpu.fabric"
DRIVER = "gpu.driver"


def label(g: GpuHealth) -> str:
    return f"GPU {g.index} ({g.pci_bus_id})" if g.pci_bus_id else f"GPU {g.index}"


def _answering(ctx: DoctorContext, check: str) -> list[GpuHealth] | Finding:
    """The GPUs NVML could open, or the SKIPPED finding that says why there are none."""
    if ctx.health is None:
        return skipped(check, ctx.nvml_note)
    gpus = [g for g in ctx.health.gpus if not g.lost]
    return gpus or skipped(check, "NVML reports no GPUs it can open")


def clocks(ctx: DoctorContext) -> list[Finding]:
    """Clock-event reasons that mean heat, power delivery or a brake signal is slowing the GPU now."""
    gpus = _answering(ctx, CLOCKS)
    if isinstance(gpus, Finding):
        return [gpus]
    known = [g for g in gpus if g.condition.clock_events is not None]
    if not known:
        return [skipped(CLOCKS, "clock-event reasons not reported")]
    out = []
    for g in known:
        mask = g.condition.clock_events or 0
        faults = clock_event_names(mask, faults=True)
        if faults:
            out.append(
                Finding(
                    CLOCKS,
                    "warn",
                    label(g),
                    "throttled: " + ", ".join(faults),
                    (f"nvmlDeviceGetCurrentClocksEventReasons(GPU {g.index}) = {mask:#x}",),
                    "a throttled GPU is the slowest rank of every job on it: check inlet temperature and "
                    "fans (nvidia-smi -q -d TEMPERATURE,PERFORMANCE), the PSUs and power cabling (HW power "
                    "brake is an external signal), and the BMC's event log; drain the node if it persists",
                )
            )
    normal = sorted({n for g in known for n in clock_event_names(g.condition.clock_events or 0, faults=False)})
    normal_ev = [f"normal reasons now (not alarmed): {', '.join(normal)}"] if normal else []
    return out or [ok(CLOCKS, "node", f"no thermal or power slowdown on {count(len(known), 'GPU')}", *normal_ev)]


def ecc(ctx: DoctorContext) -> list[Finding]:
    """Uncorrectable ECC errors: volatile (since the driver loaded) fail, aggregate (lifetime) warn."""
    gpus = _answering(ctx, ECC)
    if isinstance(gpus, Finding):
        return [gpus]
    known = [
        g
        for g in gpus
        if g.condition.ecc_uncorrected_volatile is not None or g.condition.ecc_uncorrected_aggregate is not None
    ]
    if not known:
        return [skipped(ECC, "ECC off or not reported on these GPUs")]
    out = []
    for g in known:
        vol, agg = g.condition.ecc_uncorrected_volatile or 0, g.condition.ecc_uncorrected_aggregate or 0
        ev = (
            f"nvmlDeviceGetTotalEccErrors(GPU {g.index}, UNCORRECTED, VOLATILE) = {vol}",
            f"nvmlDeviceGetTotalEccErrors(GPU {g.index}, UNCORRECTED, AGGREGATE) = {agg}",
        )
        if vol:
            out.append(
                Finding(
                    ECC,
                    "fail",
                    label(g),
                    f"{count(vol, 'uncorrectable ECC error')} since driver load",
                    ev,
                    "the job that hit them was killed (Xid 48/94/95); drain the node, reset the GPU "
                    "(nvidia-smi -r) so row remapping takes effect, and watch gpu.memory-retirement; "
                    "replace the GPU if they return",
                )
            )
        elif agg:
            out.append(
                Finding(
                    ECC,
                    "warn",
                    label(g),
                    f"{count(agg, 'uncorrectable ECC error')} in its lifetime",
                    ev,
                    "history, not a current fault: check that gpu.memory-retirement is clean (rows remapped, "
                    "none pending) and compare with the node's peers; a growing count means replace the GPU",
                )
            )
    out += _ecc_off(gpus)
    return out or [ok(ECC, "node", f"no uncorrectable ECC errors on {count(len(known), 'GPU')}")]


def _ecc_off(gpus: list[GpuHealth]) -> list[Finding]:
    """A GPU with ECC off among peers of its model with it on: its memory errors go unseen (no counters)."""
    on = {g.index for g in gpus if g.condition.ecc_enabled}
    return [
        Finding(
            ECC,
            "warn",
            label(g),
            "ECC off (on for its peers)",
            (
                f"nvmlDeviceGetEccMode(GPU {g.index}): current = disabled",
                f"ECC on for {named('GPU', peers)} ({g.name})",
            ),
            f"turn ECC back on (nvidia-smi -i {g.index} -e 1) and reset the GPU (nvidia-smi -r) or reboot: "
            "without it memory errors corrupt results silently and the ECC counters stay empty",
        )
        for g in gpus
        if g.condition.ecc_enabled is False and (peers := [p.index for p in gpus if p.index in on and p.name == g.name])
    ]


def nvlink_errors(ctx: DoctorContext) -> list[Finding]:
    """NVLink replay, recovery and CRC counters above zero, per link (cumulative since the driver loaded)."""
    gpus = _answering(ctx, NVLINK_ERRORS)
    if isinstance(gpus, Finding):
        return [gpus]
    known = [g for g in gpus if any(any(n is not None for n in e.counts) for e in g.condition.nvlink_errors)]
    if not known:
        return [skipped(NVLINK_ERRORS, "no NVLink error counters on these GPUs")]
    out = []
    for g in known:
        bad = [e for e in g.condition.nvlink_errors if e.nonzero]
        if not bad:
            continue
        ev = tuple(
            f"nvmlDeviceGetNvLinkErrorCounter(GPU {g.index}, link {e.link}): "
            + ", ".join(f"{k} = {n}" for k, n in e.nonzero.items())
            + ("" if e.active else " (link now down)")
            for e in bad
        )
        which = named("link", [e.link for e in bad])
        out.append(
            Finding(
                NVLINK_ERRORS,
                "warn",
                label(g),
                f"NVLink errors on {which}",
                ev,
                "counters since the driver loaded: compare again later (nvidia-smi nvlink -e); growing replay "
                "or recovery counts mean a marginal link that slows every collective over it; reseat or service "
                "the baseboard, and see gpu.nvlink-missing for links that are down",
            )
        )
    links = sum(len(g.condition.nvlink_errors) for g in known)
    return out or [
        ok(NVLINK_ERRORS, "node", f"no NVLink errors on {count(links, 'link')} of {count(len(known), 'GPU')}")
    ]


_NO_CUDA = "CUDA init fails on this GPU until its fabric registration completes: "


def fabric(ctx: DoctorContext) -> list[Finding]:
    """NVSwitch systems: each GPU registered with the fabric manager, else CUDA init fails."""
    gpus = _answering(ctx, FABRIC)
    if isinstance(gpus, Finding):
        return [gpus]
    known = [g for g in gpus if g.condition.fabric is not None and g.condition.fabric.applies]
    if not known:
        return [skipped(FABRIC, "no NVLink fabric (not an NVSwitch system)")]
    out = []
    fix = (
        "systemctl status nvidia-fabricmanager (it must run, at the driver's exact version) and its log "
        "(/var/log/fabricmanager.log); restart it, or reset the GPUs / reboot if registration failed"
    )
    for g in known:
        f = g.condition.fabric
        if f is None:
            continue
        ev = [
            f"nvmlDeviceGetGpuFabricInfoV(GPU {g.index}): state = {f.state_name}, status = {f.status}"
            + ("" if f.health_mask is None else f", healthMask = {f.health_mask:#x}")
        ]
        if f.state != FABRIC_COMPLETED:
            out.append(
                Finding(
                    FABRIC,
                    "fail",
                    label(g),
                    f"fabric registration {f.state_name}",
                    tuple(ev),
                    _NO_CUDA + fix,
                )
            )
        elif f.status != 0:
            out.append(
                Finding(
                    FABRIC,
                    "fail",
                    label(g),
                    f"fabric registration failed ({f.status_text or f'NVML status {f.status}'})",
                    tuple(ev),
                    _NO_CUDA + fix,
                )
            )
        elif f.degraded_bandwidth or f.manager_disconnected:
            what = "NVLink bandwidth degraded" if f.degraded_bandwidth else "fabric manager disconnected"
            out.append(Finding(FABRIC, "warn", label(g), what, tuple(ev), fix))
    return out or [ok(FABRIC, "node", f"{count(len(known), 'GPU')} registered with the NVLink fabric")]


def driver_versions(ctx: DoctorContext) -> list[Finding]:
    """Per-GPU versions that should agree: GSP firmware (loaded by the driver) and VBIOS per model."""
    gpus = _answering(ctx, DRIVER)
    if isinstance(gpus, Finding):
        return [gpus]
    driver = ctx.health.driver_version if ctx.health is not None else None
    out: list[Finding] = []
    gsp = {g.index: g.condition.gsp_firmware for g in gpus if g.condition.gsp_firmware}
    expected = driver or _majority(list(gsp.values()))
    odd = {i: v for i, v in gsp.items() if expected is not None and not v.startswith(expected)}
    if odd:
        out.append(
            Finding(
                DRIVER,
                "fail",
                "node",
                f"GSP firmware not at driver {expected} on {named('GPU', odd)}",
                (
                    f"nvmlSystemGetDriverVersion() = {driver}",
                    *(f"nvmlDeviceGetGspFirmwareVersion(GPU {i}) = {v}" for i, v in sorted(gsp.items())),
                ),
                "the GPUs run firmware of another driver (a partial upgrade or a GPU not reset since): "
                "reboot the node, or reset the GPUs (nvidia-smi -r) with the new driver loaded",
            )
        )
    by_model: dict[str | None, dict[int, str]] = defaultdict(dict)
    for g in gpus:
        if g.condition.vbios:
            by_model[g.name][g.index] = g.condition.vbios
    for model, vbios in sorted(by_model.items(), key=lambda kv: str(kv[0])):
        common = _majority(list(vbios.values()))
        differ = {i: v for i, v in vbios.items() if v != common}
        if differ:
            out.append(
                Finding(
                    DRIVER,
                    "warn",
                    "node",
                    f"VBIOS differs on {named('GPU', differ)} of {count(len(vbios), 'GPU')}",
                    (
                        f"model: {model}",
                        f"most GPUs: {common}",
                        *(f"nvmlDeviceGetVbiosVersion(GPU {i}) = {v}" for i, v in sorted(vbios.items())),
                    ),
                    "flash the node's GPUs to one VBIOS (the vendor's firmware update package): mixed "
                    "firmware behaves differently under load and in the fabric",
                )
            )
    if not gsp and not by_model:
        return [skipped(DRIVER, "GSP firmware and VBIOS versions not reported")]
    seen = len({*gsp, *(i for v in by_model.values() for i in v)})
    return out or [
        ok(
            DRIVER,
            "node",
            f"firmware versions agree on {count(seen, 'GPU')}",
            *([f"nvmlSystemGetDriverVersion() = {driver}"] if driver else []),
        )
    ]


def _majority(values: list[str]) -> str | None:
    return max(sorted(set(values)), key=values.count) if values else None
