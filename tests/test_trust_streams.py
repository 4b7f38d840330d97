"""Standard output and error as scripts and jobs hand them over (issue 20): closed (``>&-``), full
(``> /dev/full``), a reader gone (``| head``), ``COLUMNS=0``. Every case in a subprocess, as a shell
would start pinctl: EPIPE exits quietly (141), another write error is one line (74), ``launch``
still execs its command with the descriptors it was given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_terminal_views import in_pty

from pinctl.cpuset import format_list

REPO = Path(__file__).resolve().parents[1]
TOPOLOGY = str(REPO / "fixtures" / "hwloc" / "dgx-h100.xml")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("streams")
    plan = folder / "plan.json"
    report = folder / "report.json"
    for args, path in ((("plan", "--json"), plan), (("doctor", "--json", "--no-nvml"), report)):
        done = subprocess.run([sys.executable, "-m", "pinctl", *args, "--topology", TOPOLOGY], capture_output=True,
                              text=True, cwd=REPO, timeout=60)  # fmt: skip
        path.write_text(done.stdout)
        json.loads(done.stdout)
    return {"plan": str(plan), "report": str(report)}


def commands(files: dict[str, str]) -> dict[str, list[str]]:
    return {
        "show": ["show", "--topology", TOPOLOGY],
        "plan": ["plan", "--topology", TOPOLOGY],
        "doctor": ["doctor", "--topology", TOPOLOGY, "--no-nvml"],
        "fleet": ["fleet", files["report"]],
        "dry-run": ["launch", "--plan", files["plan"], "--local-rank", "0", "--force", "--dry-run", "--", "true"],
        "help": ["plan", "--help"],  # click probes the stream with a write and swallows the error: not a way out
    }


@pytest.fixture
def sleeper() -> Iterator[int]:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def run(args: list[str], *, stdout: int | None = None, stderr: int | None = subprocess.PIPE,
        close: tuple[int, ...] = ()) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """pinctl with its descriptors in *close* closed, as ``>&-`` leaves them."""

    def closing() -> None:
        for fd in close:
            os.close(fd)

    return subprocess.run([sys.executable, "-m", "pinctl", *args], stdout=stdout, stderr=stderr, text=True,
                          cwd=REPO, timeout=60, preexec_fn=closing)  # fmt: skip


def errors(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if not line.startswith("pinctl: warning:")]


def broken_pipe() -> tuple[int, Callable[[], None]]:
    """A pipe whose reader is gone: every write to it fails with EPIPE."""
    read, write = os.pipe()
    os.close(read)
    return write, lambda: os.close(write)


COMMANDS = ["show", "plan", "doctor", "fleet", "dry-run", "help"]


@pytest.mark.parametrize("name", COMMANDS)
def test_closed_stdout_is_one_line_not_a_traceback(files: dict[str, str], name: str) -> None:
    result = run(commands(files)[name], stdout=subprocess.DEVNULL, close=(1,))
    assert result.returncode == 74
    assert errors(result.stderr) == ["pinctl: error: cannot write to standard output: the stream is closed"]


@pytest.mark.parametrize("name", COMMANDS)
def test_a_full_disk_is_one_line_not_a_traceback(files: dict[str, str], name: str) -> None:
    with open("/dev/full", "w") as full:
        result = run(commands(files)[name], stdout=full.fileno())
    assert result.returncode == 74
    assert errors(result.stderr) == ["pinctl: error: cannot write to standard output: No space left on device"]


@pytest.mark.parametrize("name", COMMANDS)
def test_a_reader_gone_is_a_quiet_exit(files: dict[str, str], name: str) -> None:
    write, done = broken_pipe()
    try:
        result = run(commands(files)[name], stdout=write)
    finally:
        done()
    assert result.returncode == 141
    assert errors(result.stderr) == []


@pytest.mark.parametrize("name", ["show", "plan", "fleet"])
def test_closed_or_full_stderr_does_not_stop_a_command(files: dict[str, str], name: str) -> None:
    result = run(commands(files)[name], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close=(2,))
    assert result.returncode == 0
    assert result.stdout
    with open("/dev/full", "w") as full:
        both = run(commands(files)[name], stdout=full.fileno(), stderr=full.fileno())
    assert both.returncode == 74


def test_pin_fast_path_on_a_broken_pipe_and_a_full_disk(sleeper: int) -> None:
    cpus = format_list(os.sched_getaffinity(sleeper))  # where it already is: nothing moves
    args = ["pin", str(sleeper), "--cpus", cpus]
    write, done = broken_pipe()
    try:
        quiet = run(args, stdout=write)
    finally:
        done()
    assert quiet.returncode == 141
    assert errors(quiet.stderr) == []
    with open("/dev/full", "w") as full:
        loud = run(args, stdout=full.fileno())
    assert loud.returncode == 74
    assert errors(loud.stderr) == ["pinctl: error: cannot write to standard output: No space left on device"]


@pytest.mark.parametrize("closed", [1, 2])
@pytest.mark.parametrize("verbose", [False, True])
def test_launch_execs_with_the_streams_it_was_given(files: dict[str, str], tmp_path: Path, closed: int,
                                                    verbose: bool) -> None:  # fmt: skip
    """``launch`` writes warnings (--force) and -v to stderr; closed, they are dropped and it still execs."""
    listing = tmp_path / "fds"
    script = f"exec 3>{listing}; for fd in 0 1 2; do [ -e /proc/$$/fd/$fd ] && echo $fd >&3; done; exit 0"
    args = ["launch", "--plan", files["plan"], "--local-rank", "0", "--force", *(["-v"] if verbose else []), "--",
            "sh", "-c", script]  # fmt: skip
    result = run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close=(closed,))
    assert result.returncode == 0
    fds = set(listing.read_text().split())
    assert str(closed) not in fds  # closed as pinctl was given it: nothing opened in its place
    assert {"0", "1", "2"} - {str(closed)} <= fds


def test_launch_keeps_a_full_stderr_for_its_command(files: dict[str, str], tmp_path: Path) -> None:
    listing = tmp_path / "fds"
    args = ["launch", "--plan", files["plan"], "--local-rank", "0", "--force", "-v", "--", "sh", "-c",
            f"readlink /proc/$$/fd/2 > {listing}"]  # fmt: skip
    with open("/dev/full", "w") as full:
        result = run(args, stdout=subprocess.DEVNULL, stderr=full.fileno())
    assert result.returncode == 0
    assert listing.read_text().strip() == "/dev/full"


@pytest.mark.parametrize("command", ["show", "plan", "doctor"])
def test_columns_zero_is_an_unknown_width(command: str) -> None:
    text = in_pty(0, command, "--topology", TOPOLOGY)
    assert "dgx-h100-01" in text or "node.discovery" in text, text
    assert len(text.splitlines()) > 5


@pytest.mark.parametrize("closed", [1, 2])
def test_launch_nproc_per_node_starts_its_ranks_with_the_streams_it_was_given(tmp_path: Path, closed: int) -> None:
    plan = tmp_path / "local.json"
    made = run(["plan", "--ranks", "1", "--json", "-o", str(plan)])
    assert made.returncode == 0, made.stderr
    listing = tmp_path / "fds"
    script = f"exec 3>{listing}; for fd in 0 1 2; do [ -e /proc/$$/fd/$fd ] && echo $fd >&3; done; exit 0"
    args = ["launch", "--plan", str(plan), "--nproc-per-node", "1", "-v", "--", "sh", "-c", script]
    result = run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close=(closed,))
    assert result.returncode == 0
    assert set(listing.read_text().split()) == {"0", "1", "2"} - {str(closed)}
