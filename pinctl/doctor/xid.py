"""Xid events: the NVIDIA driver's error reports in the kernel log, per GPU.

The driver logs ``NVRM: Xid (PCI:0000:18:00): 79, pid=..., name=..., <text>``; the number's
meaning and the usual action follow NVIDIA's Xid catalog (docs.nvidia.com/deploy/xid-errors).
Xids that normally mean a program's own bug (13, 31, 43, 45, 69) are listed, not alarmed:
a healthy node that ran a faulty program logs them. The log holds everything since boot, so
a fail-level Xid older than a day is a warning: the GPU may have been reset since.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pinctl.doctor.finding import DoctorContext, Finding, Severity, ok, skipped
from pinctl.kernel import kmsg
from pinctl.model import PciAddress
from pinctl.words import count

CHECK = "gpu.xid"
_XID_RE = re.compile(r"NVRM: Xid \((?:PCI:)?([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2})(?:\.\d)?\):\s*(\d+)")

STALE_USEC = 24 * 3600 * 1_000_000  # a fail-level Xid older than this is reported as warn
_RESET = "drain the node and reset the GPU (nvidia-smi -r) or reboot"
_RMA = "drain the node; reset the GPU or reboot, and replace it (RMA) if it recurs"


@dataclass(frozen=True)
class XidKind:
    meaning: str
    level: str  # "app": usually the program's fault; "warn"/"fail": the node's
    action: str


XIDS: dict[int, XidKind] = {
    13: XidKind("graphics engine exception", "app", "usually the program (illegal instruction or address)"),
    31: XidKind("GPU memory page fault", "app", "usually the program (illegal memory access)"),
    43: XidKind("GPU stopped processing", "app", "usually the program (a fault in its kernel)"),
    45: XidKind("preemptive cleanup after earlier errors", "app", "follows another Xid: see that one"),
    48: XidKind("double-bit ECC error", "fail", _RESET + "; see gpu.ecc and gpu.memory-retirement"),
    61: XidKind("internal micro-controller breakpoint/warning", "warn", _RESET),
    62: XidKind("internal micro-controller halt", "fail", _RMA),
    63: XidKind("ECC page retirement or row remapping recorded", "warn", "reset the GPU to apply it"),
    64: XidKind("ECC page retirement or row remapping failed", "fail", _RMA),
    69: XidKind("graphics engine class error", "app", "usually the program"),
    74: XidKind("NVLink error", "fail", _RESET + "; check gpu.nvlink-errors and the baseboard if it recurs"),
    79: XidKind("GPU has fallen off the bus", "fail", _RMA + "; check the slot, riser and power"),
    92: XidKind("high single-bit ECC error rate", "warn", "watch gpu.ecc; replace the GPU if it grows"),
    94: XidKind("contained ECC error", "warn", "the affected program was stopped; " + _RESET + " to remap"),
    95: XidKind("uncontained ECC error", "fail", "every program on the GPU was stopped; " + _RESET),
    119: XidKind("GSP RPC timeout", "fail", _RMA),
    120: XidKind("GSP error", "fail", _RMA),
    121: XidKind("C2C link error", "warn", _RESET),
    140: XidKind("unrecovered ECC error", "fail", _RESET),
    154: XidKind("GPU recovery action changed", "fail", "do what the log line asks (GPU reset or node reboot)"),
}
_UNKNOWN = XidKind("see NVIDIA's Xid catalog", "warn", "look the number up in NVIDIA's Xid catalog")


def parse_xids(lines: list[kmsg.LogLine]) -> list[tuple[PciAddress | None, str, int, kmsg.LogLine]]:
    """``(GPU address, bus id as logged, Xid, line)`` for each Xid line."""
    out = []
    for line in lines:
        m = _XID_RE.search(line.text)
        if m:
            out.append((PciAddress.parse_or_none(m.group(1) + ".0"), m.group(1), int(m.group(2)), line))
    return out


def _names(ctx: DoctorContext) -> dict[PciAddress, str]:
    names: dict[PciAddress, str] = {}
    if ctx.node is not None:
        names.update({g.pci.address: f"GPU {g.index} ({g.pci.address})" for g in ctx.node.gpus})
    if ctx.health is not None:
        names.update({g.pci_bus_id: f"GPU {g.index} ({g.pci_bus_id})" for g in ctx.health.gpus if g.pci_bus_id})
    return names


def _ago(usec: int | None, now: int | None) -> str:
    if usec is None or now is None or now < usec:
        return ""
    minutes = (now - usec) // 60_000_000
    return f", last {minutes // 60} h {minutes % 60} min ago" if minutes >= 60 else f", last {minutes} min ago"


def xid_events(ctx: DoctorContext) -> list[Finding]:
    lines, why = kmsg.read_log(ctx.files)
    if why is not None:
        return [skipped(CHECK, f"kernel log not readable: {why}")]
    events = parse_xids(lines)
    now = kmsg.uptime_usec(ctx.files)
    names = _names(ctx)
    grouped: dict[tuple[str, int], list[kmsg.LogLine]] = {}
    subjects: dict[str, str] = {}
    for addr, bus, xid, line in events:
        subjects[bus] = names.get(addr, f"PCI {bus}") if addr is not None else f"PCI {bus}"
        grouped.setdefault((bus, xid), []).append(line)
    out, app = [], []
    for (bus, xid), hits in sorted(grouped.items()):
        kind = XIDS.get(xid, _UNKNOWN)
        summary = f"Xid {xid} ({kind.meaning}) x{len(hits)}{_ago(hits[-1].usec, now)}"
        if kind.level == "app":
            app.append(f"{subjects[bus]}: {summary}: {kind.action}")
            continue
        last = hits[-1].usec
        old = now is not None and last is not None and now - last > STALE_USEC
        level: Severity = "fail" if kind.level == "fail" and not old else "warn"
        action = kind.action + (
            "; the last one is over a day old: if the GPU was reset since and passes the "
            "gpu.* checks, it is history until the next reboot clears the log"
            if old
            else ""
        )
        out.append(Finding(CHECK, level, subjects[bus], summary, tuple(h.text for h in hits[-3:]), action))
    if out:
        return out
    return [
        ok(
            CHECK,
            "node",
            f"no hardware Xid events in {count(len(lines), 'kernel log line')}"
            + (f" ({count(len(app), 'program-fault Xid')})" if app else ""),
            *app,
        )
    ]
