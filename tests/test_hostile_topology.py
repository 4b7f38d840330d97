"""Absurd and hostile topology files (issue 11): each is one `pinctl: error:` line or a Node whose
facts are sane, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pinctl.discovery.hwloc.xmlcheck import check_hwloc_xml_bytes
from pinctl.discovery.merge import normalize
from pinctl.discovery.nccl import parse_nccl_xml
from pinctl.discovery.xmltree import MAX_DEPTH
from pinctl.errors import TopologyError

GPU = '<pci busid="0000:{bus:02x}:00.0" class="0x030200" vendor="0x10de" device="0x2330"/>'


def nccl(*cpus: str) -> bytes:
    return ('<system version="1">' + "".join(cpus) + "</system>").encode()


def cpu(numaid: str | None, affinity: str, bus: int) -> str:
    attr = "" if numaid is None else f' numaid="{numaid}"'
    return f'<cpu{attr} affinity="{affinity}">{GPU.format(bus=bus)}</cpu>'


def nested(depth: int, open_tag: str, close_tag: str) -> str:
    return open_tag * depth + close_tag * depth


def show(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pinctl", "show", "--no-nvml", "--topology", str(path)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("nccl", '<system version="1"><cpu numaid="0" affinity="ff">'
                 + nested(5000, '<pci busid="0000:01:00.0" class="0x060400">', "</pci>") + "</cpu></system>"),
        ("hwloc", '<topology version="2.0"><object type="Machine" os_index="0">'
                  + nested(5000, '<object type="Group">', "</object>") + "</object></topology>"),
    ],
)  # fmt: skip
def test_a_file_nested_5000_deep_is_one_line(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / f"{name}.xml"
    path.write_text(text)
    res = show(path)
    assert res.returncode == 3, res.stderr
    assert res.stderr.startswith("pinctl: error: ") and res.stderr.count("\n") == 1, res.stderr
    assert f"more than {MAX_DEPTH} levels" in res.stderr


def test_depth_just_under_the_limit_still_parses() -> None:
    text = '<topology version="2.0">' + nested(MAX_DEPTH - 1, "<object>", "</object>") + "</topology>"
    assert check_hwloc_xml_bytes(text.encode(), "t.xml").version == "2.0"
    with pytest.raises(TopologyError, match="levels deep"):
        check_hwloc_xml_bytes(text.replace("<object>", "<object><object>", 1).encode() + b"", "t.xml")


def test_a_negative_numaid_is_never_shown_as_a_node(tmp_path: Path) -> None:
    data = nccl(cpu("-5", "ff", 1), cpu("1", "ff00", 2))
    node = parse_nccl_xml(data, "neg.xml")
    assert sorted(n.os_index for n in node.numa_nodes) == [0, 1]
    assert node.numa_nodes[0].cpus == frozenset(range(8))
    assert any("numaid=-5" in n and "NUMA node 0" in n for n in node.notes)
    path = tmp_path / "neg.xml"
    path.write_bytes(data)
    res = subprocess.run([sys.executable, "-m", "pinctl", "show", "--json", "--topology", str(path)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)  # the values, not substrings of a screen that also names the tmp folder
    assert [n["os_index"] for n in data["numa_nodes"]] == [0, 1]
    assert [g["numa_node"] for g in data["gpus"]] == [0, 1]
    res = show(path)
    assert res.returncode == 0, res.stderr
    # no shown value is -5: a whole token, so a folder such as /tmp/pytest-5/ in the headline cannot match
    tokens = {t for line in res.stdout.splitlines() if not line.startswith("note:") for t in line.split()}
    assert tokens and "-5" not in tokens


@pytest.mark.parametrize(
    ("cpus", "message"),
    [
        ((cpu("1000000000", "ff", 1),), "out of range"),
        ((cpu("0", "ff", 1), cpu("0", "ff00", 2)), "claim NUMA node 0"),
        ((cpu("zero", "ff", 1),), "is not a number"),
    ],
)
def test_absurd_numaids_are_refused(cpus: tuple[str, ...], message: str) -> None:
    with pytest.raises(TopologyError, match=message):
        parse_nccl_xml(nccl(*cpus), "bad.xml")


def test_cpus_without_numaid_take_free_numbers_next_to_given_ones() -> None:
    node = parse_nccl_xml(nccl(cpu(None, "ff", 1), cpu("0", "ff00", 2)), "mixed.xml")
    assert sorted(n.os_index for n in node.numa_nodes) == [0, 1]
    assert any("without numaid" in n and "NUMA node 1" in n for n in node.notes)


def test_launch_from_a_hostile_topology_runs_nothing(tmp_path: Path) -> None:
    deep = tmp_path / "deep.xml"
    bridges = nested(5000, '<pci busid="0000:01:00.0" class="0x060400">', "</pci>")
    deep.write_text(f'<system version="1"><cpu numaid="0" affinity="ff">{bridges}</cpu></system>')
    marker = tmp_path / "ran"
    res = subprocess.run([sys.executable, "-m", "pinctl", "launch", "--topology", str(deep), "--local-rank", "0",
                          "--", "touch", str(marker)], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 3 and res.stderr.count("\n") == 1, res.stderr
    assert not marker.exists()


def test_more_devices_or_nodes_than_any_machine_is_refused_quickly() -> None:
    """Views and JSON hold device x device distances: 5000 GPUs in a 1.4 MB file took minutes and 380 MB."""
    gpus = "".join(GPU.format(bus=b).replace("0000:", f"{d:04x}:") for d in range(5) for b in range(256))
    started = time.monotonic()
    with pytest.raises(TopologyError, match="1280 devices"):
        normalize(parse_nccl_xml(nccl(f'<cpu numaid="0" affinity="ff">{gpus}</cpu>'), "many.xml"))
    with pytest.raises(TopologyError, match="at most 1024 NUMA nodes"):
        parse_nccl_xml(nccl(*(f'<cpu affinity="{1 << (i % 64):x}"/>' for i in range(1025))), "nodes.xml")
    with pytest.raises(TopologyError, match="out of range"):
        parse_nccl_xml(nccl(cpu("1024", "ff", 1)), "id.xml")
    assert time.monotonic() - started < 10
