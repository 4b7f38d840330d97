"""Shared timing for the bench scripts: median wall time of a command, as a ratio.

Benchmarks compare pinctl with what users would otherwise run (``python -c pass``
of the same interpreter, numactl, taskset), so every number is printed beside
its baseline; absolute milliseconds on a 2-core CI box mean little.
"""

from __future__ import annotations

import compileall
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pinctl"


def ensure_bytecode() -> None:
    """Compile pinctl's modules once, as ``pip install`` does for a user.

    Where PYTHONDONTWRITEBYTECODE is set (some CI images and sandboxes) or the tree is
    fresh, every spawned pinctl would otherwise compile its sources and the bench would
    time the compiler, not pinctl.
    """
    compileall.compile_dir(str(PACKAGE), quiet=1)


def run_once(argv: list[str]) -> float:
    """Seconds to spawn *argv* (a path, no PATH search, no shell) and reap it; exits on failure.

    posix_spawn keeps the harness's own overhead out of launches of a few milliseconds.
    """
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ)
    _, status = os.waitpid(pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed with status {status}")
    return elapsed


def run_timed(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of spawning *argv* and reaping it; exits on failure.

    The CPU time (user + system, from wait4) is what the command itself cost: on a box whose
    other work makes the wall time wait for a core, it still says what the command would
    take on an idle one.
    """
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ)
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed with status {status}")
    return elapsed, usage.ru_utime + usage.ru_stime


def median_ms(argv: Sequence[str], runs: int = 15, env: dict[str, str] | None = None) -> float:
    """Median wall time of running *argv* to completion, in milliseconds (one warm-up run)."""
    subprocess.run(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def baseline_ms(runs: int = 15) -> float:
    """``python -c pass`` in this interpreter: the floor any Python tool pays."""
    return median_ms([sys.executable, "-c", "pass"], runs)


def report(rows: list[tuple[str, float]], base: float) -> None:
    """Print name, milliseconds and ratio to the baseline, aligned."""
    width = max(len(name) for name, _ in rows)
    print(f"{'python -c pass':<{width}}  {base:8.1f} ms  1.00x")
    for name, ms in rows:
        print(f"{name:<{width}}  {ms:8.1f} ms  {ms / base:5.2f}x")
