"""How long ``pinctl launch --plan P -- /bin/true`` takes from start to exec, beside numactl, taskset, python.

P is what users launch from: a plan made by ``pinctl plan --json -o P`` on this machine.

Usage: python bench/bench_launch.py [--runs N]. Prints the median wall time of N runs
of each command (interleaved, so drift hits all alike) and its ratio to a bare
``python -c pass`` of the same interpreter; the goal is ``launch --plan`` within 2x
of it (issue 8). Bytecode is compiled first, as an installed package has it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import ensure_bytecode, run_once

GOAL = 2.0  # launch --plan within 2x a bare `python -c pass`


def write_plan(directory: str, python: str) -> str:
    """The plan users launch from: ``pinctl plan --json -o`` on this machine (one rank per GPU;
    on a node without GPUs, CPU-only ranks, as many as its CPUs up to 8)."""
    path = str(Path(directory) / "plan.json")
    plan = [python, "-m", "pinctl", "plan", "--json", "-o", path]
    made = subprocess.run(plan, capture_output=True, text=True, check=False)
    if made.returncode != 0 and "no GPU" in made.stderr:
        ranks = str(min(8, len(os.sched_getaffinity(0))))
        made = subprocess.run([*plan, "--ranks", ranks], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        sys.exit(f"pinctl plan failed: {made.stderr.strip()}")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    python = sys.executable
    ensure_bytecode()
    true = shutil.which("true") or "/bin/true"
    with tempfile.TemporaryDirectory() as tmp:
        plan = write_plan(tmp, python)
        ranks = len(json.loads(Path(plan).read_text())["ranks"])
        print(f"plan: pinctl plan --json -o P on this machine, {ranks} ranks")
        script = Path(python).with_name("pinctl")
        commands: dict[str, list[str]] = {"python -c pass": [python, "-c", "pass"]}
        if script.exists():
            commands["pinctl launch --plan P -- true"] = [str(script), "launch", "--plan", plan, "--local-rank", "0",
                                                          "--", true]  # fmt: skip
        commands["python -m pinctl launch --plan P -- true"] = [
            python, "-m", "pinctl", "launch", "--plan", plan, "--local-rank", "0", "--", true,
        ]  # fmt: skip
        commands["pinctl launch -C 0 -- true (click path)"] = [python, "-m", "pinctl", "launch", "-C", "0", "--", true]
        if shutil.which("numactl"):
            commands["numactl --physcpubind=0 true"] = [shutil.which("numactl") or "", "--physcpubind=0", true]
        if shutil.which("taskset"):
            commands["taskset -c 0 true"] = [shutil.which("taskset") or "", "-c", "0", true]
        commands["true"] = [true]
        for argv in commands.values():  # warm the page cache
            run_once(argv)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, argv in commands.items():
                samples[name].append(run_once(argv))
    base = statistics.median(samples["python -c pass"])
    print(f"{'command':45} {'median ms':>10} {'x python -c pass':>17}")
    for name, times in samples.items():
        med = statistics.median(times)
        print(f"{name:45} {med * 1000:10.2f} {med / base:17.2f}")
    fast = statistics.median(samples["python -m pinctl launch --plan P -- true"]) / base
    verdict = "ok" if fast <= GOAL else "OVER"
    print(f"launch --plan fast path: {fast:.2f}x python -c pass (goal <= {GOAL:g}x): {verdict}")


if __name__ == "__main__":
    main()
