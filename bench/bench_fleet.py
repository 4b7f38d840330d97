"""Time ``pinctl fleet`` on 20,000 generated reports against Python merely parsing the same files.

Run: .venv/bin/python bench/bench_fleet.py [NODES]   (default 20000: what a 160,000-GPU fleet of 8-GPU nodes sends)

The reports are real ``pinctl doctor --root --json`` output for fixtures/gen_fleet.py's (4-GPU) trees:
the healthy twin under 20,000 hostnames, with every planted node's report among them once per
thousand nodes. The baseline is ``json.load`` of every file in one interpreter, the least any
reader must do; the issue's bound is 3x. Peak RSS shows that memory follows shapes, not nodes.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARSE_ONLY = ("import json, os, sys\n"
              "d = sys.argv[1]\n"
              "for name in sorted(os.listdir(d)):\n"
              "    with open(os.path.join(d, name), encoding='utf-8') as f:\n"
              "        json.loads(f.read())\n")  # fmt: skip


def write_fleet(top: Path, nodes: int) -> int:
    """Write *nodes* report files under top/reports; returns how many are planted odd nodes."""
    subprocess.run(
        [sys.executable, str(ROOT / "fixtures" / "gen_fleet.py"), str(top / "trees"), "1"],
        check=True,
        capture_output=True,
    )
    reports: dict[str, str] = {}
    for tree in sorted((top / "trees").iterdir()):
        proc = subprocess.run(
            [sys.executable, "-m", "pinctl", "doctor", "--root", str(tree), "--json"],
            capture_output=True,
            text=True,
            check=False,
        )
        reports[tree.name] = proc.stdout
    healthy = json.loads(reports.pop("node-001"))
    planted = [json.loads(text) for text in reports.values()]
    out = top / "reports"
    out.mkdir()
    odd = 0
    for i in range(nodes):
        base = planted[(i // 1000) % len(planted)] if i % 1000 == 999 else healthy
        odd += base is not healthy
        report = {**base, "hostname": f"gpu{i:05d}"}
        (out / f"gpu{i:05d}.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    return odd


def timed(argv: list[str], stdin: Path | None = None) -> float:
    start = time.perf_counter()
    with open(stdin or "/dev/null", "rb") as f:
        subprocess.run(argv, stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def best(argv: list[str], runs: int = 3, stdin: Path | None = None) -> float:
    return min(timed(argv, stdin) for _ in range(runs))


def main(argv: list[str]) -> int:
    nodes = int(argv[1]) if len(argv) > 1 else 20000
    top = Path(tempfile.mkdtemp(prefix="pinctl-fleet-bench-"))
    try:
        odd = write_fleet(top, nodes)
        folder = str(top / "reports")
        parse = best([sys.executable, "-c", PARSE_ONLY, folder])
        fleet = best([sys.executable, "-m", "pinctl", "fleet", "--json", folder])
        stream = top / "srun-output.json"  # what srun prints: every report, one after another
        with open(stream, "w", encoding="utf-8") as out:
            for path in sorted((top / "reports").iterdir()):
                out.write(path.read_text(encoding="utf-8") + "\n")
        piped = best([sys.executable, "-m", "pinctl", "fleet", "--json"], stdin=stream)
        rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        proc = subprocess.run(
            [sys.executable, "-m", "pinctl", "fleet", "--json", folder], capture_output=True, text=True, check=False
        )
        named = len(json.loads(proc.stdout)["outliers"])
        print(f"{nodes} reports ({odd} planted odd nodes, {named} named, exit {proc.returncode})")
        print(f"  json.loads of every file : {parse * 1000:8.0f} ms")
        print(f"  pinctl fleet --json DIR  : {fleet * 1000:8.0f} ms   ratio {fleet / parse:.2f}x (bound: 3x)")
        print(f"  ... the same on stdin    : {piped * 1000:8.0f} ms   ratio {piped / parse:.2f}x")
        print(f"  peak RSS of the runs     : {rss_mib:8.0f} MiB")
        return 0 if max(fleet, piped) / parse <= 3 and named == odd else 1
    finally:
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
