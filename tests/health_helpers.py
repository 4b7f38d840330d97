"""Helpers for the node-health tests: NVML answers through the real binding over tests/nvmlshim,
and the kernel trees fixtures/gen_health.py writes.

pynvml binds libnvidia-ml.so.1 once per process, from LD_LIBRARY_PATH as the process started,
so each NVML question runs in a child process pointed at the shim; its frozen answer comes
back pickled.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import subprocess
import sys
from pathlib import Path

from pinctl.discovery.nvml import NvmlHealth, NvmlUnavailable
from pinctl.doctor import DoctorContext
from pinctl.kernel.files import KernelFiles
from pinctl.model import Node

REPO = Path(__file__).resolve().parents[1]
_QUERY = (
    "import pickle, sys\nfrom pinctl.discovery.nvml import query_health\n"
    "sys.stdout.buffer.write(pickle.dumps(query_health()))\n"
)


def shim_env(shim: Path, config: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(LD_LIBRARY_PATH=str(shim), FAKE_NVML_CONFIG=str(config), PYTHONPATH=str(REPO))
    return env


def nvml_health(shim: Path, tmp_path: Path, config: str = "") -> NvmlHealth:
    """query_health() as NVIDIA's binding sees the shim configured by *config* (its key = value lines)."""
    conf = tmp_path / f"nvml-{abs(hash(config))}.conf"
    conf.write_text(config, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", _QUERY], env=shim_env(shim, conf), capture_output=True, check=True, timeout=120
    )
    health = pickle.loads(done.stdout)
    assert not isinstance(health, NvmlUnavailable), health
    assert isinstance(health, NvmlHealth)
    return health


def health_trees(outdir: Path) -> dict[str, Path]:
    """fixtures/gen_health.py's trees (healthy, sick, nonroot) written under *outdir*."""
    spec = importlib.util.spec_from_file_location("gen_health", REPO / "fixtures" / "gen_health.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    trees: dict[str, Path] = module.write(outdir)
    return trees


def context(
    root: Path | str = "/nonexistent", node: Node | None = None, health: NvmlHealth | None = None
) -> DoctorContext:
    return DoctorContext(
        files=KernelFiles(str(root)), node=node, health=health, nvml_note="NVML not queried in this test"
    )


def by_level(findings: list) -> dict[str, list[str]]:  # type: ignore[type-arg]
    """{level: [subject: summary, ...]} for assertions a reader can follow."""
    out: dict[str, list[str]] = {}
    for f in findings:
        out.setdefault(f.severity, []).append(f"{f.subject}: {f.summary}")
    return out
