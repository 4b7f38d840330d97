"""The watcher's own cost: one ``watch`` interval's CPU time on a big node, as a share of the interval.

Run: .venv/bin/python bench/bench_watch.py [CPUS] [THREADS]   (default 224 CPUs, 20,000 threads)

The node is a generated /proc (fixtures/gen_noise.py: 300 device IRQs, 1,000 processes of 20
threads); 8 ranks of 20 threads are watched on all its CPUs, as on an 8-GPU node. Measured with
``time.process_time`` (this process's CPU time, what the watcher takes from the node) over
repeated intervals, for a quiet interval (per-CPU counters and the ranks' own threads) and for an
interval that names offenders (every thread read too). The goal is a quiet interval under 1% of
a 1 s interval; the scan is paid only while foreign time is notable.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "fixtures"))

import gen_noise  # noqa: E402

from pinctl.kernel.counters import take  # noqa: E402
from pinctl.kernel.files import KeptOpen, KernelFiles  # noqa: E402
from pinctl.kernel.interrupts import Memo  # noqa: E402
from pinctl.noise.figures import Target, compute_all  # noqa: E402
from pinctl.noise.report import Bounds, watch_doc  # noqa: E402


def interval_cost(root: Path, node: gen_noise.Node, targets: list[Target], *, scan: bool, reps: int) -> float:
    """Median CPU seconds of one interval: read the sample, compute every target, build the document.
    Between intervals the counters move as on a busy node (gen_noise.tick: every CPU's time and
    timer, a tenth of the device IRQs), written outside the measured time."""
    files = KernelFiles(str(root))
    cpus = frozenset().union(*(t.cpus for t in targets))
    pids = tuple(p for t in targets for p in t.pids)
    memo: Memo = {}
    kept = KeptOpen(files)
    prev = take(files, cpus, pids, 100, scan=scan, memo=memo, kept=kept)
    costs = []
    for step in range(reps):
        gen_noise.tick(node, step)
        gen_noise.write_counters(root, node)
        start = time.process_time()
        cur = take(files, cpus, pids, 100, scan=scan, memo=memo, kept=kept)
        figures = compute_all(prev, cur, targets, 100)
        watch_doc("bench", 1, 0.0, figures, {}, bounds=Bounds())
        costs.append(time.process_time() - start)
        prev = cur
    kept.close()
    return statistics.median(costs)


def main() -> None:
    n_cpus = int(sys.argv[1]) if len(sys.argv) > 1 else 224
    n_threads = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    with tempfile.TemporaryDirectory() as tmp:
        node = gen_noise.big(n_cpus, n_threads)
        per = n_cpus // 8
        for t in node.threads:  # the 8 ranks' threads are pinned to their CPUs, as pinctl launch pins them
            if t.pid < 1000 + 20 * 8:
                rank = (t.pid - 1000) // 20
                t.cpus, t.processor = f"{rank * per}-{(rank + 1) * per - 1}", rank * per
        gen_noise.write(Path(tmp), node)
        targets = [Target(f"rank {r}", "rank", frozenset(range(r * per, (r + 1) * per)), (1000 + 20 * r,))
                   for r in range(8)]  # fmt: skip
        quiet = interval_cost(Path(tmp), node, targets, scan=False, reps=20)
        scanning = interval_cost(Path(tmp), node, targets, scan=True, reps=3)
    print(f"node: {n_cpus} CPUs, {n_threads} threads; 8 ranks of 20 threads watched")
    print("| interval | CPU time | share of a 1 s interval |")
    print("|---|---|---|")
    print(f"| quiet (per-CPU counters, the ranks' threads) | {quiet * 1e3:.1f} ms | {quiet * 100:.2f}% (goal < 1%) |")
    print(f"| naming offenders (every thread read) | {scanning * 1e3:.0f} ms | {scanning * 100:.1f}% |")


if __name__ == "__main__":
    main()
