"""The views as a person sees them: the real `pinctl` in a pseudo-terminal of 60, 80 and 200 columns.

A value cut across two lines (``0-13,112`` + ``-125``, ``0000:1b:`` + ``00.0``, ``NOD`` + ``E``)
reads as wrong data. Lists may break after a comma, text at a space; nothing else.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from pinctl.api import discover, make_plan
from pinctl.cpuset import format_list
from pinctl.distance import LEVELS
from pinctl.model import Node

ROOT = Path(__file__).resolve().parents[1]
DGX_H100 = ROOT / "fixtures" / "hwloc" / "dgx-h100.xml"
DUAL_PORT = ROOT / "fixtures" / "hwloc" / "dual-port-4gpu.xml"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
BOX = re.compile(r"[\u2500-\u257f]")
LIST_ELEMENT = re.compile(r"\d+(-\d+)?")
PCI = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")


def in_pty(columns: int, *args: str, no_color: bool = False) -> str:
    """Run pinctl on a pseudo-terminal *columns* wide; its screen text without colour codes."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "LINES")}
    env.update(COLUMNS=str(columns), TERM="xterm-256color", **({"NO_COLOR": "1"} if no_color else {}))
    proc = subprocess.Popen([sys.executable, "-m", "pinctl", *args], stdin=slave, stdout=slave, stderr=slave,
                            env=env, cwd=ROOT, close_fds=True)  # fmt: skip
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        proc.wait(timeout=10)
    text = ANSI.sub("", b"".join(chunks).decode()).replace("\r", "")
    assert "Traceback" not in text, text
    return text


def fragments(text: str) -> list[list[str]]:
    """Each screen line as its words, with table rules and borders taken out."""
    return [BOX.sub(" ", line).split() for line in text.splitlines()]


def assert_whole(text: str, node: Node, cpulists: list[str] | None, columns: int, *, names: bool = False) -> None:
    """No value cut; with *cpulists*, every list element shown is one of theirs (``112`` of ``112-125`` is not)."""
    lines = fragments(text)
    assert all(len(line) <= columns for line in text.splitlines()), "a line wider than the terminal"
    words = [w.rstrip(",;:)").lstrip("(") for line in lines for w in line]
    # Every word that looks like a CPU list is made of whole elements of the lists shown.
    elements = {e for cl in cpulists or () for e in cl.split(",")}
    for w in words:
        if re.fullmatch(r"[\d,-]+", w) and re.search(r"\d", w) and ("," in w or "-" in w):
            for e in filter(None, w.split(",")):
                assert LIST_ELEMENT.fullmatch(e), f"CPU list element {e!r} cut in {w!r}"
                if cpulists is not None:
                    assert e in elements, f"CPU list element {e!r} cut in {w!r}"
    # A PCI id is never cut: no fragment of one stands alone.
    for w in words:
        if re.search(r"[0-9a-f]{4}:[0-9a-f]{2}", w):
            assert PCI.search(w), f"PCI id cut: {w!r}"
    levels = set(LEVELS) | {"?"}
    for w in words:
        if re.fullmatch(r"[A-Z]{1,3}", w) and w not in levels and w not in ("CPU", "GPU", "NIC", "PCI", "L3", "MIG"):
            assert not any(w in lv for lv in levels if lv != w), f"distance level cut: {w!r}"
    # Device names stay on one line.
    for gpu in node.gpus if names else ():
        if gpu.name:
            assert any(gpu.name in " ".join(line) for line in lines), f"device name {gpu.name!r} split"
    for dev in (*node.gpus, *node.nics, *node.storage) if names else ():
        if dev.pci is not None:
            assert str(dev.pci.address) in text, f"{dev.pci.address} missing"


@pytest.fixture(scope="module")
def dgx() -> Node:
    return discover(topology=str(DGX_H100), nvml=False)


def node_lists(node: Node) -> list[str]:
    from pinctl.cpuset import format_list

    lists = [format_list(n.cpus) for n in node.numa_nodes] + [format_list(node.allowed_cpus)]
    lists += [format_list(g.pci.local_cpus & node.allowed_cpus) for g in node.gpus]
    return lists


@pytest.mark.parametrize("columns", [60, 80, 200])
def test_show_keeps_every_value_whole(dgx: Node, columns: int) -> None:
    text = in_pty(columns, "show", "--topology", str(DGX_H100))
    assert_whole(text, dgx, node_lists(dgx), columns, names=True)
    assert "GPU0" in text and "mlx5_11" in text and "nvme9n1" in text


def test_show_folds_the_matrix_into_nearest_devices_when_it_does_not_fit(dgx: Node) -> None:
    """30 device columns cannot fit 80 columns: each GPU lists its nearest NIC and storage instead."""
    text = in_pty(80, "show", "--topology", str(DGX_H100))
    assert "nearest devices" in text
    folded = text[text.index("nearest devices") :]
    block = [w for line in fragments(folded[folded.index("GPU0") : folded.index("GPU1 ")]) for w in line]
    assert block[:1] == ["GPU0"] and "mlx5_0" in block and "nvme2n1" in block


def test_a_matrix_that_fits_is_drawn_whole() -> None:
    node = discover(topology=str(DUAL_PORT), nvml=False)
    text = in_pty(200, "show", "--topology", str(DUAL_PORT))
    assert "GPU distances" in text and "nearest devices" not in text
    assert_whole(text, node, node_lists(node), 200, names=True)


@pytest.mark.parametrize("columns", [60, 80, 200])
def test_plan_keeps_cpu_lists_and_bus_ids_whole(dgx: Node, columns: int) -> None:
    plan = make_plan(dgx)
    text = in_pty(columns, "plan", "--topology", str(DGX_H100))
    assert plan.cpu_classes is not None
    c = plan.cpu_classes
    shown = [r.cpulist for r in plan.ranks] + [format_list(x) for x in (plan.rank_cpus, c.housekeeping, c.idle)]
    assert_whole(text, dgx, shown, columns)
    for r in plan.ranks:
        assert r.gpu is not None and r.gpu.pci_bus_id in text


@pytest.mark.parametrize("columns", [60, 80, 200])
def test_doctor_and_check_keep_values_whole(dgx: Node, columns: int) -> None:
    text = in_pty(columns, "doctor", "--topology", str(DGX_H100))
    assert "ok," in text
    assert_whole(text, dgx, None, columns)
    text = in_pty(columns, "check", "--topology", str(DGX_H100), "--force", str(os.getpid()))
    assert str(os.getpid()) in text
    assert_whole(text, dgx, None, columns)


@pytest.mark.parametrize("command", ["show", "plan", "doctor"])
def test_plain_views_on_a_terminal_are_whole_too(dgx: Node, command: str) -> None:
    """NO_COLOR on a terminal: plain text, fitted to the same width, no box characters."""
    text = in_pty(80, command, "--topology", str(DGX_H100), no_color=True)
    assert not BOX.search(text)
    assert_whole(text, dgx, None, 80, names=command == "show")


FIXTURES = sorted((ROOT / "fixtures" / "hwloc").glob("*.xml")) + sorted((ROOT / "fixtures" / "nccl").glob("*.xml"))


@pytest.mark.parametrize("xml", FIXTURES, ids=lambda p: p.name)
def test_every_fixture_is_whole_at_80_columns(xml: Path) -> None:
    node = discover(topology=str(xml), nvml=False)
    text = in_pty(80, "show", "--topology", str(xml))
    assert_whole(text, node, node_lists(node), 80, names=True)


@pytest.mark.parametrize("columns", [80, 120, 200])
def test_plan_shows_each_rank_cpu_list_on_one_line(dgx: Node, columns: int) -> None:
    """A person copies a rank's CPU list into taskset: it is never split, at any width."""
    plan = make_plan(dgx)
    text = in_pty(columns, "plan", "--topology", str(DGX_H100))
    words = {w.rstrip(",") for line in fragments(text) for w in line}
    for r in plan.ranks:
        assert r.cpulist in words, f"rank {r.local_rank}'s {r.cpulist} split or missing"


def test_show_draws_the_dgx_matrix_at_200_columns(dgx: Node) -> None:
    """nvidia-smi topo -m fits about 180 columns; without cell borders, so does pinctl's matrix."""
    text = in_pty(200, "show", "--topology", str(DGX_H100))
    assert "nearest devices" not in text
    header = next(line.split() for line in text.splitlines() if line.split()[:2] == ["GPU0", "GPU1"])
    assert header[:8] == [f"GPU{i}" for i in range(8)] and "mlx5_0" in header
    row = next(line.split() for line in text.splitlines() if line.split()[:1] == ["GPU0"] and "X" in line.split())
    assert row[1] == "X" and "PIX" in row  # GPU0 sees itself, and its own NIC one switch away
    assert_whole(text, dgx, node_lists(dgx), 200, names=True)


@pytest.mark.parametrize("columns", [100, 120])
def test_device_table_drops_bridges_before_wrapping_a_row(dgx: Node, columns: int) -> None:
    text = in_pty(columns, "show", "--topology", str(DGX_H100))
    devices = text[text.index("Devices") :]
    assert "bridges" not in devices.splitlines()[2] + devices.splitlines()[1]
    for gpu in dgx.gpus:
        line = next(ln for ln in devices.splitlines() if f" GPU{gpu.index} " in f" {ln} ")
        assert str(gpu.pci.address) in line and "H100" in line  # the whole row on one line


@pytest.mark.parametrize("no_color", [False, True])
def test_doctor_at_80_columns_is_a_line_per_check_under_area_headings(no_color: bool) -> None:
    # A path relative to the checkout: the screen must not depend on where the checkout lies.
    text = in_pty(80, "doctor", "--root", "fixtures/doctor/bad", no_color=no_color)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    checks = [ln for ln in lines if re.match(r"^\s*(ok|warn|fail|skipped|n/a|OK|WARN|FAIL|SKIPPED|N/A)\s+\S+\.\S", ln)]
    headings = [ln for ln in lines if re.fullmatch(r"\s*\[[a-z]+\]\s*", ln)]
    assert len(checks) >= 15 and len(headings) >= 5
    # Short findings: a check takes a line, two where its finding is long (it was a 4-line block).
    assert len(lines) <= 2 * len(checks) + len(headings) + 4, text
    assert "fix:" not in text


def test_numa_distances_print_as_numactl_does() -> None:
    capture = ROOT.parent / "shared" / "topologies" / "hwloc-192em64t-24n8c2t.xml"
    if not capture.exists():
        pytest.skip("shared topologies not available")
    wide = in_pty(120, "show", "--topology", str(capture))
    header = next(line.split() for line in wide.splitlines() if line.split()[:1] == ["node"] and "23" in line)
    assert header == ["node", *map(str, range(24))]
    assert next(line.split() for line in wide.splitlines() if line.split()[:1] == ["0:"])[1] == "10"
    narrow = in_pty(80, "show", "--topology", str(capture))
    rows = [line.split() for line in narrow.splitlines() if re.match(r"^\s+\d+: \d", line)]
    assert len(rows) == 24 and all(len(r) == 25 for r in rows)  # one row a line, none wrapped
