"""`pinctl show` views and JSON on a small hand-built node (no discovery involved)."""

from __future__ import annotations

import io
import json

from pinctl.model import (
    CacheGroup,
    Core,
    Gpu,
    Nic,
    NicPort,
    Node,
    NumaNode,
    Package,
    PciAddress,
    PciInfo,
    PciLink,
    Storage,
)
from pinctl.nodejson import node_to_dict
from pinctl.render.show import show_items
from pinctl.render.table import draw, plain


def small_node() -> Node:
    cores = tuple(Core(pus=(c, c + 4), package=c // 2, numa_node=c // 2, l3=c // 2) for c in range(4))
    sw = ("0000:10:00.0",)
    gpu = Gpu(0, PciInfo(PciAddress.parse("0000:18:00.0"), 0x0302, 0x10DE, 0x2330, PciLink(16.0, 8, 32.0, 16),
                         switches=sw, host_bridge="hb0", numa_node=0, local_cpus=frozenset({0, 1, 4, 5})),
              vendor="nvidia", name="H100")
    nic = Nic("mlx5_3", "infiniband", True,
              PciInfo(PciAddress.parse("0000:19:00.0"), switches=sw, host_bridge="hb0", numa_node=0),
              ports=(NicPort(1, "ACTIVE", "LinkUp", "InfiniBand", 400.0, "ibp25s0"),))
    down = Nic("mlx5_7", "infiniband", True,
               PciInfo(PciAddress.parse("0000:99:00.0"), host_bridge="hb1", numa_node=1),
               ports=(NicPort(1, "DOWN", "Disabled", "InfiniBand"),))
    disk = Storage("nvme0n1", PciInfo(PciAddress.parse("0000:9a:00.0"), host_bridge="hb1", numa_node=1),
                   model="Samsung PM1733", size_bytes=3_840_000_000_000)
    return Node(
        hostname="n1", source="test",
        packages=(Package(0, frozenset({0, 1, 4, 5})), Package(1, frozenset({2, 3, 6, 7}))),
        numa_nodes=(NumaNode(0, frozenset({0, 1, 4, 5}), 2**36, package=0),
                    NumaNode(1, frozenset({2, 3, 6, 7}), 2**36, package=1),
                    NumaNode(2, frozenset(), 2**34, kind="gpu")),
        cores=cores,
        l3_groups=(CacheGroup(0, frozenset({0, 1, 4, 5})), CacheGroup(1, frozenset({2, 3, 6, 7}))),
        allowed_cpus=frozenset({0, 1, 4, 5}),
        gpus=(gpu,), nics=(nic, down), storage=(disk,),
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
    assert data["storage"][0] == {**data["storage"][0], "name": "nvme0n1", "pci_bus_id": "0000:9a:00.0",
                                  "numa_node": 1}
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


def test_draw_is_plain_when_not_a_tty_or_no_color(monkeypatch: object) -> None:
    buf = io.StringIO()
    draw(show_items(small_node()), buf)
    assert "\x1b[" not in buf.getvalue() and "GPU distances" in buf.getvalue()


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_draw_uses_rich_on_a_tty(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("NO_COLOR", raising=False)
    buf = FakeTTY()
    draw(show_items(small_node()), buf)
    assert "\x1b[" in buf.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    buf = FakeTTY()
    draw(show_items(small_node()), buf)
    assert "\x1b[" not in buf.getvalue()
