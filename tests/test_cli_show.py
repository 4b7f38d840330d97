"""`pinctl show` end to end: every fixture and real capture, JSON contract, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import jsonschema
import pytest

from pinctl.cli.main import main
from pinctl.cpuset import parse_list
from pinctl.discovery import discover
from pinctl.discovery.hwloc.xmlcheck import check_hwloc_xml_bytes
from pinctl.kernel.cgroup import cpuset
from pinctl.kernel.files import KernelFiles

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = sorted((ROOT / "fixtures" / "hwloc").glob("*.xml"))
SHARED = ROOT.parent / "shared" / "topologies"


def cgroup_cpus() -> frozenset[int]:
    """The CPUs this process's cgroup cpuset holds (all online CPUs without one): the allowed set,
    which the affinity it inherited does not narrow."""
    limit = cpuset(KernelFiles("/"))
    return (
        limit.cpus if limit is not None else parse_list(KernelFiles("/").read("/sys/devices/system/cpu/online") or "")
    )


def shared(pattern: str) -> list[Path]:
    return sorted(SHARED.glob(pattern)) if SHARED.is_dir() else []


# AWS's g5/p5 files are bus-id skeletons NCCL completes at run time: refused (test_skeletons_are_refused).
SKELETONS = ("aws-g5-48xl.nccl.xml", "aws-p5-48xl.nccl.xml")
READABLE = [p for p in shared("*.xml") if not p.name.endswith(".hwloc1.xml") and p.name not in SKELETONS]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


SCHEMA = json.loads((ROOT / "pinctl" / "schemas" / "node-v1.json").read_text())


def check_contract(data: dict) -> None:  # type: ignore[type-arg]
    """The keys and invariants other tools rely on (docs/show-json.md, pinctl/schemas/node-v1.json)."""
    jsonschema.validate(data, SCHEMA)
    assert data["schema"] == "pinctl.node/v1"
    numa_ids = [n["os_index"] for n in data["numa_nodes"]]
    assert len(set(numa_ids)) == len(numa_ids)
    all_cpus: set[int] = set()
    for n in data["numa_nodes"]:
        assert all(isinstance(c, int) for c in n["cpus"])
        assert not (set(n["cpus"]) & all_cpus), "a CPU in two NUMA nodes"
        all_cpus |= set(n["cpus"])
        assert n["cpuless"] == (n["cpus"] == [])
    assert set(data["allowed_cpus"]) <= set(data["cpus"]) == all_cpus
    buses = [g["pci_bus_id"] for g in data["gpus"]]
    assert buses == sorted(buses), "GPU index must follow PCI bus order"
    assert [g["index"] for g in data["gpus"]] == list(range(len(buses)))
    for dev in data["gpus"] + [n for n in data["nics"] if n["pci_bus_id"]] + data["storage"]:
        assert dev["numa_node"] is None or dev["numa_node"] in numa_ids
        if dev["pci_bus_id"]:
            domain, bus, rest = dev["pci_bus_id"].split(":")
            assert len(domain) == 4 and len(bus) == 2 and rest[2] == "."
    for nic in data["nics"]:
        assert set(nic) >= {"name", "pci_bus_id", "numa_node", "link_layer", "state"}
    m = data["distances"]
    assert len(m["matrix"]) == len(data["gpus"])
    for i, row in enumerate(m["matrix"]):
        assert len(row) == len(m["columns"]) and row[i] == "X"


@pytest.mark.parametrize("name", SKELETONS)
def test_skeletons_are_refused(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    if not (SHARED / name).exists():
        pytest.skip("shared topologies not available")
    rc, out, err = run(capsys, "show", "--topology", str(SHARED / name))
    assert rc != 0 and out == "" and len(err.strip().splitlines()) == 1
    assert "lists bus ids only" in err and "Traceback" not in err


@pytest.mark.parametrize("path", FIXTURES + READABLE, ids=lambda p: p.name)
def test_show_json_on_every_topology(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "show", "--json", "--topology", str(path))
    assert rc == 0, err
    check_contract(json.loads(out))


@pytest.mark.parametrize("path", FIXTURES + READABLE, ids=lambda p: p.name)
def test_show_plain_on_every_topology(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "show", "--topology", str(path))
    assert rc == 0, err
    assert "NUMA domains" in out and "\x1b[" not in out
    data = json.loads(run(capsys, "show", "--json", "--topology", str(path))[1])
    for gpu in data["gpus"]:
        assert f"GPU{gpu['index']}" in out


def test_dgx_fixture_as_a_user_reads_it(capsys: pytest.CaptureFixture[str]) -> None:
    # Documented in fixtures/gen_hwloc.py: GPU0..7 are PIX to mlx5_0,3,4,5,6,9,10,11; mlx5_5 is down.
    _, out, _ = run(capsys, "show", "--json", "--topology", str(ROOT / "fixtures/hwloc/dgx-h100-portdown.xml"))
    data = json.loads(out)
    cols = data["distances"]["columns"]
    pix = [
        [c for c, lvl in zip(cols, row, strict=True) if lvl == "PIX" and c.startswith("mlx5")]
        for row in data["distances"]["matrix"]
    ]
    assert pix == [["mlx5_0"], ["mlx5_3"], ["mlx5_4"], ["mlx5_5"], ["mlx5_6"], ["mlx5_9"], ["mlx5_10"], ["mlx5_11"]]
    states = {n["name"]: n["state"] for n in data["nics"]}
    assert states["mlx5_5"] == "DOWN" and states["mlx5_0"] == "ACTIVE"
    layers = {n["name"]: n["link_layer"] for n in data["nics"]}
    assert layers["mlx5_1"] == "Ethernet" and layers["mlx5_0"] == "InfiniBand"
    assert [g["numa_node"] for g in data["gpus"]] == [0, 0, 0, 0, 1, 1, 1, 1]


@pytest.mark.parametrize("path", shared("*.hwloc1.xml"), ids=lambda p: p.name)
def test_hwloc1_files_get_a_conversion_hint(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "show", "--topology", str(path))
    assert rc == 3 and out == ""
    assert err.count("\n") == 1 and "lstopo" in err and "hwloc 1.x" in err


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "no such file"),
        (b"", "empty"),
        (b"<topology><object", "malformed"),
        (b"\x00\x01garbage", "not valid xml"),
        (b"<html><body/></html>", "neither hwloc"),
        (b'<system version="1"></system>', "describes no cpus"),
    ],
)
def test_bad_topology_files_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, words: str
) -> None:
    path = tmp_path / "topo.xml"
    if content is not None:
        path.write_bytes(content)
    rc, out, err = run(capsys, "show", "--topology", str(path))
    assert rc != 0 and out == ""
    assert err.startswith("pinctl: error:") and err.count("\n") == 1, err
    assert words in err.lower() and path.name in err


def test_bad_root_and_conflicting_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "show", "--root", str(tmp_path / "nowhere"))
    assert rc != 0 and err.count("\n") == 1 and "Traceback" not in err
    rc, _, err = run(capsys, "show", "--root", str(tmp_path), "--topology", str(FIXTURES[0]))
    assert rc != 0 and err.count("\n") == 1


@pytest.mark.parametrize("tarball", shared("*.tar.bz2"), ids=lambda p: p.name)
def test_show_on_gathered_trees(tarball: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with tarfile.open(tarball) as tar:
        tar.extractall(tmp_path, filter="data")
    (top,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    rc, out, err = run(capsys, "show", "--json", "--root", str(top))
    assert rc == 0, err
    data = json.loads(out)
    check_contract(data)
    assert data["source"] == f"sysfs:{top}"


def test_live_show_matches_this_machine(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "show", "--json")
    assert rc == 0, err
    data = json.loads(out)
    check_contract(data)
    assert set(data["allowed_cpus"]) == cgroup_cpus()
    online = Path("/sys/devices/system/node").glob("node[0-9]*")
    assert sorted(n["os_index"] for n in data["numa_nodes"]) == sorted(int(p.name[4:]) for p in online)
    if not Path("/dev/nvidiactl").exists():
        assert any("NVML" in note for note in data["notes"])


def test_snapshot_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "snap.xml"
    rc, _, err = run(capsys, "snapshot", "-o", str(out_file))
    assert rc == 0, err
    live = json.loads(run(capsys, "show", "--json", "--no-nvml")[1])
    saved = json.loads(run(capsys, "show", "--json", "--topology", str(out_file))[1])
    for key in ("cpus", "numa_nodes", "cores", "l3_groups", "packages"):
        assert saved[key] == live[key]
    assert [d["pci_bus_id"] for d in saved["storage"]] == [d["pci_bus_id"] for d in live["storage"]]


def test_console_script_and_module_entry_points() -> None:
    exe = Path(sys.executable).with_name("pinctl")
    for argv in ([str(exe)], [sys.executable, "-m", "pinctl"]):
        proc = subprocess.run([*argv, "show", "--json", "--no-nvml"], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["schema"] == "pinctl.node/v1"
        assert "Traceback" not in proc.stderr


def test_schema_rejects_what_tools_could_not_rely_on(capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(run(capsys, "show", "--json", "--topology", str(FIXTURES[0]))[1])
    for mutate in (
        lambda d: d["gpus"][0].update(pci_bus_id="1b:00.0"),  # short form
        lambda d: d["numa_nodes"][0].update(cpus="0-3"),  # a string, not OS numbers
        lambda d: d["nics"][0].update(kind="fibrechannel"),
        lambda d: d.pop("allowed_cpus"),
    ):
        bad = json.loads(json.dumps(data))
        mutate(bad)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, SCHEMA)


@pytest.mark.parametrize("args", [["-o", "-"], ["--output=-"]])
def test_snapshot_dash_writes_standard_output(tmp_path: Path, args: list[str]) -> None:
    """`snapshot -o -` is standard output, as lstopo's '-' (issue 11: it wrote a file named '-')."""
    proc = subprocess.run([sys.executable, "-m", "pinctl", "snapshot", *args], capture_output=True, text=True,
                          cwd=tmp_path, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert not list(tmp_path.iterdir())
    assert check_hwloc_xml_bytes(proc.stdout.encode(), "stdout").version.startswith("2.")
    saved = tmp_path / "snap.xml"
    saved.write_text(proc.stdout)
    assert discover(topology=str(saved)).cpus == discover(nvml=False).cpus
