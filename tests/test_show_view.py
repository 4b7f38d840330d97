"""`pinctl show` views and JSON on a small hand-built node (no discovery involved)."""

from __future__ import annotations

import io
import json

import pytest
from nodes import pci, two_sockets

from pinctl.doctor.finding import Finding
from pinctl.model import CacheGroup, Core, Gpu, Nic, NicPort, Node, NumaNode, Package, PciLink, Storage
from pinctl.nodejson import node_to_dict
from pinctl.pinning import ProcFacts
from pinctl.render import check as check_view
from pinctl.render import doctor as doctor_view
from pinctl.render.show import show_items
from pinctl.render.table import draw, plain


def small_node() -> Node:
    """Two sockets with SMT pairs (c, c+4), a GPU-memory NUMA node, a GPU whose link trained low,
    a NIC with a down port, a disk, and a cgroup that allows socket 0 only."""
    s0, s1 = frozenset({0, 1, 4, 5}), frozenset({2, 3, 6, 7})
    gpu = Gpu(
        0,
        pci("0000:18:00.0", numa=0, switch="0000:10:00.0", link=PciLink(16.0, 8, 32.0, 16), local_cpus=s0),
        vendor="nvidia",
        name="H100",
    )
    up = Nic(
        "mlx5_3",
        "infiniband",
        True,
        pci("0000:19:00.0", numa=0, switch="0000:10:00.0", local_cpus=frozenset()),
        ports=(NicPort(1, "ACTIVE", "LinkUp", "InfiniBand", 400.0, "ibp25s0"),),
    )
    down = Nic(
        "mlx5_7",
        "infiniband",
        True,
        pci("0000:99:00.0", numa=1, host="hb1", local_cpus=frozenset()),
        ports=(NicPort(1, "DOWN", "Disabled", "InfiniBand"),),
    )
    disk = Storage(
        "nvme0n1",
        pci("0000:9a:00.0", numa=1, host="hb1", local_cpus=frozenset()),
        model="Samsung PM1733",
        size_bytes=3_840_000_000_000,
    )
    return two_sockets(
        hostname="n1",
        packages=(Package(0, s0), Package(1, s1)),
        numa_nodes=(
            NumaNode(0, s0, 2**36, package=0),
            NumaNode(1, s1, 2**36, package=1),
            NumaNode(2, frozenset(), 2**34, kind="gpu"),
        ),
        cores=tuple(Core(pus=(c, c + 4), package=c // 2, numa_node=c // 2, l3=c // 2) for c in range(4)),
        l3_groups=(CacheGroup(0, s0), CacheGroup(1, s1)),
        allowed_cpus=s0,
        gpus=(gpu,),
        nics=(up, down),
        storage=(disk,),
        numa_distances=((0, 0, 10), (0, 1, 21), (1, 0, 21), (1, 1, 10)),
        notes=("NVML not available: test",),
    )


def test_json_keys_other_tools_rely_on() -> None:
    data = json.loads(json.dumps(node_to_dict(small_node())))
    assert [n["os_index"] for n in data["numa_nodes"]] == [0, 1, 2]
    assert data["numa_nodes"][2]["cpus"] == [] and data["numa_nodes"][2]["cpuless"] is True
    assert data["allowed_cpus"] == [0, 1, 4, 5]
    assert data["gpus"] == [data["gpus"][0]] and data["gpus"][0]["pci_bus_id"] == "0000:18:00.0"
    assert data["gpus"][0]["numa_node"] == 0 and data["gpus"][0]["index"] == 0
    nics = {n["name"]: n for n in data["nics"]}
    assert nics["mlx5_3"]["link_layer"] == "InfiniBand" and nics["mlx5_3"]["state"] == "ACTIVE"
    assert nics["mlx5_7"]["state"] == "DOWN"
    assert data["storage"][0] == {**data["storage"][0], "name": "nvme0n1", "pci_bus_id": "0000:9a:00.0", "numa_node": 1}
    assert data["distances"]["columns"] == ["GPU0", "mlx5_3", "mlx5_7", "nvme0n1"]
    assert data["distances"]["matrix"] == [["X", "PIX", "SYS", "SYS"]]
    assert data["numa_distances"]["matrix"] == [[10, 21, None], [21, 10, None], [None, None, None]]
    assert data["gpus"][0]["pci"]["link"]["degraded"] is True


def test_plain_output_has_the_facts_and_no_escape_codes() -> None:
    text = plain(show_items(small_node()))
    assert "\x1b[" not in text
    assert "2 packages, 3 NUMA nodes (1 CPU-less)" in text
    assert "allowed 0-1,4-5 (restricted)" in text
    lines = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert "PIX" in lines["GPU0"] and "SYS" in lines["GPU0"]
    assert "16GT/s x8 (max 32GT/s x16)" in text  # a link trained below its capability is visible
    assert "p1:DOWN/InfiniBand" in text
    assert "note: NVML not available: test" in text


def test_draw_is_plain_when_not_a_tty() -> None:
    buf = io.StringIO()
    draw(show_items(small_node()), buf)
    assert "\x1b[" not in buf.getvalue() and "GPU distances" in buf.getvalue()


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_draw_uses_rich_on_a_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    buf = FakeTTY()
    draw(show_items(small_node()), buf)
    assert "\x1b[" in buf.getvalue()


PROC = ProcFacts(7, True, "python", frozenset({0}), frozenset({0}), {7: frozenset({0})})
VIEWS = {
    "show": lambda out: draw(show_items(small_node()), out),
    "check": lambda out: check_view.draw([PROC], {7: []}, out),
    "doctor": lambda out: doctor_view.draw(
        [Finding("kernel.thp-defrag", "warn", "defrag", "THP defrag is always")], out=out
    ),
}


@pytest.mark.parametrize("view", sorted(VIEWS))
@pytest.mark.parametrize(("name", "value"), [("NO_COLOR", "1"), ("TERM", "dumb")])
def test_every_view_is_plain_with_no_color_or_a_dumb_terminal(
    view: str, name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One rule for every view (pinctl.render.table.use_rich): a terminal gets colour unless NO_COLOR is set
    (no-color.org) or TERM=dumb."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    coloured = FakeTTY()
    VIEWS[view](coloured)
    assert "\x1b[" in coloured.getvalue()
    monkeypatch.setenv(name, value)
    plain_out = FakeTTY()
    VIEWS[view](plain_out)
    assert "\x1b[" not in plain_out.getvalue() and plain_out.getvalue().strip()


def test_doctor_view_prints_evidence_as_written_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Brackets in evidence ("[madvise]", a process called "[/x]") are text, not rich markup."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    finding = Finding(
        "kernel.thp-defrag",
        "warn",
        "PID 7 ([/x])",
        "THP defrag is 'always'",
        ("/sys/kernel/mm/transparent_hugepage/defrag = [always] defer madvise",),
        "echo madvise",
    )
    buf = FakeTTY()
    doctor_view.draw([finding], verbose=True, out=buf)
    text = buf.getvalue()
    assert "[always]" in text and "[/x]" in text
