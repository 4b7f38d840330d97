"""Kernel settings that tax pinned GPU jobs: NUMA balancing, THP defrag, governors, offline and isolated CPUs."""

from __future__ import annotations

from pinctl.cpuset import format_list, parse_list
from pinctl.doctor.finding import DoctorContext, Finding, ok, skipped
from pinctl.errors import UsageError

NUMA_BALANCING = "kernel.numa-balancing"
THP_DEFRAG = "kernel.thp-defrag"
GOVERNOR = "kernel.cpufreq-governor"
OFFLINE = "kernel.offline-cpus"
ISOLCPUS = "kernel.isolcpus"
_CPU = "/sys/devices/system/cpu"


def numa_balancing(ctx: DoctorContext) -> list[Finding]:
    path = "/proc/sys/kernel/numa_balancing"
    text = ctx.sysfs.read(path, strict_perm=True)
    if text is None:
        return [skipped(NUMA_BALANCING, f"{path} absent (kernel without NUMA balancing)")]
    ev = f"{path} = {text}"
    if not text.isdigit():
        return [skipped(NUMA_BALANCING, f"unexpected value in {path}", path)]
    # Bit 0 is NUMA_BALANCING_NORMAL (page migration between nodes); bit 1 alone is
    # memory tiering (promotion from slow CXL/pmem tiers), which leaves pinned jobs alone.
    if int(text) & 1:
        return [Finding(
            NUMA_BALANCING, "warn", path, "automatic NUMA balancing is on", (ev,),
            "sysctl -w kernel.numa_balancing=0 (persist in /etc/sysctl.d/): pinned jobs place their "
            "memory themselves, and the scanner's page faults and migrations cost them time",
        )]
    return [ok(NUMA_BALANCING, path, "automatic NUMA balancing is off", ev)]


def thp_defrag(ctx: DoctorContext) -> list[Finding]:
    path = "/sys/kernel/mm/transparent_hugepage/defrag"
    text = ctx.sysfs.read(path, strict_perm=True)
    if text is None:
        return [skipped(THP_DEFRAG, f"{path} absent (kernel without transparent hugepages)")]
    chosen = next((w[1:-1] for w in text.split() if w.startswith("[") and w.endswith("]")), None)
    ev = f"{path} = {text}"
    if chosen is None:
        return [skipped(THP_DEFRAG, f"no selected mode in {path}", path)]
    if chosen == "always":
        return [Finding(
            THP_DEFRAG, "warn", path, "THP defrag is 'always': page faults stall on direct compaction",
            (ev,), f"echo defer+madvise > {path} (or madvise/defer; persist with a boot-time unit)",
        )]
    return [ok(THP_DEFRAG, path, f"THP defrag is '{chosen}'", ev)]


def _cpu_dirs(ctx: DoctorContext) -> list[int]:
    return sorted(int(d[3:]) for d in ctx.sysfs.listdir(_CPU) if d.startswith("cpu") and d[3:].isdigit())


def cpufreq_governor(ctx: DoctorContext) -> list[Finding]:
    by_gov: dict[str, set[int]] = {}
    for cpu in _cpu_dirs(ctx):
        gov = ctx.sysfs.read(f"{_CPU}/cpu{cpu}/cpufreq/scaling_governor", strict_perm=True)
        if gov is not None:
            by_gov.setdefault(gov, set()).add(cpu)
    if not by_gov:
        return [skipped(GOVERNOR, "no cpufreq (VM, or firmware-controlled frequency)")]
    ev = tuple(f"{_CPU}/cpu{{{format_list(c)}}}/cpufreq/scaling_governor = {g}" for g, c in sorted(by_gov.items()))
    others = {g: c for g, c in by_gov.items() if g != "performance"}
    if not others:
        return [ok(GOVERNOR, "node", f"all {len(by_gov['performance'])} CPUs use 'performance'", *ev)]
    cpus = set().union(*others.values())
    return [Finding(
        GOVERNOR, "warn", f"CPUs {format_list(cpus)}",
        f"{len(cpus)} CPUs use governor {', '.join(sorted(others))}, not 'performance'", ev,
        "cpupower frequency-set -g performance (or tuned-adm profile latency-performance); "
        "input pipelines and NCCL proxy threads stall while cores ramp up",
    )]


def _cpus(ctx: DoctorContext, name: str) -> tuple[frozenset[int] | None, str | None]:
    path = f"{_CPU}/{name}"
    text = ctx.sysfs.read(path, strict_perm=True)
    if text is None:
        return None, None
    if text in ("", "(null)"):
        return frozenset(), f"{path} = {text or '(empty)'}"
    try:
        return parse_list(text, what=path), f"{path} = {text}"
    except UsageError:
        return None, f"{path} = {text} (unparsable)"


def offline_cpus(ctx: DoctorContext) -> list[Finding]:
    online, ev_on = _cpus(ctx, "online")
    present, ev_pr = _cpus(ctx, "present")
    offline, ev_off = _cpus(ctx, "offline")
    evidence = tuple(e for e in (ev_on, ev_pr, ev_off) if e)
    if online is None and offline is None:
        return [skipped(OFFLINE, f"{_CPU}/online and offline absent")]
    missing: frozenset[int] = frozenset()
    if present is not None and online is not None:
        missing = present - online
    elif offline is not None:
        # offline also lists possible-but-absent hotplug slots; without "present" it is all we have
        missing = offline
    if missing:
        return [Finding(
            OFFLINE, "warn", f"CPUs {format_list(missing)}", f"{len(missing)} present CPUs are offline",
            evidence, f"echo 1 > {_CPU}/cpuN/online for each, or check the BIOS and kernel maxcpus=/nr_cpus=; "
            "offline CPUs shrink the node and skew NUMA balance",
        )]
    return [ok(OFFLINE, "node", "all present CPUs are online", *evidence)]


def _cmdline_lists(cmdline: str) -> dict[str, tuple[frozenset[int] | None, str]]:
    """isolcpus=/nohz_full= values; isolcpus may lead with flags (``isolcpus=nohz,domain,2-7``)."""
    out: dict[str, tuple[frozenset[int] | None, str]] = {}
    for word in cmdline.split():
        key, sep, value = word.partition("=")
        if not sep or key not in ("isolcpus", "nohz_full"):
            continue
        parts = value.split(",")
        while parts and parts[0] and not parts[0][0].isdigit():
            parts.pop(0)
        try:
            out[key] = (parse_list(",".join(parts), what=key), word)
        except UsageError:
            out[key] = (None, word)
    return out


def isolcpus(ctx: DoctorContext) -> list[Finding]:
    cmdline = ctx.sysfs.read("/proc/cmdline", strict_perm=True)
    isolated, ev_iso = _cpus(ctx, "isolated")
    nohz, ev_nohz = _cpus(ctx, "nohz_full")
    evidence = [e for e in (ev_iso, ev_nohz) if e]
    union: set[int] = set(isolated or ()) | set(nohz or ())
    if cmdline is not None:
        for key, (cpus, word) in _cmdline_lists(cmdline).items():
            evidence.append(f"/proc/cmdline: {word}" + ("" if cpus is not None else f" (unparsable {key})"))
            union |= cpus or set()
    if cmdline is None and isolated is None and nohz is None:
        return [skipped(ISOLCPUS, "/proc/cmdline and cpu/isolated absent")]
    hk = ctx.housekeeping
    if hk is None:
        what = f"isolated/nohz_full CPUs: {format_list(union)}" if union else "no isolated or nohz_full CPUs"
        return [ok(ISOLCPUS, "node", what + " (no plan given to compare with)", *evidence)]
    evidence.append(f"plan housekeeping CPUs = {format_list(hk)}")
    out: list[Finding] = []
    clash = hk & union
    if clash:
        out.append(Finding(
            ISOLCPUS, "warn", f"CPUs {format_list(clash)}",
            "housekeeping CPUs are isolated/nohz_full: daemons pinned there get no load balancing",
            tuple(evidence), "reserve non-isolated CPUs for housekeeping (--reserve), or change "
            "isolcpus=/nohz_full= on the kernel command line",
        ))
    overlap = hk & (ctx.job_cpus or frozenset())
    if overlap:
        out.append(Finding(
            ISOLCPUS, "warn", f"CPUs {format_list(overlap)}",
            "job CPUs overlap the housekeeping CPUs",
            (*evidence, f"plan job CPUs = {format_list(ctx.job_cpus or ())}"),
            "re-plan with the housekeeping CPUs reserved (pinctl plan --reserve ...)",
        ))
    return out or [ok(ISOLCPUS, "node", "housekeeping CPUs are not isolated and not used by jobs", *evidence)]
