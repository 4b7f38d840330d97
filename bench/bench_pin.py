"""Re-pinning a process with 500 threads: ``pinctl pin PID --cpus X`` beside ``taskset -a -p``.

Usage: python bench/bench_pin.py [--runs N] [--threads T]. Each run moves every
thread to the other CPU (so each run does the work), median of N runs, ratio to a
bare ``python -c pass``; the goal is within 3x of it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import ensure_bytecode, run_once

THREADS_SRC = """
import sys, threading, time
ev = threading.Event()
for _ in range(int(sys.argv[1])):
    threading.Thread(target=ev.wait, daemon=True).start()
print("ready", flush=True)
time.sleep(600)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=500)
    args = parser.parse_args()
    ensure_bytecode()
    cpus = sorted(os.sched_getaffinity(0))
    targets = [str(cpus[0]), str(cpus[-1])]
    python = sys.executable
    proc = subprocess.Popen([python, "-c", THREADS_SRC, str(args.threads)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        pid = str(proc.pid)
        ntasks = len(os.listdir(f"/proc/{pid}/task"))
        null = open(os.devnull, "w")  # noqa: SIM115 - kept for the whole run
        os.dup2(null.fileno(), 1)  # the commands print one line per run
        commands = {
            "python -c pass": lambda _cpu: [python, "-c", "pass"],
            "python -m pinctl pin PID --cpus X": lambda cpu: [python, "-m", "pinctl", "pin", pid, "--cpus", cpu],
        }
        script = shutil.which("pinctl", path=os.path.dirname(python))
        if script:
            commands["pinctl pin PID --cpus X"] = lambda cpu: [script, "pin", pid, "--cpus", cpu]
        taskset = shutil.which("taskset")
        if taskset:
            commands["taskset -a -p -c X PID"] = lambda cpu: [taskset, "-a", "-p", "-c", cpu, pid]
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for i in range(args.runs + 1):
            for name, make in commands.items():
                t = run_once(make(targets[i % 2]))
                if i:  # the first round warms caches
                    samples[name].append(t)
        from pinctl.act.pin import pin_threads

        inproc = []
        for i in range(args.runs):
            start = time.perf_counter()
            assert pin_threads(proc.pid, frozenset({int(targets[i % 2])})).ok
            inproc.append(time.perf_counter() - start)
    finally:
        proc.kill()
        proc.wait()
    base = statistics.median(samples["python -c pass"])
    out = sys.stderr
    print(f"process with {ntasks} threads, {args.runs} runs", file=out)
    print(f"{'command':40} {'median ms':>10} {'x python -c pass':>17}", file=out)
    for name, times in samples.items():
        med = statistics.median(times)
        print(f"{name:40} {med * 1000:10.2f} {med / base:17.2f}", file=out)
    print(f"{'pin_threads() in process':40} {statistics.median(inproc) * 1000:10.2f}", file=out)


if __name__ == "__main__":
    main()
