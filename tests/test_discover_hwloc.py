"""The hwloc adapter: the live system, topology files that must fail cleanly, and crash isolation."""

from __future__ import annotations

import os
import pickle
import signal
import socket
import time
from pathlib import Path

import pytest

from pinctl.act.files import write_file
from pinctl.cpuset import parse_list
from pinctl.discovery.hwloc import isolated as hwloc_load
from pinctl.discovery.hwloc import live_xml, load_hwloc
from pinctl.discovery.hwloc.xmlcheck import check_hwloc_xml_bytes
from pinctl.errors import PinctlError, TopologyError, UsageError
from pinctl.kernel.cgroup import cpuset
from pinctl.kernel.files import KernelFiles
from pinctl.model import Node

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "topologies"
CONVERTED = SHARED / "psmgmt-j3c053-juropa3-gpu.v2conv.xml"

pytestmark = pytest.mark.pyhwloc  # the pyhwloc adapter itself; the built-in engine has tests/test_discover_builtin.py

MINIMAL_V2 = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE topology SYSTEM "hwloc2.dtd">
<topology version="2.0">
  <object type="Machine" os_index="0" cpuset="0x00000003" complete_cpuset="0x00000003" allowed_cpuset="0x00000001"
   nodeset="0x00000001" complete_nodeset="0x00000001" allowed_nodeset="0x00000001" gp_index="1">
    <info name="HostName" value="tiny"/>
    <object type="NUMANode" os_index="0" cpuset="0x00000003" complete_cpuset="0x00000003" nodeset="0x00000001"
     complete_nodeset="0x00000001" gp_index="2" local_memory="1073741824"/>
    <object type="Package" os_index="0" cpuset="0x00000003" complete_cpuset="0x00000003" nodeset="0x00000001"
     complete_nodeset="0x00000001" gp_index="3">
      <object type="PU" os_index="0" cpuset="0x00000001" complete_cpuset="0x00000001" nodeset="0x00000001"
       complete_nodeset="0x00000001" gp_index="4"/>
      <object type="PU" os_index="1" cpuset="0x00000002" complete_cpuset="0x00000002" nodeset="0x00000001"
       complete_nodeset="0x00000001" gp_index="5"/>
    </object>
  </object>
</topology>
"""


def cgroup_cpus() -> frozenset[int]:
    """The CPUs this process's cgroup cpuset holds (all online CPUs without one): the allowed set,
    which the affinity it inherited does not narrow."""
    limit = cpuset(KernelFiles("/"))
    return (
        limit.cpus if limit is not None else parse_list(KernelFiles("/").read("/sys/devices/system/cpu/online") or "")
    )


def one_line_error(excinfo: pytest.ExceptionInfo[PinctlError]) -> str:
    msg = str(excinfo.value)
    assert msg and "\n" not in msg
    return msg


@pytest.fixture(scope="module")
def live() -> Node:
    return load_hwloc()


# --- the live system ---------------------------------------------------------------------------


def test_live_cpus_match_the_kernel(live: Node) -> None:
    sysfs = KernelFiles("/")
    online = sysfs.read("/sys/devices/system/cpu/online")
    assert online is not None
    assert live.cpus == parse_list(online)
    assert live.allowed_cpus == cgroup_cpus()
    assert live.source == "live"
    assert live.hostname == socket.gethostname()


def test_live_numa_nodes_match_the_kernel(live: Node) -> None:
    sysfs = KernelFiles("/")
    online = sysfs.read("/sys/devices/system/node/online")
    if online is None:  # kernel without NUMA: hwloc shows one node
        assert len(live.numa_nodes) == 1
        return
    assert {n.os_index for n in live.numa_nodes} == parse_list(online)
    for n in live.numa_nodes:
        cpulist = sysfs.read(f"/sys/devices/system/node/node{n.os_index}/cpulist")
        assert n.cpus == parse_list(cpulist or "")


def test_live_cores_are_the_kernels_smt_siblings(live: Node) -> None:
    sysfs = KernelFiles("/")
    assert live.smt_known
    for core in live.cores:
        siblings = sysfs.read(f"/sys/devices/system/cpu/cpu{core.pus[0]}/topology/thread_siblings_list")
        if siblings is not None:
            assert set(core.pus) == parse_list(siblings)


def test_live_gpus_only_where_the_kernel_has_a_driver(live: Node) -> None:
    sysfs = KernelFiles("/")
    if not sysfs.exists("/proc/driver/nvidia/gpus") and not sysfs.exists("/sys/module/amdgpu"):
        assert all(g.vendor not in ("nvidia", "amd") for g in live.gpus)
    for g in live.gpus:
        assert sysfs.exists(f"/sys/bus/pci/devices/{g.pci.address}")


def test_live_pci_devices_exist_in_sysfs(live: Node) -> None:
    sysfs = KernelFiles("/")
    for nic in live.nics:
        if nic.pci is not None:
            assert sysfs.exists(f"/sys/bus/pci/devices/{nic.pci.address}")
        for dev in nic.netdevs:
            assert sysfs.exists(f"/sys/class/net/{dev}")
    for disk in live.storage:
        assert disk.pci is not None
        if not disk.name.startswith("nvme@"):
            assert sysfs.exists(f"/sys/class/block/{disk.name}")


def test_loading_leaks_no_hwloc_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    before = {k: v for k, v in os.environ.items() if k.startswith("HWLOC_")}
    load_hwloc()
    load_hwloc(xml_path=_write(tmp_path / "tiny.xml", MINIMAL_V2))
    after = {k: v for k, v in os.environ.items() if k.startswith("HWLOC_")}
    assert after == before
    assert "HWLOC_PLUGINS_PATH" not in after or before.get("HWLOC_PLUGINS_PATH") == after["HWLOC_PLUGINS_PATH"]


def test_user_hwloc_variables_do_not_redirect_a_load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    other = _write(tmp_path / "other.xml", MINIMAL_V2)
    monkeypatch.setenv("HWLOC_XMLFILE", other)
    node = load_hwloc()
    assert node.hostname == socket.gethostname() != "tiny"
    assert node.allowed_cpus == cgroup_cpus()
    assert os.environ["HWLOC_XMLFILE"] == other


def test_snapshot_round_trips(live: Node, tmp_path: Path) -> None:
    path = tmp_path / "snap.xml"
    text, crashed = live_xml()
    assert crashed is None  # no hwloc NVML plugin crash on a healthy (or GPU-less) node
    write_file(str(path), text)
    assert '<topology version="2.0">' in path.read_text()  # v2 format: hwloc 2.x reads it too
    again = load_hwloc(xml_path=str(path))
    assert again.source == f"hwloc-xml:{path}"
    assert again.hostname == live.hostname
    assert again.cpus == live.cpus
    assert again.cores == live.cores
    assert [n.os_index for n in again.numa_nodes] == [n.os_index for n in live.numa_nodes]
    assert [g.pci.address for g in again.gpus] == [g.pci.address for g in live.gpus]
    assert [n.name for n in again.nics] == [n.name for n in live.nics]


def test_snapshot_to_unwritable_place_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as e:
        write_file(str(tmp_path / "no" / "such" / "dir" / "snap.xml"), "<topology/>")
    assert "cannot write" in one_line_error(e)


# --- a small file, all facts known ----------------------------------------------------------


def test_minimal_xml_converts(tmp_path: Path) -> None:
    node = load_hwloc(xml_path=_write(tmp_path / "tiny.xml", MINIMAL_V2))
    assert node.hostname == "tiny"
    assert node.cpus == {0, 1}
    assert node.allowed_cpus == {0}  # the file's allowed_cpuset, not this machine's
    assert [n.os_index for n in node.numa_nodes] == [0]
    assert node.numa_nodes[0].memory_bytes == 1 << 30
    # No Core objects: each PU is its own core and SMT is unknown.
    assert not node.smt_known
    assert [c.pus for c in node.cores] == [(0,), (1,)]
    assert node.gpus == () and node.nics == ()
    assert any("no I/O devices" in n for n in node.notes)
    assert node.numa_distances is None


def test_node_is_plain_frozen_data(tmp_path: Path) -> None:
    node = load_hwloc(xml_path=_write(tmp_path / "tiny.xml", MINIMAL_V2))
    assert pickle.loads(pickle.dumps(node)) == node
    with pytest.raises(AttributeError):
        node.hostname = "x"  # type: ignore[misc]


# --- files that must fail with one line -----------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (b"", "empty"),
        (b"  \n\n", "empty"),
        (b"garbage <<< not xml", "malformed XML"),
        (b'<?xml version="1.0"?><topology version="2.0"><object', "malformed XML"),
        (b'<?xml version="1.0"?><system version="1"><cpu/></system>', "not an hwloc topology file"),
        (b'<?xml version="1.0"?><foo/>', "not an hwloc topology file"),
        (b'<?xml version="1.0"?><topology><object type="Machine"/></topology>', "hwloc 1.x XML"),
        (b'<?xml version="1.0"?><topology version="9.0"></topology>', "unsupported hwloc XML version"),
        (b'<?xml version="1.0"?><topology version="2.0"></topology>', "libhwloc rejected"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path: Path, content: bytes, expect: str) -> None:
    path = tmp_path / "bad.xml"
    path.write_bytes(content)
    with pytest.raises(TopologyError) as e:
        load_hwloc(xml_path=str(path))
    msg = one_line_error(e)
    assert expect in msg
    assert str(path) in msg


def test_hwloc1_error_says_how_to_convert() -> None:
    with pytest.raises(TopologyError) as e:
        check_hwloc_xml_bytes(b'<?xml version="1.0"?><topology><object type="Machine"/></topology>', "OLD.xml")
    assert one_line_error(e) == (
        "OLD.xml: hwloc 1.x XML cannot be read by hwloc 3; convert it with hwloc 2.x: "
        "lstopo-no-graphics --input OLD.xml --whole-io --of xml NEW.xml"
    )


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(TopologyError) as e:
        load_hwloc(xml_path=str(tmp_path / "nope.xml"))
    assert "not found" in one_line_error(e)
    with pytest.raises(TopologyError) as e:
        load_hwloc(xml_path=str(tmp_path))
    assert "directory" in one_line_error(e)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.xml"
    path.write_text(MINIMAL_V2)
    path.chmod(0)
    with pytest.raises(TopologyError) as e:
        load_hwloc(xml_path=str(path))
    assert "permission denied" in one_line_error(e)


def test_bad_fsroot(tmp_path: Path) -> None:
    with pytest.raises(TopologyError) as e:
        load_hwloc(fsroot=str(tmp_path / "missing"))
    assert "not a directory" in one_line_error(e)
    (tmp_path / "sys" / "devices").mkdir(parents=True)
    with pytest.raises(TopologyError) as e:
        load_hwloc(fsroot=str(tmp_path))
    assert "no sys/devices/system/cpu" in one_line_error(e)


def test_both_sources_at_once_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TopologyError):
        load_hwloc(xml_path=_write(tmp_path / "t.xml", MINIMAL_V2), fsroot=str(tmp_path))


# --- crash isolation --------------------------------------------------------------------------


def test_unnamed_distances_do_not_crash(tmp_path: Path) -> None:
    """hwloc 2.x writes unnamed <distances2> when converting 1.x files; libhwloc 3.0 segfaults on it."""
    if not CONVERTED.exists():
        pytest.skip("shared topologies not available")
    text = CONVERTED.read_text()
    assert ' name="NUMALatency"' in text
    path = _write(tmp_path / "unnamed.xml", text.replace(' name="NUMALatency"', "", 1))
    try:
        node = load_hwloc(xml_path=path)
    except TopologyError as e:
        assert "\n" not in str(e)
    else:
        assert node.numa_distances is not None
        assert node.distance(0, 1) == node.distance(1, 0) != node.distance(0, 0)
        assert any("distances2" in n for n in node.notes)


def test_unnamed_distances_are_named_in_memory() -> None:
    xml = (
        b'<?xml version="1.0"?><topology version="2.0"><object type="Machine"/>'
        b'<distances2 type="NUMANode" nbobjs="1" kind="5" indexing="os"><indexes length="2">0 </indexes>'
        b'<u64values length="3">10 </u64values></distances2></topology>'
    )
    checked = check_hwloc_xml_bytes(xml, "x.xml")
    assert '<distances2 name="NUMALatency" type="NUMANode"' in checked.text
    assert checked.repairs


def test_a_crash_in_libhwloc_becomes_a_topology_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def crash(src: hwloc_load.Source) -> Node:
        os.kill(os.getpid(), signal.SIGSEGV)
        raise AssertionError("unreachable")

    monkeypatch.setattr(hwloc_load, "_child_load", crash)
    path = _write(tmp_path / "crashy.xml", MINIMAL_V2)
    with pytest.raises(TopologyError) as e:
        load_hwloc(xml_path=path)
    assert one_line_error(e) == f"libhwloc crashed reading {path} (SIGSEGV)"


def test_an_exception_in_the_child_becomes_a_topology_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(src: hwloc_load.Source) -> Node:
        raise OSError("bad things")

    monkeypatch.setattr(hwloc_load, "_child_load", boom)
    with pytest.raises(TopologyError) as e:
        load_hwloc()
    assert "bad things" in one_line_error(e)


def test_a_hung_load_times_out() -> None:
    start = time.monotonic()
    with pytest.raises(TopologyError) as e:
        hwloc_load.run_isolated(lambda: time.sleep(30), what="slow.xml", env={}, timeout=0.5)
    assert "did not finish reading slow.xml" in one_line_error(e)
    assert time.monotonic() - start < 10


def test_without_fork_the_load_runs_in_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delattr(os, "fork")
    before = {k: v for k, v in os.environ.items() if k.startswith("HWLOC_")}
    node = load_hwloc(xml_path=_write(tmp_path / "tiny.xml", MINIMAL_V2))
    assert node.cpus == {0, 1}
    assert {k: v for k, v in os.environ.items() if k.startswith("HWLOC_")} == before
    with pytest.raises(TopologyError) as e:
        load_hwloc(xml_path=_write(tmp_path / "bad.xml", '<?xml version="1.0"?><topology version="2.0"/>'))
    one_line_error(e)


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_live_loads_leave_out_libhwlocs_gpu_runtime_plugins() -> None:
    """hwloc's NVML plugin aborts a live load when one GPU's handle fails (issue 19): pinctl asks NVML
    itself, so a live load blacklists it and the CUDA one; snapshot alone lets NVML in (and retries
    without it on a crash); a gathered tree keeps its own component list."""
    from pinctl.discovery.hwloc.isolated import Source, load_env

    live = load_env(Source(kind="live", what="the live system", label="live"), None)
    assert {"hwloc_nvml", "hwloc_cuda"} <= set(str(live["HWLOC_PLUGINS_BLACKLIST"]).split(","))
    assert {"-nvml", "-cuda"} <= set(str(live["HWLOC_COMPONENTS"]).split(","))
    snap = load_env(Source(kind="live", what="the live system", label="live"), None, hwloc_nvml=True)
    blacklist = str(snap["HWLOC_PLUGINS_BLACKLIST"])
    assert "hwloc_nvml" not in blacklist and "hwloc_cuda" in blacklist
    tree = load_env(Source(kind="fsroot", what="t", label="t", fsroot="/tmp"), None)
    assert tree["HWLOC_COMPONENTS"] == "linux,stop" and tree["HWLOC_PLUGINS_BLACKLIST"] is None
