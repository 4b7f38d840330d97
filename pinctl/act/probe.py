"""The fixed-work-quantum probe of ``pinctl noise``: one child per CPU, pinned there, timing a tight loop.

Each child reads CLOCK_MONOTONIC (``time.perf_counter_ns``) in a loop whose every turn is the
same small work; a turn that takes far longer than the loop's median is a detour: the CPU went
somewhere else (an interrupt, another thread, the hypervisor). The sum of the detours over the
run is the time lost (the method of Hoefler et al.'s netgauge, and of the kernel's osnoise
tracer without its per-cause split). All children run at once, so the probe sees the node as a
job does, not one CPU at a time. The children are forked (no interpreter start per CPU), report
one JSON line each through a pipe, and leave through ``os._exit``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Collection
from dataclasses import dataclass

CALIBRATE = 20_000  # turns to find the loop's median quantum
DETOUR_FACTOR = 10  # a turn over 10x the median is a detour ...
DETOUR_FLOOR_NS = 1_000  # ... and over 1 us: smaller gaps are the clock's own jitter
MAX_DETOURS = 1_000_000  # memory bound for the detour list (a 1 kHz tick for 15 minutes)


@dataclass(frozen=True)
class ProbeResult:
    """One CPU's probe: time lost to detours (percent), the worst and 99th-percentile detour (us),
    how many, the loop's median quantum (ns), and the child's own CPU time (ns); ``error`` when it failed."""

    cpu: int
    lost_pct: float
    max_detour_us: float
    p99_detour_us: float
    detours: int
    quantum_ns: int
    own_ns: int
    error: str | None = None


def _measure(seconds: float) -> dict[str, float | int]:
    clock = time.perf_counter_ns
    last = clock()
    turns = []
    for _ in range(CALIBRATE):
        t = clock()
        turns.append(t - last)
        last = t
    turns.sort()
    quantum = turns[len(turns) // 2]
    threshold = max(DETOUR_FACTOR * quantum, DETOUR_FLOOR_NS)
    detours: list[int] = []
    start = last = clock()
    end = start + int(seconds * 1e9)
    while last < end:
        t = clock()
        if t - last > threshold and len(detours) < MAX_DETOURS:
            detours.append(t - last)
        last = t
    total = last - start
    detours.sort()
    lost = sum(d - quantum for d in detours)
    p99 = detours[min(len(detours) - 1, (99 * len(detours)) // 100)] if detours else 0
    return {
        "lost_pct": round(100.0 * lost / total, 2) if total else 0.0,
        "max_detour_us": round((detours[-1] if detours else 0) / 1000, 1),
        "p99_detour_us": round(p99 / 1000, 1),
        "detours": len(detours),
        "quantum_ns": quantum,
        "own_ns": time.process_time_ns(),
    }


def _child(cpu: int, seconds: float, write_fd: int) -> None:
    """In the fork: pin to *cpu*, measure, write one JSON line, leave without Python's exit path."""
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and ends the children
        os.sched_setaffinity(0, {cpu})
        doc: dict[str, object] = {"cpu": cpu, **_measure(seconds)}
    except OSError as exc:
        doc, code = {"cpu": cpu, "error": f"cannot run on CPU {cpu}: {exc.strerror or exc}"}, 1
    try:
        os.write(write_fd, (json.dumps(doc) + "\n").encode())
    finally:
        os._exit(code)


def start(cpus: Collection[int], seconds: float) -> tuple[dict[int, int], int]:
    """Fork one child per CPU (all start at once); returns ({pid: cpu}, the pipe's read end)."""
    read_fd, write_fd = os.pipe()
    children: dict[int, int] = {}
    try:
        for cpu in sorted(cpus):
            pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                _child(cpu, seconds, write_fd)
            children[pid] = cpu
    except BaseException:
        stop(children)
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return children, read_fd


def stop(children: dict[int, int]) -> None:
    """End and reap children still running (an interrupted probe)."""
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in children:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def collect(children: dict[int, int], read_fd: int) -> list[ProbeResult]:
    """Read every child's line (until all have closed the pipe) and reap them; a child that died
    without a line is named as such."""
    chunks = []
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            chunks.append(pipe.read())
    finally:
        stop(children)
    got: dict[int, ProbeResult] = {}
    for line in b"".join(chunks).decode().splitlines():
        d = json.loads(line)
        cpu = int(d["cpu"])
        if "error" in d:
            got[cpu] = ProbeResult(cpu, 0.0, 0.0, 0.0, 0, 0, 0, str(d["error"]))
        else:
            got[cpu] = ProbeResult(
                cpu,
                float(d["lost_pct"]),
                float(d["max_detour_us"]),
                float(d["p99_detour_us"]),
                int(d["detours"]),
                int(d["quantum_ns"]),
                int(d["own_ns"]),
            )
    for cpu in children.values():
        if cpu not in got:
            got[cpu] = ProbeResult(cpu, 0.0, 0.0, 0.0, 0, 0, 0, "the probe's child died without a result")
    return [got[c] for c in sorted(got)]
