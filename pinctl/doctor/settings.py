"""Kernel settings that tax pinned GPU jobs: NUMA balancing, THP defrag, governors, offline and isolated CPUs."""

from __future__ import annotations

from pinctl.cpuset import decimal, format_list, parse_list
from pinctl.doctor.finding import DoctorContext, Finding, ok, skipped
from pinctl.errors import UsageError
from pinctl.kernel import settings
from pinctl.kernel.cpus import CPU_DIR, cpu_list_fact, governors
from pinctl.words import count, every, named, said, verb

NUMA_BALANCING = "kernel.numa-balancing"
THP_DEFRAG = "kernel.thp-defrag"
GOVERNOR = "kernel.cpufreq-governor"
OFFLINE = "kernel.offline-cpus"
ISOLCPUS = "kernel.isolcpus"


def numa_balancing(ctx: DoctorContext) -> list[Finding]:
    text, path = settings.numa_balancing(ctx.files)
    if text is None:
        return [skipped(NUMA_BALANCING, f"{path} absent (kernel without NUMA balancing)")]
    ev = f"{path} = {text}"
    if decimal(text) is None:
        return [skipped(NUMA_BALANCING, f"unexpected value in {path}", path)]
    # Bit 0 is NUMA_BALANCING_NORMAL (page migration between nodes); bit 1 alone is
    # memory tiering (promotion from slow CXL/pmem tiers), which leaves pinned jobs alone.
    if int(text) & 1:
        return [
            Finding(
                NUMA_BALANCING,
                "warn",
                path,
                "automatic NUMA balancing is on",
                (ev,),
                "sysctl -w kernel.numa_balancing=0 (persist in /etc/sysctl.d/): pinned jobs place their "
                "memory themselves, and the scanner's page faults and migrations cost them time",
            )
        ]
    return [ok(NUMA_BALANCING, path, "automatic NUMA balancing is off", ev)]


def thp_defrag(ctx: DoctorContext) -> list[Finding]:
    text, path = settings.thp_defrag(ctx.files)
    if text is None:
        return [skipped(THP_DEFRAG, f"{path} absent (kernel without transparent hugepages)")]
    chosen = next((w[1:-1] for w in text.split() if w.startswith("[") and w.endswith("]")), None)
    ev = f"{path} = {text}"
    if chosen is None:
        return [skipped(THP_DEFRAG, f"no selected mode in {path}", path)]
    if chosen == "always":
        return [
            Finding(
                THP_DEFRAG,
                "warn",
                path,
                "THP defrag is 'always': page faults stall on direct compaction",
                (ev,),
                f"echo defer+madvise > {path} (or madvise/defer; persist with a boot-time unit)",
            )
        ]
    return [ok(THP_DEFRAG, path, f"THP defrag is '{chosen}'", ev)]


def cpufreq_governor(ctx: DoctorContext) -> list[Finding]:
    found = governors(ctx.files)
    if not found:
        return [skipped(GOVERNOR, "no cpufreq (VM, or firmware-controlled frequency)")]
    by_gov = {gov: cpus for gov, cpus, _ in found}
    ev = tuple(e for _, _, e in found)
    others = {g: c for g, c in by_gov.items() if g != "performance"}
    if not others:
        return [ok(GOVERNOR, "node", every(len(by_gov["performance"]), "CPU", "uses", "use") + " 'performance'", *ev)]
    cpus = set().union(*others.values())
    return [
        Finding(
            GOVERNOR,
            "warn",
            named("CPU", cpus),
            f"{said('CPU', cpus, 'uses', 'use')} governor {', '.join(sorted(others))}, not 'performance'",
            ev,
            "cpupower frequency-set -g performance (or tuned-adm profile latency-performance); "
            "input pipelines and NCCL proxy threads stall while cores ramp up",
        )
    ]


def offline_cpus(ctx: DoctorContext) -> list[Finding]:
    online, ev_on = cpu_list_fact(ctx.files, "online")
    present, ev_pr = cpu_list_fact(ctx.files, "present")
    offline, ev_off = cpu_list_fact(ctx.files, "offline")
    evidence = tuple(e for e in (ev_on, ev_pr, ev_off) if e)
    if online is None and offline is None:
        return [skipped(OFFLINE, f"{CPU_DIR}/online and offline absent")]
    missing: frozenset[int] = frozenset()
    if present is not None and online is not None:
        missing = present - online
    elif offline is not None:
        # offline also lists possible-but-absent hotplug slots; without "present" it is all we have
        missing = offline
    if missing:
        return [
            Finding(
                OFFLINE,
                "warn",
                named("CPU", missing),
                f"{count(len(missing), 'present CPU')} {verb(len(missing), 'is', 'are')} offline",
                evidence,
                f"echo 1 > {CPU_DIR}/cpuN/online for each, or check the BIOS and kernel maxcpus=/nr_cpus=; "
                "offline CPUs shrink the node and skew NUMA balance",
            )
        ]
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
    cmdline = settings.cmdline(ctx.files)
    isolated, ev_iso = cpu_list_fact(ctx.files, "isolated")
    nohz, ev_nohz = cpu_list_fact(ctx.files, "nohz_full")
    evidence = [e for e in (ev_iso, ev_nohz) if e]
    union: set[int] = set(isolated or ()) | set(nohz or ())
    if cmdline is not None:
        for key, (cpus, word) in _cmdline_lists(cmdline).items():
            evidence.append(f"{settings.CMDLINE}: {word}" + ("" if cpus is not None else f" (unparsable {key})"))
            union |= cpus or set()
    if cmdline is None and isolated is None and nohz is None:
        return [skipped(ISOLCPUS, f"{settings.CMDLINE} and cpu/isolated absent")]
    hk = ctx.housekeeping
    if hk is None:
        what = f"isolated/nohz_full CPUs: {format_list(union)}" if union else "no isolated or nohz_full CPUs"
        return [ok(ISOLCPUS, "node", what + " (no housekeeping CPUs given: --reserve)", *evidence)]
    evidence.append(f"plan housekeeping CPUs = {format_list(hk)}")
    out: list[Finding] = []
    clash = hk & union
    if clash:
        out.append(
            Finding(
                ISOLCPUS,
                "warn",
                named("CPU", clash),
                "housekeeping CPUs are isolated/nohz_full: daemons pinned there get no load balancing",
                tuple(evidence),
                "reserve non-isolated CPUs for housekeeping (--reserve), or change "
                "isolcpus=/nohz_full= on the kernel command line",
            )
        )
    overlap = hk & (ctx.job_cpus or frozenset())
    if overlap:
        out.append(
            Finding(
                ISOLCPUS,
                "warn",
                named("CPU", overlap),
                "job CPUs overlap the housekeeping CPUs",
                (*evidence, f"plan job CPUs = {format_list(ctx.job_cpus or ())}"),
                "re-plan with the housekeeping CPUs reserved (pinctl plan --reserve ...)",
            )
        )
    return out or [ok(ISOLCPUS, "node", "housekeeping CPUs are not isolated and not used by jobs", *evidence)]
