"""Facts `pinctl show` must not bend: unknown CPUs are not "CPU-less", hwloc XML link speeds are shown,
and a device whose NUMA node and local CPUs disagree says so."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pinctl.api import discover
from pinctl.render.show import numa_table, summary_line
from pinctl.render.table import plain

ROOT = Path(__file__).resolve().parents[1]
NDV4 = ROOT / "fixtures" / "nccl" / "azure-ndv4-like.xml"


def without_affinity(tmp_path: Path) -> Path:
    """The NDv4-like file with its CPU masks taken out: NCCL's files may leave them out."""
    text = re.sub(r' affinity="[^"]*"', "", NDV4.read_text())
    path = tmp_path / "no-affinity.xml"
    path.write_text(text)
    return path


def test_unknown_cpus_are_not_cpu_less(tmp_path: Path) -> None:
    node = discover(topology=str(without_affinity(tmp_path)), nvml=False)
    assert node.numa_nodes and all(not n.cpus_known and not n.cpuless for n in node.numa_nodes)
    summary = summary_line(node)
    assert "CPU-less" not in summary and f"{len(node.numa_nodes)} with CPUs unknown" in summary
    view = plain([numa_table(node)])
    assert "CPU-less" not in view and "unknown" in view


def test_listed_cpus_stay_known() -> None:
    node = discover(topology=str(NDV4), nvml=False)
    assert all(n.cpus_known and n.cpus for n in node.numa_nodes)
    assert "CPUs unknown" not in summary_line(node)


@pytest.mark.parametrize("name", ["dgx-h100.xml"])
def test_json_says_whether_cpus_are_known(name: str) -> None:
    from pinctl.nodejson import node_to_dict

    data = node_to_dict(discover(topology=str(ROOT / "fixtures" / "hwloc" / name), nvml=False))
    assert all(n["cpus_known"] is True and n["cpuless"] is False for n in data["numa_nodes"])


def test_hwloc_xml_link_speed_is_shown() -> None:
    """hwloc XML carries pci_link_speed (GB/s): the link column shows it for every device that has it."""
    import xml.etree.ElementTree as ET

    from pinctl.render.show import device_table

    xml = ROOT / "fixtures" / "hwloc" / "dgx-h100.xml"
    speeds = {o.get("pci_busid"): float(o.get("pci_link_speed", "0")) for o in ET.parse(xml).iter("object")
              if o.get("type") == "PCIDev"}  # fmt: skip
    node = discover(topology=str(xml), nvml=False)
    table = device_table(node)
    links = {row[2]: row[4] for row in table.rows}
    assert node.gpus
    for gpu in node.gpus:
        want = speeds[str(gpu.pci.address)]
        assert want > 0 and links[str(gpu.pci.address)] == f"{want:.1f}\u00a0GB/s"
        assert gpu.pci.link.bandwidth_gbs == pytest.approx(want, abs=0.01)
