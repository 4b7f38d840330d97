"""Generated /proc trees for the noise tests (fixtures/gen_noise.py), read as watch reads them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from pinctl.kernel.counters import Sample, take
from pinctl.kernel.files import KernelFiles

REPO = Path(__file__).resolve().parents[1]


def _gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_noise", REPO / "fixtures" / "gen_noise.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_noise"] = module
    spec.loader.exec_module(module)
    return module


gen = _gen()
SECOND = 10**9


def two_samples(tmp_path: Path, before: object, after: object, pids: tuple[int, ...] = (), *,
                scan: bool = True, numa: bool = False,
                homes: dict[int, frozenset[int]] | None = None) -> tuple[Sample, Sample]:  # fmt: skip
    """Write *before*, read it, write *after*, read it: a second apart. *homes*: each pid's CPUs."""
    files = KernelFiles(str(tmp_path))
    gen.write(tmp_path, before)
    a = take(files, {0, 1}, pids, 100, scan=scan, numa=numa, clock=0, homes=homes)
    gen.write(tmp_path, after)
    b = take(files, {0, 1}, pids, 100, scan=scan, numa=numa, clock=SECOND, homes=homes)
    return a, b


def node_with_busy_neighbour(busy_ns: int) -> object:
    """Two CPUs; a process 500 ("hog") on CPU 1; a 2-thread rank 700 on CPU 0."""
    node = gen.Node(2)
    node.threads = [gen.Thread(500, 500, "hog", run_ns=busy_ns, processor=1, cpus="1", slices=busy_ns // 10**6),
                    gen.Thread(700, 700, "train", processor=0, cpus="0"),
                    gen.Thread(700, 701, "train", processor=0, cpus="0")]  # fmt: skip
    return node
