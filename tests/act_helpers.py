"""Shared helpers for the launch/pin/check tests: hand-written plans and real processes to act on."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pinctl.cpuset import format_list
from pinctl.discovery import discover
from pinctl.plan.make import fingerprint

PYTHON = sys.executable
ALL_CPUS = sorted(os.sched_getaffinity(0))
TWO_CPUS = len(ALL_CPUS) >= 2


def rank(local_rank: int, cpus: list[int], **extra: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "local_rank": local_rank,
        "gpu": None,
        "numa_node": 0,
        "cpus": cpus,
        "cpulist": format_list(cpus),
        "mems": [0],
        "mem_policy": "bind",
        "nics": [],
        "storage": [],
        "env": {"LOCAL_RANK": str(local_rank), "OMP_NUM_THREADS": str(len(cpus))},
    }
    r.update(extra)
    return r


@functools.cache
def live_fingerprint() -> str:
    """This node's fingerprint as the planner computes it."""
    return fingerprint(discover())


def plan_dict(ranks: list[dict[str, Any]] | None = None, **node: Any) -> dict[str, Any]:
    """A small pinctl.plan/v2 document for this machine (one rank per CPU unless given)."""
    info = {"hostname": os.uname().nodename, "source": "test", "fingerprint": live_fingerprint()}
    info.update(node)
    return {
        "schema": "pinctl.plan/v2",
        "node": info,
        "options": {},
        "ranks": ranks if ranks is not None else [rank(i, [c]) for i, c in enumerate(ALL_CPUS[:2])],
        "warnings": [],
    }


def write_plan(path: Path, obj: Any) -> str:
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return str(path)


def pinctl(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, **kw: Any
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "SLURM_LOCALID")}
    full_env.update(env or {})
    return subprocess.run(
        [PYTHON, "-m", "pinctl", *args], capture_output=True, text=True, env=full_env, timeout=timeout, **kw
    )


def task_cpulists(pid: int) -> dict[int, str]:
    """Cpus_allowed_list of every thread of *pid*, as the kernel reports it."""
    out: dict[int, str] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            text = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("Cpus_allowed_list:"):
                out[int(tid)] = line.split(":", 1)[1].strip()
    return out


THREADS_SRC = """
import sys, threading, time
n = int(sys.argv[1])
ev = threading.Event()
for _ in range(n):
    threading.Thread(target=ev.wait, daemon=True).start()
print("ready", flush=True)
time.sleep(120)
"""

SPAWNER_SRC = """
import threading, time, random
def worker(depth):
    if depth:
        threading.Thread(target=worker, args=(depth - 1,), daemon=True).start()
    time.sleep(random.uniform(0.2, 3))
print("ready", flush=True)
end = time.time() + 120
while time.time() < end:
    threading.Thread(target=worker, args=(2,), daemon=True).start()
    time.sleep(0.002)
"""


@contextmanager
def python_proc(src: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """A Python process running *src*, started and waited for its "ready" line, killed on exit."""
    proc = subprocess.Popen([PYTHON, "-c", src, *args], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def run_as_nobody(fn: Any) -> tuple[int, str]:
    """Run *fn()* (returns an exit code) in a forked child that dropped root; (code, what it wrote to stderr).

    The child keeps the modules already imported, so it needs no readable interpreter
    (the venv's libpython lives under /root here, unreadable to nobody).
    """
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # child
        code = 99
        try:
            os.close(read_fd)
            os.dup2(write_fd, 2)
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115 - pytest may have replaced sys.stderr
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            code = int(fn())
        except BaseException as exc:
            os.write(2, f"child raised {exc!r}".encode())
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        err = f.read().decode()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), err
