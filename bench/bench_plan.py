"""Time the planner: make_plan on the largest fixture and on a generated 2 x 192-core, 16-GPU, 16-NIC node.

Run: .venv/bin/python bench/bench_plan.py  (prints ratios to ``python -c pass``).
Planning is in-process (discovery excluded), so the ratio says how much of a
Python start-up one plan costs; it must stay well under a second.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))
from nodes import Layout, NicSpec, build_node  # noqa: E402
from timing import baseline_ms, ensure_bytecode, median_ms, report  # noqa: E402

from pinctl.model import Node  # noqa: E402
from pinctl.plan.make import make_plan  # noqa: E402
from pinctl.plan.request import PlanRequest  # noqa: E402


def big_node() -> Node:
    """2 sockets x 4 NUMA nodes x 6 L3 groups x 8 cores, SMT 2 (768 PUs); 2 GPUs and 2 HCAs per NUMA node."""
    places = [(numa, hb, 0) for numa in range(8) for hb in range(2)]
    return build_node(
        Layout(
            packages=2,
            numa_per_package=4,
            l3_per_numa=6,
            cores_per_l3=8,
            smt=2,
            gpus=tuple(places),
            nics=tuple(NicSpec(p) for p in places),
            storage=tuple(places[::2]),
            hostname="big",
        )
    )


def time_ms(fn: Callable[[], object], runs: int = 15) -> float:
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    ensure_bytecode()
    rows: list[tuple[str, float]] = []
    fixtures = sorted((ROOT / "fixtures" / "hwloc").glob("*.xml"), key=lambda p: p.stat().st_size)
    if fixtures:
        try:
            from pinctl.discovery import discover
        except ImportError:
            discover = None  # type: ignore[assignment]
        if discover is not None:
            largest = fixtures[-1]
            node = discover(topology=str(largest), nvml=False)
            rows.append((f"make_plan {largest.name}", time_ms(lambda: make_plan(node, PlanRequest()))))
            rows.append(
                (
                    f"pinctl plan --json --topology {largest.name}",
                    median_ms([sys.executable, "-m", "pinctl", "plan", "--json", "--topology", str(largest)]),
                )
            )
    big = big_node()
    rows.append(("make_plan 2x192c SMT, 16 GPU, 16 NIC", time_ms(lambda: make_plan(big, PlanRequest()))))
    rows.append(
        (
            "make_plan same, 4 procs/GPU, 2 NICs/GPU",
            time_ms(lambda: make_plan(big, PlanRequest(procs_per_gpu=4, nics_per_gpu=2))),
        )
    )
    rows.append(("make_plan same, --ranks 384 CPU-only", time_ms(lambda: make_plan(big, PlanRequest(ranks=384)))))
    report(rows, baseline_ms())


if __name__ == "__main__":
    main()
