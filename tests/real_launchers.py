"""Real Slurm, Open MPI and MPICH for the tests, brought up by the tests from Debian's packages.

A single-node Slurm (munge, slurmctld, slurmd) with task/cgroup and task/affinity runs on
localhost from a private slurm.conf in a temporary folder, on ports nobody else uses, so
it never meets a Slurm the machine may have: its node has a name of its own (``pt<pid>x<hex>``,
``NodeHostname`` the real host), so its cgroup folders (``slurm_<node>/uid_0/job_N``) and job
numbers cannot collide with another slurmd on the host, and its state and spool folders are in
the temporary folder. Everything started here is stopped by PID; then every process left in
this cluster's cgroups and every slurmstepd it started (one that ignores SIGTERM included) is
killed with SIGKILL, and the empty cgroup folders Slurm leaves behind are removed. Setup facts are in
../shared/notes/real-launchers.md. The tests skip only where this is impossible: not
root (packages cannot be installed, daemons cannot run), or no package registry.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge", "openmpi-bin", "mpich", "numactl")
TOOLS = ("slurmctld", "slurmd", "srun", "sbatch", "munged", "mungekey", "mpirun.openmpi", "mpiexec.hydra", "numactl")
SBIN = ("/usr/sbin", "/sbin")


def which(tool: str) -> str | None:
    return shutil.which(tool) or next((f"{d}/{tool}" for d in SBIN if os.access(f"{d}/{tool}", os.X_OK)), None)


def ensure_packages() -> str | None:
    """Install what is missing; None when everything is there, else why it cannot be."""
    if all(which(t) for t in TOOLS):
        return None
    if os.geteuid() != 0:
        return "not root: cannot install Slurm, Open MPI and MPICH"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES])
    for argv in steps:
        res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
        if res.returncode != 0:
            return f"{' '.join(argv[:2])} failed (no package registry?): {res.stderr.strip()[-300:]}"
    missing = [t for t in TOOLS if not which(t)]
    return f"installed, but {', '.join(missing)} missing" if missing else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {timeout:g} s")


class Slurm:
    """A private single-node cluster; :attr:`env` points srun/sbatch at it."""

    def __init__(self, folder: Path, gpu_files: tuple[str, ...] = ()) -> None:
        """*gpu_files*: device files for gres.conf's ``Name=gpu File=`` lines (fake ones do: Slurm only
        stats them with ConstrainDevices=no), so --gres=gpu:N sets CUDA_VISIBLE_DEVICES and SLURM_*_GPUS."""
        self.folder = folder
        self.gpu_files = gpu_files
        self.host = socket.gethostname().split(".")[0]
        self.node = f"pt{os.getpid()}x{secrets.token_hex(3)}"  # this cluster's own node name, never the host's
        self.started: list[subprocess.Popen[bytes]] = []
        self.conf = folder / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *argv: str, timeout: float = 60, **kw: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=timeout,
                              check=False, **kw)  # type: ignore[call-overload]  # fmt: skip

    def _spawn(self, argv: list[str], log: str, **kw: object) -> None:
        out = open(self.folder / log, "wb")  # noqa: SIM115 - the daemon writes it until stopped
        self.started.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                             **kw))  # type: ignore[call-overload]  # fmt: skip

    def start(self) -> None:
        self._munge()
        self._write_conf()
        self._spawn([which("slurmctld") or "slurmctld", "-D", "-i", "-f", str(self.conf)], "slurmctld.out")
        _wait(lambda: "UP" in self.run("scontrol", "ping").stdout, "slurmctld")
        self._spawn([which("slurmd") or "slurmd", "-D", "-N", self.node, "-f", str(self.conf)], "slurmd.out")

        def idle() -> bool:
            state = self.run("sinfo", "-h", "-o", "%T").stdout.strip()
            if state.startswith("down") or state.startswith("drain"):
                self.run("scontrol", "update", f"nodename={self.node}", "state=resume")
            return state == "idle"

        _wait(idle, "slurmd")

    def _munge(self) -> None:
        if subprocess.run("munge -n | unmunge", shell=True, capture_output=True, check=False).returncode == 0:
            return  # a munged is already serving this machine: use it, and leave it alone
        for d in ("/run/munge", "/var/log/munge", "/var/lib/munge", "/etc/munge"):
            os.makedirs(d, exist_ok=True)
            shutil.chown(d, "munge", "munge")
        if not os.path.exists("/etc/munge/munge.key"):
            subprocess.run([which("mungekey") or "mungekey", "--create"], check=True, capture_output=True)
        shutil.chown("/etc/munge/munge.key", "munge", "munge")
        self._spawn([which("munged") or "munged", "--foreground"], "munged.out", user="munge")
        _wait(lambda: subprocess.run("munge -n | unmunge", shell=True, capture_output=True,
                                     check=False).returncode == 0, "munged")  # fmt: skip

    def _write_conf(self) -> None:
        d = self.folder
        (d / "state").mkdir()
        (d / "spool").mkdir()
        probe = subprocess.run([which("slurmd") or "slurmd", "-C"], capture_output=True, text=True, check=True)
        node_line = probe.stdout.splitlines()[0]
        words = {"RealMemory": "RealMemory=1000", "NodeName": f"NodeName={self.node} NodeHostname={self.host}"}
        node_line = " ".join(words.get(w.partition("=")[0], w) for w in node_line.split())
        gres = ""
        if self.gpu_files:
            node_line += f" Gres=gpu:{len(self.gpu_files)}"
            gres = "GresTypes=gpu\n"
            (d / "gres.conf").write_text("".join(f"Name=gpu File={f}\n" for f in self.gpu_files))
        self.conf.write_text(f"""ClusterName=pinctltest
SlurmctldHost={self.host}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup,task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
{gres}{node_line} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=test Nodes={self.node} Default=YES MaxTime=10 State=UP
""")
        (d / "cgroup.conf").write_text(
            "CgroupPlugin=autodetect\nConstrainCores=yes\nConstrainRAMSpace=no\nConstrainDevices=no\n"
        )

    def stop(self) -> None:
        """Stop what was started, by PID, newest first; SIGKILL what remains of this cluster (its
        slurmstepds and job processes, which outlive slurmd); then remove its empty cgroup folders."""
        for proc in reversed(self.started):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for _ in range(50):
            left = self.leftovers()
            if not left:
                break
            for pid in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        self._remove_cgroups()

    def _cgroups(self) -> list[Path]:
        """This cluster's cgroup v1 folders (one per controller)."""
        return sorted(Path("/sys/fs/cgroup").glob(f"*/slurm_{self.node}"))

    def leftovers(self) -> list[int]:
        """PIDs this cluster left behind: every process in its cgroups, and every process whose
        environment names this cluster's slurm.conf: slurmstepd (slurmd passes its environment on),
        the job's tasks and srun clients (srun exports the caller's, which names it too)."""
        pids: set[int] = set()
        for top in self._cgroups():
            for procs in top.rglob("cgroup.procs"):
                with contextlib.suppress(OSError, ValueError):
                    pids.update(int(line) for line in procs.read_text().split())
        mark = f"SLURM_CONF={self.conf}".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if mark in (entry / "environ").read_bytes().split(b"\0"):
                    pids.add(int(entry.name))
        pids.discard(os.getpid())
        return sorted(pids)

    def _remove_cgroups(self) -> None:
        for controller in self._cgroups():
            # cgroup folders hold only the kernel's control files: rmdir takes them, deepest first
            folders = [p for p in controller.rglob("*") if p.is_dir()]
            for folder in [*sorted(folders, key=lambda p: -len(p.parts)), controller]:
                with contextlib.suppress(OSError):
                    folder.rmdir()


TORCH = "torch==2.13.0"  # the CPU-only build this machine kind keeps on disk for Python 3.11 (env docs)
TORCH_VENV = Path.home() / ".cache" / "pinctl-tests" / "torch-venv"


def torchrun() -> tuple[str | None, str | None]:
    """(torchrun, None) from a Python 3.11 venv with a CPU-only torch, made once and kept in the
    user's cache (about 30 s, 0.9 GB); or (None, why it cannot be had in reasonable time)."""
    exe = TORCH_VENV / "bin" / "torchrun"
    if exe.exists():
        return str(exe), None
    python = shutil.which("python3.11")
    if python is None:
        return None, "no python3.11 for a CPU-only torch (PyPI's default torch is a CUDA build of several GB)"
    try:
        subprocess.run([python, "-m", "venv", str(TORCH_VENV)], check=True, capture_output=True, timeout=120)
        res = subprocess.run([str(TORCH_VENV / "bin" / "pip"), "install", "-q", TORCH], capture_output=True,
                             text=True, timeout=300, check=False)  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        res = None
        why = str(exc)
    else:
        why = res.stderr.strip()[-300:]
    if res is None or res.returncode != 0 or not exe.exists():
        shutil.rmtree(TORCH_VENV, ignore_errors=True)
        return None, f"cannot install {TORCH} for Python 3.11 in reasonable time: {why}"
    return str(exe), None
