"""Running the pinctl CLI over the stand-in libnvidia-ml.so.1 (tests/nvmlshim), as an operator would.

NVIDIA's real binding (nvidia-ml-py) dlopens libnvidia-ml.so.1 by name, and the loader reads
LD_LIBRARY_PATH only when a process starts, so every case runs pinctl in a child process with
LD_LIBRARY_PATH naming the shim and FAKE_NVML_CONFIG describing the node
(tests/nvmlshim/README.md). Two things a test machine lacks are given to that child alone:

* GPU device files and GPUs bound to the nvidia driver: the child runs in its own mount namespace
  (``unshare --mount``, root only) with a tmpfs on /dev holding /dev/nvidiaN, and one on
  /sys/bus/pci/devices holding NVIDIA functions whose ``driver`` link names nvidia. Only checks
  that need no topology may run over that fake /sys (hwloc would read it too).
* a caller without root: the child sets its effective user to ``nobody`` once pinctl, pynvml and
  what they import are loaded (this interpreter may live under root's home, which ``nobody`` cannot
  read), for NVML's MIG rule that only root may list a MIG GPU's processes (the shim asks geteuid()).
"""

from __future__ import annotations

import atexit
import json
import os
import pickle
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

PINCTL = [sys.executable, "-m", "pinctl"]
# pinctl as nobody: everything it will import is loaded first, then the effective ids are dropped.
_AS_NOBODY = """
import ctypes, importlib, json, logging, os, pkgutil, pwd, sys
import pynvml
import pinctl
for module in pkgutil.walk_packages(pinctl.__path__, "pinctl."):
    importlib.import_module(module.name)
from pinctl.cli.main import main
from pinctl.discovery.hwloc.isolated import ensure_pyhwloc
ensure_pyhwloc()
user = pwd.getpwnam("nobody")
os.setegid(user.pw_gid)
os.seteuid(user.pw_uid)
sys.exit(main(sys.argv[1:]))
"""
REPO = Path(__file__).resolve().parents[1]
# The stand-in's default node: eight H100s at these PCI addresses (tests/nvmlshim/README.md).
SHIM_BUS_IDS = ("0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0",
                "0000:9a:00.0", "0000:ab:00.0", "0000:ba:00.0", "0000:db:00.0")  # fmt: skip


def shim_node(shim: Path, config: str, *, r470: bool = False) -> dict[str, str]:
    """The environment that makes pinctl's NVML the stand-in describing *config* (a world-readable copy,
    so a child that drops root can load it too)."""
    folder = Path(tempfile.mkdtemp(prefix="pinctl-nvml-"))  # not under pytest's 0700 tree: nobody reads it too
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    folder.chmod(0o755)
    lib = folder / "lib"
    shutil.copytree(shim / "r470" if r470 else shim, lib, ignore=shutil.ignore_patterns("r470"))
    conf = folder / "node.conf"
    conf.write_text(config)
    for path in (lib, *lib.iterdir(), conf):
        path.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUDA_", "NVIDIA_", "SLURM_"))}
    env.update(LD_LIBRARY_PATH=str(lib), FAKE_NVML_CONFIG=str(conf), PYTHONPATH=str(REPO), NO_COLOR="1", COLUMNS="200")
    return env


def _namespace_script(args: Sequence[str], dev_gpus: Sequence[int], sys_gpus: Sequence[str], driver: str | None) -> str:
    """A shell script that gives this mount namespace a /dev with GPU files and a fake PCI bus, then runs *args*."""
    lines = ["set -e", "mount -t tmpfs pinctl-dev /dev"]
    lines += [f"mknod -m 666 /dev/{n} c 1 {m}" for n, m in (("null", 3), ("zero", 5), ("random", 8), ("urandom", 9))]
    lines += ["ln -s /proc/self/fd /dev/fd"]
    lines += [f"touch /dev/nvidia{i} && chmod 666 /dev/nvidia{i}" for i in dev_gpus]
    if sys_gpus:
        lines += ["mount -t tmpfs pinctl-pci /sys/bus/pci/devices", f"mkdir -p /tmp/pinctl-drivers/{driver or 'none'}"]
        for bus in sys_gpus:
            d = f"/sys/bus/pci/devices/{bus}"
            lines += [
                f"mkdir {d}",
                f"echo 0x030200 > {d}/class",
                f"echo 0x10de > {d}/vendor",
                f"echo 0x2330 > {d}/device",
            ]
            lines += [f"ln -s /tmp/pinctl-drivers/{driver} {d}/driver"] if driver else []
    lines.append("exec " + shlex.join(args))
    return "\n".join(lines)


def run_pinctl(
    args: Sequence[str],
    env: dict[str, str],
    *,
    dev_gpus: int | Sequence[int] | None = None,
    sys_gpus: Sequence[str] = (),
    sys_driver: str | None = "nvidia",
    as_nobody: bool = False,
    timeout: float = 240,
) -> subprocess.CompletedProcess[str]:
    """``pinctl ARGS`` under *env*; with *dev_gpus* / *sys_gpus* in a mount namespace holding those
    /dev/nvidiaN files (N: 0..dev_gpus-1, or the minors listed) and those NVIDIA functions bound to
    the driver (*sys_driver*: another driver's name, or None for none bound); with *as_nobody* without root."""
    argv = [*PINCTL, *args]
    if as_nobody:
        if os.geteuid() != 0:
            pytest.skip("dropping to another user needs root")
        argv = [sys.executable, "-c", _AS_NOBODY, *args]
    if dev_gpus is not None or sys_gpus:
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            pytest.skip("a private /dev and /sys need root and unshare")
        minors = range(dev_gpus) if isinstance(dev_gpus, int) else dev_gpus or ()
        script = _namespace_script(argv, minors, sys_gpus, sys_driver)
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, cwd="/", check=False)


def findings(result: subprocess.CompletedProcess[str]) -> dict[str, list[dict[str, Any]]]:
    """``doctor --json``'s findings by check id."""
    assert "Traceback" not in result.stderr, result.stderr
    report = json.loads(result.stdout)
    out: dict[str, list[dict[str, Any]]] = {}
    for f in report["findings"]:
        out.setdefault(f["check"], []).append(f)
    return out


def levels_of(found: dict[str, list[dict[str, Any]]], check: str) -> list[str]:
    return [f["level"] for f in found.get(check, [])]


def query_in_child(env: dict[str, str], name: str) -> Any:
    """``pinctl.discovery.nvml.<name>()`` run in a child under *env*: its frozen answer, unpickled here."""
    code = (
        f"import pickle, sys\nfrom pinctl.discovery import nvml\nsys.stdout.buffer.write(pickle.dumps(nvml.{name}()))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return pickle.loads(done.stdout)
