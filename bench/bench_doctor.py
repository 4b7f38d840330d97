"""Time ``pinctl doctor`` on the DGX-like doctor tree (with the DGX H100 topology when present) and live.

Run: .venv/bin/python bench/bench_doctor.py  (prints ratios to ``python -c pass``).
A health check runs on every node every few minutes, so it should stay well under a second.
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
    pinctl = [sys.executable, "-m", "pinctl", "doctor"]
    tree = ROOT / "fixtures" / "doctor" / "dgx"
    topo = ROOT / "fixtures" / "hwloc" / "dgx-h100.xml"
    rows: list[tuple[str, float]] = []
    if tree.is_dir():
        args = [*pinctl, "--root", str(tree), "--json"]
        if topo.is_file():
            rows.append(
                ("doctor --root dgx --topology dgx-h100.xml --json", median_ms([*args, "--topology", str(topo)]))
            )
        else:
            print(f"note: {topo.relative_to(ROOT)} not found; timing without --topology", file=sys.stderr)
        rows.append(("doctor --root dgx --json", median_ms(args)))
    else:
        print("note: fixtures/doctor/dgx missing (run fixtures/gen_doctor.py)", file=sys.stderr)
    rows.append(("doctor --json (live)", median_ms([*pinctl, "--json"])))
    rows.append(("doctor (plain, live)", median_ms(pinctl, env={**os.environ, "NO_COLOR": "1"})))
    report(rows, baseline_ms())


if __name__ == "__main__":
    main()
