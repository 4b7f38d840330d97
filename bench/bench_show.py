"""Time ``pinctl show --json`` on the largest fixture and on this machine.

Run: .venv/bin/python bench/bench_show.py  (prints ratios to ``python -c pass``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import baseline_ms, ensure_bytecode, median_ms, report

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ensure_bytecode()
    fixtures = sorted((ROOT / "fixtures" / "hwloc").glob("*.xml"), key=lambda p: p.stat().st_size)
    pinctl = [sys.executable, "-m", "pinctl"]
    rows: list[tuple[str, float]] = []
    if fixtures:
        largest = fixtures[-1]
        rows.append(
            (
                f"show --json --topology {largest.name}",
                median_ms([*pinctl, "show", "--json", "--topology", str(largest)]),
            )
        )
    rows.append(("show --json (live)", median_ms([*pinctl, "show", "--json"])))
    rows.append(("show --json --no-nvml (live)", median_ms([*pinctl, "show", "--json", "--no-nvml"])))
    env = {**os.environ, "NO_COLOR": "1"}
    rows.append(("show (plain, live)", median_ms([*pinctl, "show"], env=env)))
    report(rows, baseline_ms())


if __name__ == "__main__":
    main()
