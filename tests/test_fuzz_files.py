"""Files nobody vouches for, fuzzed (issue 11): plan files, NCCL and hwloc XML, and gathered /sys and
/proc trees with garbage in their files. Each gives a valid result or a PinctlError, never another
exception, in bounded time (hypothesis' deadline); what a valid result feeds next (normalizing a
Node, planning it, the doctor's checks) must not crash either."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from act_helpers import plan_dict
from fuzz_helpers import valid_or_pinctl_error
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nodes import two_sockets

from pinctl import api
from pinctl.discovery import enrich
from pinctl.discovery.hwloc.xmlcheck import check_hwloc_xml_bytes
from pinctl.discovery.merge import normalize
from pinctl.discovery.nccl import parse_nccl_xml, sniff_topology_file
from pinctl.doctor import DoctorContext, run_checks
from pinctl.kernel import cgroup, cpus, irq, net, numa, nvme, pci, proc, rdma
from pinctl.kernel import settings as ksettings
from pinctl.kernel.files import KernelFiles, NeedsRoot
from pinctl.planfile.load import load_plan, parse_plan_text

FILES = settings(max_examples=120, deadline=timedelta(seconds=5),
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
REPO = Path(__file__).resolve().parents[1]
ODD = ["", "0", "1", "-1", "-5", "65536", "9" * 30, "²", "ff", "0x030200", "0x060400", "0x020700", "0x10de",
       "0000:01:00.0", "ffff:ff:01.0", "0000:1b:00.0", "16 GT/s", "32.0 GT/s PCIe", "x", "0-3", "ff,ffffffff",
       "\u00e9", "mlx5_0", "efa0", "eth0", "1e999", "nan"]  # fmt: skip
text_value = st.sampled_from(ODD) | st.text(max_size=12)


@contextlib.contextmanager
def temp_file(data: bytes) -> Iterator[str]:
    """*data* in a file that is gone afterwards (hypothesis examples cannot share pytest's tmp_path)."""
    fd, path = tempfile.mkstemp(suffix=".xml")
    try:
        os.write(fd, data)
        os.close(fd)
        yield path
    finally:
        os.unlink(path)


def plan_after(node: object) -> None:
    """What a user does next with a Node from a file: plan it (a Plan or a PinctlError)."""
    valid_or_pinctl_error(lambda: api.make_plan(node))  # type: ignore[arg-type]
    valid_or_pinctl_error(lambda: api.make_plan(node, ranks=2))  # type: ignore[arg-type]


# --- plan files -------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text_value,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text_value, children, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_plans(draw: st.DrawFn) -> str:
    """A valid plan with one value anywhere replaced, or its text cut or nested absurdly deep."""
    obj = plan_dict()
    paths: list[tuple[object, object]] = []

    def walk(node: object) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
        for key, value in list(items):
            paths.append((node, key))
            walk(value)

    walk(obj)
    parent, key = draw(st.sampled_from(paths))
    parent[key] = draw(json_values)  # type: ignore[index]
    text = json.dumps(obj)
    how = draw(st.sampled_from(["whole", "cut", "deep"]))
    if how == "cut":
        return text[: draw(st.integers(0, len(text)))]
    if how == "deep":
        depth = draw(st.integers(900, 200_000))
        return "[" * depth + "]" * depth
    return text


@FILES
@given(mutated_plans() | st.text(max_size=60))
def test_plan_text(text: str) -> None:
    valid_or_pinctl_error(lambda: parse_plan_text(text))


@FILES
@given(st.binary(max_size=200))
def test_plan_file_bytes(data: bytes) -> None:
    with temp_file(data) as path:
        valid_or_pinctl_error(lambda: load_plan(path))


# --- NCCL topology XML ------------------------------------------------------------------------------

NCCL_TAGS = ["system", "cpu", "pci", "gpu", "nic", "net", "nvlink", "x"]
NCCL_ATTRS = ["numaid", "affinity", "busid", "class", "vendor", "device", "link_speed", "link_width", "name",
              "port", "speed", "target", "count", "version", "arch"]  # fmt: skip


def element(tags: list[str], attrs: list[str]) -> st.SearchStrategy[ET.Element]:
    def build(tag: str, attributes: dict[str, str], children: list[ET.Element]) -> ET.Element:
        elem = ET.Element(tag, {k: v for k, v in attributes.items() if "\0" not in v and v.isprintable()})
        elem.extend(children)
        return elem

    leaf = st.builds(build, st.sampled_from(tags), st.dictionaries(st.sampled_from(attrs), text_value, max_size=4),
                     st.just([]))  # fmt: skip
    return st.recursive(
        leaf,
        lambda kids: st.builds(
            build,
            st.sampled_from(tags),
            st.dictionaries(st.sampled_from(attrs), text_value, max_size=4),
            st.lists(kids, max_size=4),
        ),
        max_leaves=16,
    )


@st.composite
def nccl_files(draw: st.DrawFn) -> bytes:
    root = ET.Element("system", {"version": "1"})
    root.extend(draw(st.lists(element(NCCL_TAGS, NCCL_ATTRS), max_size=4)))
    return ET.tostring(root)


BUSIDS = ["0000:01:00.0", "0000:02:00.0", "0000:03:00.0", "ffff:ff:01.0", "0000:1b:00.0", "x", ""]
CLASSES = ["0x030200", "0x030000", "0x060400", "0x020700", "0x020000", "0x010802", "", "zz"]


@st.composite
def plausible_nccl_files(draw: st.DrawFn) -> bytes:
    """NCCL's own shape (system > cpu > pci... > gpu | nic > net) with odd values, so the walk goes deep."""

    def pci(depth: int) -> ET.Element:
        elem = ET.Element(
            "pci",
            {
                "busid": draw(st.sampled_from(BUSIDS)),
                "class": draw(st.sampled_from(CLASSES)),
                "link_speed": draw(text_value),
                "link_width": draw(text_value),
                "vendor": draw(st.sampled_from(["0x10de", "0x15b3", "0x1d0f", "", "0xffff"])),
            },
        )
        kind = draw(st.sampled_from(["gpu", "nic", "pci", "none"])) if depth < 3 else "none"
        if kind == "gpu":
            gpu = ET.SubElement(elem, "gpu", {"dev": draw(text_value)})
            for _ in range(draw(st.integers(0, 2))):
                ET.SubElement(gpu, "nvlink", {"target": draw(st.sampled_from(BUSIDS)), "count": draw(text_value)})
        elif kind == "nic":
            nic = ET.SubElement(elem, "nic")
            for _ in range(draw(st.integers(0, 2))):
                ET.SubElement(
                    nic,
                    "net",
                    {
                        "name": draw(st.sampled_from(["mlx5_0", "efa0", "eth0", "", "²"])),
                        "port": draw(text_value),
                        "speed": draw(text_value),
                    },
                )
        elif kind == "pci":
            elem.extend(pci(depth + 1) for _ in range(draw(st.integers(0, 2))))
        return elem  # fmt: skip

    root = ET.Element("system", {"version": "1"})
    for _ in range(draw(st.integers(0, 3))):
        attrs = {
            "numaid": draw(st.sampled_from(["0", "1", "2", "-1", "-5"]) | text_value),
            "affinity": draw(st.sampled_from(["ff", "ff00", "f0f0", "0", "ffffffff,ffffffff"]) | text_value),
        }
        cpu = ET.SubElement(root, "cpu", {k: v for k, v in attrs.items() if v.isprintable()})
        cpu.extend(pci(0) for _ in range(draw(st.integers(0, 3))))
    return ET.tostring(root)


@FILES
@given(nccl_files() | plausible_nccl_files() | st.binary(max_size=100))
def test_nccl_files(data: bytes) -> None:
    node = valid_or_pinctl_error(lambda: parse_nccl_xml(data, "fuzz.xml"))
    if node is not None:
        assert all(n.os_index >= 0 for n in node.numa_nodes)
        normalized = valid_or_pinctl_error(lambda: normalize(node))
        if normalized is not None:
            plan_after(normalized)


@FILES
@given(st.binary(max_size=300) | nccl_files())
def test_sniffing_the_kind_of_a_file(data: bytes) -> None:
    with temp_file(data) as path:
        kind = valid_or_pinctl_error(lambda: sniff_topology_file(path))
        assert kind in (None, "hwloc", "nccl")


# --- hwloc XML pre-checks ----------------------------------------------------------------------------

HWLOC_TAGS = ["object", "distances2", "distances2hetero", "indexes", "u64values", "info", "page_type"]
HWLOC_ATTRS = ["type", "os_index", "cpuset", "nodeset", "name", "kind", "nbobjs", "version", "value", "length"]


@st.composite
def hwloc_files(draw: st.DrawFn) -> bytes:
    root = ET.Element("topology", {"version": draw(st.sampled_from(["2.0", "3.0", "1.11", "", "x"]))})
    root.extend(draw(st.lists(element(HWLOC_TAGS, HWLOC_ATTRS), max_size=4)))
    return ET.tostring(root)


@FILES
@given(hwloc_files() | st.binary(max_size=200))
def test_hwloc_prechecks(data: bytes) -> None:
    checked = valid_or_pinctl_error(lambda: check_hwloc_xml_bytes(data, "fuzz.xml"))
    if checked is not None:
        assert checked.version.split(".")[0] in ("2", "3")
        ET.fromstring(checked.text.encode())  # what libhwloc gets is still XML


# --- gathered /sys and /proc trees with garbage in them ------------------------------------------------


@pytest.fixture(scope="module", params=["doctor/good", "doctor/dgx", "sysfs/dgx-h100", "sysfs/vm-nolocality"])
def tree(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A copy of one of the project's trees (the doctor's /proc and /sys, the generated sysfs ones)."""
    root = tmp_path_factory.mktemp("tree") / "root"
    shutil.copytree(REPO / "fixtures" / request.param, root, symlinks=True)
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    return root, files


def read_everything(fs: KernelFiles) -> None:
    """Every kernel reader over the tree; a NeedsRoot is what an unreadable file gives."""
    readers: list[Callable[[], object]] = [
        lambda: cpus.present_cpus(fs), lambda: cpus.online_cpus(fs), lambda: cpus.governors(fs),
        lambda: cpus.cpu_list_fact(fs, "isolated", strict=False), lambda: numa.online_nodes(fs),
        lambda: [numa.node_cpus(fs, n) for n in numa.online_nodes(fs)], lambda: net.interfaces(fs),
        lambda: nvme.controllers(fs), lambda: ksettings.numa_balancing(fs), lambda: ksettings.thp_defrag(fs),
        lambda: ksettings.cmdline(fs), lambda: cgroup.cpuset(fs), lambda: proc.read_status(fs, "self"),
        lambda: [irq.affinity(fs, i) for i in fs.listdir("/proc/irq")],
        lambda: [(rdma.ports(fs, d), rdma.device_address(fs, d), rdma.device_netdevs(fs, d))
                 for d in rdma.devices(fs)],
    ]  # fmt: skip
    for address in pci.functions(fs):
        parsed = pci.PciAddress.parse_or_none(address)
        if parsed is not None:
            readers += [lambda a=parsed: (pci.link(fs, a), pci.ids(fs, a), pci.numa_node(fs, a),  # type: ignore[misc]
                                          pci.local_cpus(fs, a), pci.msi_irqs(fs, a), pci.place(fs, a))]  # fmt: skip
    for read in readers:
        with contextlib.suppress(NeedsRoot):
            valid_or_pinctl_error(read)


@FILES
@given(st.data())
def test_gathered_trees_with_garbage(tree: tuple[Path, list[str]], data: st.DataObject) -> None:
    root, files = tree
    chosen = [root / f for f in data.draw(st.lists(st.sampled_from(files), min_size=1, max_size=6, unique=True))]
    saved = {p: p.read_bytes() for p in chosen}
    try:
        for p in chosen:
            p.write_bytes(data.draw(st.sampled_from([v.encode() for v in ODD]) | st.binary(max_size=40)))
        fs = KernelFiles(str(root))
        read_everything(fs)
        node = valid_or_pinctl_error(lambda: enrich(fs, two_sockets()))
        if node is not None:
            valid_or_pinctl_error(lambda: normalize(node))
        findings = run_checks(DoctorContext(files=fs, node=two_sockets()))
        assert not [f for f in findings if "internal error" in f.summary], [f.summary for f in findings]
    finally:
        for p, content in saved.items():
            p.write_bytes(content)


CGROUP_LINE = st.tuples(st.sampled_from(["0", "1", "12", "x", ""]), st.sampled_from(["", "cpuset", "cpu,cpuset", "x"]),
                        st.sampled_from(["/", "/job", "/a/b/c", "/../..", "", "/²"]) | text_value)  # fmt: skip


@FILES
@given(st.lists(CGROUP_LINE, max_size=3), text_value, text_value)
def test_cgroup_files(lines: list[tuple[str, str, str]], cpus_text: str, mems_text: str) -> None:
    with tempfile.TemporaryDirectory() as root:
        proc = Path(root, "proc", "self")
        proc.mkdir(parents=True)
        (proc / "cgroup").write_text("\n".join(":".join(parts) for parts in lines))
        for _, _, path in lines:
            relative = path.strip("/")
            for base in (Path(root, "sys/fs/cgroup", relative), Path(root, "sys/fs/cgroup/cpuset", relative)):
                if "\0" in relative or not base.resolve().is_relative_to(Path(root).resolve()):
                    continue  # pinctl may read there; the test writes only inside its own tree
                with contextlib.suppress(OSError, ValueError):
                    base.mkdir(parents=True, exist_ok=True)
                    for name in ("cpuset.cpus.effective", "cpuset.effective_cpus", "cpuset.cpus"):
                        (base / name).write_text(cpus_text)
                    for name in ("cpuset.mems.effective", "cpuset.effective_mems", "cpuset.mems"):
                        (base / name).write_text(mems_text)
        found = valid_or_pinctl_error(lambda: cgroup.cpuset(KernelFiles(root)))
        assert found is None or (found.cpus and all(c >= 0 for c in found.cpus))
