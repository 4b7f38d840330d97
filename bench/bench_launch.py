"""How long ``pinctl launch --plan P -- /bin/true`` takes from start to exec, beside numactl, taskset, python.

Usage: python bench/bench_launch.py [--runs N]. P is what users launch from: a plan made by
``pinctl plan --json -o P`` on this machine. pinctl runs as an installed package does: from a
throwaway venv whose site-packages holds a plain path to this tree (no editable-install import
hook, which costs every python of a dev venv ~20 ms of pathlib and re and would hide pinctl's
own cost), its ``pinctl`` script as pip installs it. Prints the medians of N runs of each
command (interleaved, so drift hits all alike), wall time and CPU time (user + system: what the
command costs on an idle core), and their ratios to a bare ``python -c pass`` of that venv; the
goal is ``launch --plan`` within 2x of it. The ``pinctl`` command is bin/pinctl, not a
console_scripts entry point, whose template imports ``re`` first. Bytecode is compiled first, as pip does.
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
from timing import ensure_bytecode, run_timed

GOAL = 2.0  # launch --plan within 2x a bare `python -c pass`
ROOT = Path(__file__).resolve().parents[1]
# The command pip installs: bin/pinctl with its "#!python" line rewritten to the venv's python.
SCRIPT = (ROOT / "bin" / "pinctl").read_text().replace("#!python", "#!{python}", 1)


def installed_venv(directory: str) -> tuple[str, str]:
    """(python, pinctl script) of a venv where pinctl is importable as an installed package is."""
    venv = Path(directory) / "venv"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(venv)],
                   check=True)  # fmt: skip
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "pinctl-tree.pth").write_text(f"{ROOT}\n")
    python = str(venv / "bin" / "python")
    script = venv / "bin" / "pinctl"
    script.write_text(SCRIPT.format(python=python))
    script.chmod(0o755)
    return python, str(script)


def write_plan(directory: str) -> str:
    """The plan users launch from: ``pinctl plan --json -o`` on this machine (one rank per GPU;
    on a node without GPUs, CPU-only ranks, as many as its CPUs up to 8)."""
    path = str(Path(directory) / "plan.json")
    plan = [sys.executable, "-m", "pinctl", "plan", "--json", "-o", path]
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
    ensure_bytecode()
    true = shutil.which("true") or "/bin/true"
    with tempfile.TemporaryDirectory() as tmp:
        python, script = installed_venv(tmp)
        plan = write_plan(tmp)
        data = json.loads(Path(plan).read_text())
        gpus = sum(1 for r in data["ranks"] if r.get("gpu"))
        ranks = len(data["ranks"])
        print(f"plan: pinctl plan --json -o P on {data['node']['hostname']}: {ranks} ranks, {gpus} with a GPU")
        launch = ["launch", "--plan", plan, "--local-rank", "0", "--", true]
        commands: dict[str, list[str]] = {
            "python -c pass": [python, "-c", "pass"],
            "pinctl launch --plan P -- true": [script, *launch],
            "python -m pinctl launch --plan P -- true": [python, "-m", "pinctl", *launch],
            "pinctl launch -C 0 -- true (no plan)": [script, "launch", "-C", "0", "--", true],
        }
        if shutil.which("numactl"):
            commands["numactl --physcpubind=0 true"] = [shutil.which("numactl") or "", "--physcpubind=0", true]
        if shutil.which("taskset"):
            commands["taskset -c 0 true"] = [shutil.which("taskset") or "", "-c", "0", true]
        commands["true"] = [true]
        for argv in commands.values():  # warm the page cache
            run_timed(argv)
        wall: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, argv in commands.items():
                w, c = run_timed(argv)
                wall[name].append(w)
                cpu[name].append(c)
    base_wall, base_cpu = statistics.median(wall["python -c pass"]), statistics.median(cpu["python -c pass"])
    print(f"{'command':42} {'wall ms':>8} {'x pass':>7} {'cpu ms':>8} {'x pass':>7}")
    for name in commands:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        print(f"{name:42} {w * 1000:8.2f} {w / base_wall:7.2f} {c * 1000:8.2f} {c / base_cpu:7.2f}")
    for name in ("python -m pinctl launch --plan P -- true", "pinctl launch --plan P -- true"):
        wall_x = statistics.median(wall[name]) / base_wall
        cpu_x = statistics.median(cpu[name]) / base_cpu
        verdict = "ok" if max(wall_x, cpu_x) <= GOAL else "OVER"
        print(f"{name}: {wall_x:.2f}x python -c pass (wall), {cpu_x:.2f}x (cpu); goal <= {GOAL:g}x: {verdict}")


if __name__ == "__main__":
    main()
