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


SHARED = ROOT.parent / "shared" / "topologies"
PCILOCALITY = SHARED / "hwloc-40intel64-2g2n4c+pcilocality.tar.bz2"


@pytest.mark.skipif(not PCILOCALITY.is_file(), reason="shared topologies not available")
def test_a_device_whose_numa_node_and_local_cpus_disagree_gets_a_note(tmp_path: Path) -> None:
    """The 40intel64 capture's qib0: numa_node 2, local_cpulist every CPU."""
    import tarfile

    with tarfile.open(PCILOCALITY) as tar:
        tar.extractall(tmp_path, filter="data")
    (top,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    node = discover(root=str(top), nvml=False)
    (qib,) = [n for n in node.nics if n.name == "qib0"]
    assert qib.pci is not None and qib.pci.numa_node == 2
    notes = [n for n in node.notes if n.startswith("qib0 ")]
    assert len(notes) == 1 and "NUMA node 2" in notes[0] and f"CPUs 0-{len(node.cpus) - 1}" in notes[0]
    # Devices whose two facts agree get none.
    assert not [n for n in node.notes if "local_cpulist says" in n and not n.startswith("qib0 ")]


@pytest.mark.parametrize("xml", sorted((ROOT / "fixtures" / "hwloc").glob("*.xml")), ids=lambda p: p.name)
def test_nearest_devices_are_the_matrix_minimum(xml: Path) -> None:
    """The folded matrix lists, per GPU and kind, exactly the devices at the row's nearest level."""
    from pinctl.distance import device_columns, distance_matrix, level_order
    from pinctl.render.show import nearest_table

    node = discover(topology=str(xml), nvml=False)
    if not node.gpus:
        pytest.skip("no GPUs")
    labels = [label for label, _ in device_columns(node)]
    kinds = ["GPUs"] * len(node.gpus) + ["NICs"] * len(node.nics) + ["storage"] * len(node.storage)
    table = nearest_table(node, "")
    for row, cells in zip(table.rows, distance_matrix(node), strict=True):
        for k, kind in enumerate(("GPUs", "NICs", "storage")):
            here = [(c, lab) for c, lab, kd in zip(cells, labels, kinds, strict=True) if kd == kind and c != "X"]
            known = [(c, lab) for c, lab in here if c != "?"]
            shown = row[1 + k]
            if not known:
                assert shown == ("?" if here else "-")
                continue
            best = min(level_order(c) for c, _ in known)
            level, _, names = shown.partition(": ")
            assert level_order(level) == best
            assert names.split(", ") == [lab for c, lab in known if level_order(c) == best and c == level]
