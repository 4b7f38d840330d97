"""The generated hwloc XML fixtures: committed bytes match the generator, and hwloc sees
the machines the generator's docstrings describe.

Expectations are written from the documented node facts (DGX H100 user guide, EPYC
NPS4 layout, Azure ND H100 v5, GH200, the DGX A100 nvidia-smi matrix, the LLNL Lassen
capture, ALCF Aurora, ...), not read back from the generator, and
checked through pyhwloc (libhwloc 3.0), i.e. through hwloc's own parser.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pyhwloc = pytest.importorskip("pyhwloc")
from pyhwloc import Topology  # noqa: E402
from pyhwloc.topology import TopologyFlags, TypeFilter  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures" / "hwloc"
NAMES = [
    "dgx-h100.xml",
    "dgx-h100-portdown.xml",
    "epyc-nps4-8gpu.xml",
    "cloud-vm-nolocality.xml",
    "gpu-memory-numa.xml",
    "interleaved.xml",
    "cgroup-restricted.xml",
    "dgx-a100.xml",
    "dgx-a100-dead-hca.xml",
    "dual-port-4gpu.xml",
    "intel-gpu.xml",
    "gpus-one-socket.xml",
    "uneven-nvme.xml",
]


def r(a: int, b: int) -> set[int]:
    return set(range(a, b + 1))


@dataclass
class Pci:
    busid: str
    class_id: int
    vendor: int
    device: int
    local_cpus: set[int]
    local_type: str
    osdevs: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class View:
    """What hwloc reports, copied out of the topology (objects die with it)."""

    pus: set[int]
    allowed: set[int]
    complete: set[int]
    cores: list[set[int]]
    packages: list[set[int]]
    numa: dict[int, tuple[set[int], str | None, int, dict[str, str]]]
    l3: list[set[int]]
    pci: dict[str, Pci]
    ofed: dict[str, dict[str, str]]
    blocks: list[str]
    gpu_osdevs: list[str]
    distances: dict[tuple[int, int], int]
    infos: dict[str, str]
    switch_pairs: dict[str, set[str]]  # PCI busid -> busids sharing a PCIe switch port
    chains: dict[str, list[tuple[int, bool]]]  # PCI busid -> ancestors (gp_index, is a bridge below a root)
    osdev_parents: dict[str, str]  # OS device name -> its parent's PCI busid or OS device name


def _busid(o: object) -> str:
    a = o.attr  # type: ignore[attr-defined]
    return f"{a.domain:04x}:{a.bus:02x}:{a.dev:02x}.{a.func}"


@contextmanager
def _topology(name: str, disallowed: bool) -> Iterator[Topology]:
    topo = Topology.from_xml_file(FIXTURES / name).set_io_types_filter(TypeFilter.KEEP_ALL)
    if disallowed:
        topo.set_flags(TopologyFlags.INCLUDE_DISALLOWED)
    topo.load()
    try:
        yield topo
    finally:
        topo.destroy()


def view(name: str, disallowed: bool = True) -> View:
    with _topology(name, disallowed) as t:
        root = t.get_root_obj()
        pci: dict[str, Pci] = {}
        devs = list(t.iter_pci_devices())
        for d in devs:
            anc = d.parent
            while anc is not None and anc.is_io():
                anc = anc.parent
            assert anc is not None
            pci[_busid(d)] = Pci(
                _busid(d), d.attr.class_id, d.attr.vendor_id, d.attr.device_id, set(anc.cpuset or []), anc.type.name
            )
        chains: dict[str, list[tuple[int, bool]]] = {}
        for d in devs:
            chain, anc = [], d.parent
            while anc is not None:  # (gp_index, is a PCI-PCI bridge below a root port)
                chain.append((anc.gp_index, anc.is_bridge() and anc.attr.depth > 0))
                anc = anc.parent
            chains[_busid(d)] = chain
        pairs: dict[str, set[str]] = {}
        for a, ca in chains.items():
            for b, cb in chains.items():
                ids = {g for g, _ in cb}
                nearest = next(x for x in ca if x[0] in ids)
                if a != b and nearest[1]:  # nearest common ancestor is a switch port: PIX
                    pairs.setdefault(a, set()).add(b)
        ofed: dict[str, dict[str, str]] = {}
        blocks, gpus = [], []
        osdev_parents: dict[str, str] = {}
        for o in t.iter_os_devices():
            parent = o.parent
            info = dict(o.info)
            if parent is not None:
                osdev_parents[o.name or ""] = _busid(parent) if parent.is_pci_device() else parent.name or ""
            if parent is not None and parent.is_pci_device():
                pci[_busid(parent)].osdevs[o.name or ""] = info
                info["_pci"] = _busid(parent)
            if o.attr.types & 32:  # OPENFABRICS
                ofed[o.name or ""] = info
            if o.is_storage():
                blocks.append(o.name or "")
            if o.is_gpu():
                gpus.append(o.name or "")
        numa = {n.os_index: (set(n.cpuset or []), n.subtype, n.local_memory, dict(n.info)) for n in t.iter_numa_nodes()}
        dist: dict[tuple[int, int], int] = {}
        for dm in t.get_distances():
            if dm.name == "NUMALatency":
                objs = dm.objects
                for i, a in enumerate(objs):
                    for j, b in enumerate(objs):
                        dist[(a.os_index, b.os_index)] = int(dm[i, j])
        return View(
            pus={p.os_index for p in t.iter_cpus()},
            allowed=set(t.allowed_cpuset),
            complete=set(root.complete_cpuset or []),
            cores=[set(c.cpuset or []) for c in t.iter_cores()],
            packages=[set(p.cpuset or []) for p in t.iter_packages()],
            numa=numa,
            l3=[set(o.cpuset or []) for o in t.iter_all_breadth_first() if o.type.name == "L3CACHE"],
            pci=pci,
            ofed=ofed,
            blocks=sorted(blocks),
            gpu_osdevs=sorted(gpus),
            distances=dist,
            infos={**root.info, **t.info},
            switch_pairs=pairs,
            chains=chains,
            osdev_parents=osdev_parents,
        )


def gpus(v: View, vendor: int, classes: tuple[int, ...]) -> list[Pci]:
    """Accelerators in PCI bus order (NVML/ROCm order), by vendor and class."""
    return sorted((p for p in v.pci.values() if p.vendor == vendor and p.class_id in classes), key=lambda p: p.busid)


def nic_of(v: View, dev: Pci) -> list[str]:
    """Verbs devices on PCI functions sharing a PCIe switch with ``dev`` (PIX)."""
    names = []
    for busid in sorted(v.switch_pairs.get(dev.busid, set())):
        names += [n for n in v.pci[busid].osdevs if n in v.ofed]
    return names


def pcie_level(v: View, a: str, b: str) -> str:
    """nvidia-smi's PIX (at most one bridge below the shared one) or PXB (more) between two PCI
    functions whose nearest common ancestor is a PCI bridge; "far" when it is a host bridge or above."""
    ca, cb = v.chains[a], v.chains[b]
    ids_b = [g for g, _ in cb]
    i = next(i for i, (g, _) in enumerate(ca) if g in ids_b)
    if not ca[i][1]:
        return "far"
    return "PIX" if i <= 1 and ids_b.index(ca[i][0]) <= 1 else "PXB"


def test_committed_fixtures_match_generator(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "fixtures" / "gen_hwloc.py"), str(tmp_path)], check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(NAMES)
    for name in NAMES:
        assert (tmp_path / name).read_bytes() == (FIXTURES / name).read_bytes(), f"{name} drifted: regenerate"


@pytest.mark.parametrize("name", NAMES)
def test_fixture_is_hwloc_xml_v2_with_named_matrix(name: str) -> None:
    text = (FIXTURES / name).read_text()
    assert '<topology version="2.0">' in text  # hwloc 2.x and 3.x both read v2
    assert 'name="NUMALatency"' in text  # libhwloc 3.0 crashes on unnamed distances2


# ------------------------------------------------------------------ DGX H100

DGX_S0 = r(0, 55) | r(112, 167)
DGX_S1 = r(56, 111) | r(168, 223)
DGX_GPU_BUSES = [
    "0000:1b:00.0",
    "0000:43:00.0",
    "0000:52:00.0",
    "0000:61:00.0",
    "0000:9d:00.0",
    "0000:c3:00.0",
    "0000:d1:00.0",
    "0000:df:00.0",
]
DGX_GPU_NIC = ["mlx5_0", "mlx5_3", "mlx5_4", "mlx5_5", "mlx5_6", "mlx5_9", "mlx5_10", "mlx5_11"]
DGX_STORAGE = ["mlx5_1", "mlx5_2", "mlx5_7", "mlx5_8"]


@pytest.fixture(scope="module")
def dgx() -> View:
    return view("dgx-h100.xml")


def test_dgx_cpus_and_numa(dgx: View) -> None:
    assert dgx.pus == r(0, 223)
    assert len(dgx.cores) == 112 and all(len(c) == 2 for c in dgx.cores)
    assert dgx.packages == [DGX_S0, DGX_S1]
    assert {k: v[0] for k, v in dgx.numa.items()} == {0: DGX_S0, 1: DGX_S1}
    assert all(v[2] > 900 * 2**30 for v in dgx.numa.values())
    assert dgx.l3 == [DGX_S0, DGX_S1]
    assert dgx.distances == {(0, 0): 10, (0, 1): 21, (1, 0): 21, (1, 1): 10}
    assert dgx.infos["HostName"] == "dgx-h100-01"  # hwloc 3 keeps it in topology infos
    assert dgx.infos["DMIProductName"] == "DGXH100"


def test_dgx_gpus_locality_and_decoys(dgx: View) -> None:
    g = gpus(dgx, 0x10DE, (0x0302,))
    assert [p.busid for p in g] == DGX_GPU_BUSES
    assert all(p.device == 0x2330 for p in g)
    assert [p.local_cpus for p in g] == [DGX_S0] * 4 + [DGX_S1] * 4
    assert all(p.local_type == "PACKAGE" for p in g)
    nvswitch = [p for p in dgx.pci.values() if (p.vendor, p.device) == (0x10DE, 0x22A3)]
    assert len(nvswitch) == 4 and all(p.class_id == 0x0680 for p in nvswitch)
    bmc = [p for p in dgx.pci.values() if p.vendor == 0x1A03 and p.class_id == 0x0300]
    assert len(bmc) == 1 and "card0" in bmc[0].osdevs
    # hwloc calls the BMC's DRM card0 a GPU OS device: counting GPUs that way is wrong.
    assert "card0" in dgx.gpu_osdevs
    assert sorted(n for n in dgx.gpu_osdevs if n.startswith("nvml")) == [f"nvml{i}" for i in range(8)]
    assert [list(p.osdevs) for p in g] == [[f"cuda{i}", f"nvml{i}"] for i in range(8)]


def test_dgx_nics_pairing_and_storage(dgx: View) -> None:
    assert sorted(dgx.ofed) == sorted(f"mlx5_{i}" for i in range(12))
    g = gpus(dgx, 0x10DE, (0x0302,))
    assert [nic_of(dgx, p) for p in g] == [[n] for n in DGX_GPU_NIC]
    for n in DGX_GPU_NIC:
        info = dgx.ofed[n]
        assert info["Port1State"] == "4" and info["Port1LinkLayer"] == "InfiniBand"
        assert dgx.pci[info["_pci"]].class_id == 0x0207
        assert int(info["Port1LID"], 16) != 0
    for n in DGX_STORAGE:
        info = dgx.ofed[n]
        assert info["Port1LinkLayer"] == "Ethernet" and info["Port1LID"] == "0x0"
        assert dgx.pci[info["_pci"]].class_id == 0x0200
    assert [dgx.pci[dgx.ofed[n]["_pci"]].local_cpus == DGX_S0 for n in DGX_STORAGE] == [True, True, False, False]
    ib0 = dgx.pci["0000:18:00.0"].osdevs
    assert list(ib0) == ["ibp24s0", "mlx5_0"]
    assert len(ib0["ibp24s0"]["Address"].split(":")) == 20  # IPoIB hardware address


def test_dgx_nvme(dgx: View) -> None:
    assert dgx.blocks == sorted(f"nvme{i}n1" for i in range(10))
    nvme = [p for p in dgx.pci.values() if p.class_id == 0x0108]
    assert len(nvme) == 10
    # one U.2 drive on each GPU's switch
    assert all(any(dgx.pci[b].class_id == 0x0108 for b in dgx.switch_pairs[busid]) for busid in DGX_GPU_BUSES)


def test_dgx_portdown_variant_differs_in_one_port_only(dgx: View) -> None:
    down = view("dgx-h100-portdown.xml")
    states = {n: i["Port1State"] for n, i in down.ofed.items()}
    assert states.pop("mlx5_5") == "1"
    assert set(states.values()) == {"4"}
    assert down.pus == dgx.pus and set(down.pci) == set(dgx.pci)


# ------------------------------------------------------------------ EPYC NPS4


def nps4_node_cpus(node: int) -> set[int]:
    s, q = divmod(node, 4)
    cores = range(96 * s + 24 * q, 96 * s + 24 * q + 24)
    return set(cores) | {192 + c for c in cores}


def test_epyc_nps4_cpus_numa_l3() -> None:
    v = view("epyc-nps4-8gpu.xml")
    assert v.pus == r(0, 383) and len(v.cores) == 192
    assert v.packages == [r(0, 95) | r(192, 287), r(96, 191) | r(288, 383)]
    assert {k: x[0] for k, x in v.numa.items()} == {k: nps4_node_cpus(k) for k in range(8)}
    assert len(v.l3) == 24 and all(len(c) == 16 for c in v.l3)
    assert v.distances[(0, 0)] == 10 and v.distances[(0, 3)] == 12 and v.distances[(0, 4)] == 32
    assert v.distances[(5, 6)] == 12 and v.distances[(7, 2)] == 32

    # MI300X is a "processing accelerator" (class 0x1200), not a display class.
    assert gpus(v, 0x1002, (0x0300, 0x0302, 0x0380)) == []
    g = gpus(v, 0x1002, (0x1200,))
    assert [p.busid for p in g] == [f"0000:{b:02x}:00.0" for b in (5, 0x25, 0x45, 0x65, 0x85, 0xA5, 0xC5, 0xE5)]
    assert [p.local_cpus for p in g] == [nps4_node_cpus(n) for n in (3, 2, 1, 0, 7, 6, 5, 4)]
    assert all(p.local_type == "GROUP" for p in g)
    assert [list(p.osdevs) for p in g] == [[f"rsmi{i}"] for i in range(8)]
    assert [nic_of(v, p) for p in g] == [[f"mlx5_{i}"] for i in range(8)]
    assert all(i["Port1LID"] == "0x0" and "Port1LinkLayer" not in i for i in v.ofed.values())
    assert v.blocks == [f"nvme{i}n1" for i in range(8)]


# ------------------------------------------------------------------ cloud VM

AZ_GPU_DOMAINS = [1, 2, 3, 8, 9, 10, 11, 12]


def test_cloud_vm_has_no_io_locality() -> None:
    v = view("cloud-vm-nolocality.xml")
    assert v.pus == r(0, 95) and len(v.cores) == 96  # SMT not exposed
    assert {k: x[0] for k, x in v.numa.items()} == {0: r(0, 47), 1: r(48, 95)}
    assert all(p.local_type == "MACHINE" and p.local_cpus == r(0, 95) for p in v.pci.values())
    g = gpus(v, 0x10DE, (0x0302,))
    assert [p.busid for p in g] == [f"{d:04x}:00:00.0" for d in AZ_GPU_DOMAINS]
    ib = sorted(n for n, i in v.ofed.items() if v.pci[i["_pci"]].class_id == 0x0207)
    assert ib == [f"mlx5_ib{i}" for i in range(8)]
    assert sorted(v.ofed) == sorted([*ib, "mlx5_an0"])
    assert [v.ofed[n]["_pci"] for n in ib] == [f"{0x101 + i:04x}:00:00.0" for i in range(8)]
    assert v.pci[v.ofed["mlx5_an0"]["_pci"]].class_id == 0x0200
    assert all(not pairs for pairs in v.switch_pairs.values())  # nothing shares a switch


# ------------------------------------------------------------------ GH200


def test_gpu_memory_numa_nodes() -> None:
    v = view("gpu-memory-numa.xml")
    s0, s1 = r(0, 71), r(72, 143)
    assert v.pus == r(0, 143) and len(v.cores) == 144
    assert sorted(v.numa) == [0, 1, 2, 10]
    assert {k: x[1] for k, x in v.numa.items()} == {0: None, 1: None, 2: "GPUMemory", 10: "GPUMemory"}
    # hwloc gives CPU-less nodes their parent's cpuset: the subtype says what they are.
    assert {k: x[0] for k, x in v.numa.items()} == {0: s0, 1: s1, 2: s0, 10: s1}
    g = gpus(v, 0x10DE, (0x0302,))
    assert [p.busid for p in g] == ["0009:01:00.0", "0019:01:00.0"]
    assert [p.local_cpus for p in g] == [s0, s1]
    assert [v.numa[n][3]["PCIBusID"] for n in (2, 10)] == [p.busid for p in g]
    assert all(90 * 2**30 < v.numa[n][2] < 100 * 2**30 for n in (2, 10))
    assert all(v.numa[n][2] > 400 * 2**30 for n in (0, 1))
    assert v.distances[(0, 2)] < v.distances[(0, 10)] and v.distances[(2, 2)] == 10
    assert len(v.ofed) == 2 and v.blocks == ["nvme0n1"]


# ------------------------------------------------------------------ interleaved


def test_interleaved_cpu_numbering() -> None:
    v = view("interleaved.xml")
    even, odd = set(range(0, 64, 2)), set(range(1, 64, 2))
    assert v.packages == [even, odd]
    assert {k: x[0] for k, x in v.numa.items()} == {0: even, 1: odd}
    assert sorted(map(sorted, v.cores))[:2] == [[0, 32], [1, 33]]
    g = gpus(v, 0x10DE, (0x0302,))
    assert [p.local_cpus for p in g] == [even, even, odd, odd]
    nics = {n: v.pci[i["_pci"]].local_cpus for n, i in v.ofed.items()}
    assert nics == {"mlx5_0": even, "mlx5_1": odd}
    vga = [p for p in v.pci.values() if p.class_id == 0x0300]
    assert [p.vendor for p in vga] == [0x102B]  # Matrox iDRAC video, not an accelerator


# ------------------------------------------------------------------ cgroup

CG_ALLOWED = r(16, 47) | r(80, 111)


def test_cgroup_allowed_subset_kept_with_include_disallowed() -> None:
    v = view("cgroup-restricted.xml", disallowed=True)
    assert v.pus == r(0, 127)
    assert v.allowed == CG_ALLOWED
    assert v.infos["LinuxCgroup"].startswith("/system.slice/slurmstepd.scope/job_")
    assert len(gpus(v, 0x10DE, (0x0302,))) == 4  # device cgroups do not show in hwloc


def test_cgroup_default_load_drops_disallowed_pus() -> None:
    v = view("cgroup-restricted.xml", disallowed=False)
    assert v.pus == CG_ALLOWED
    assert v.complete == r(0, 127)
    assert {k: x[0] for k, x in v.numa.items()} == {0: r(16, 31) | r(80, 95), 1: r(32, 47) | r(96, 111)}


# ------------------------------------------------------------------ DGX A100

# nvidia-smi topo -m on a DGX A100 (shared/topologies/nvidia-smi/dgx-a100.txt): per GPU, its
# NUMA node and the two HCAs at PXB; EPYC 7742 NPS4 gives NUMA node n 16 cores and siblings.
A100_GPU_NUMA = [3, 3, 1, 1, 7, 7, 5, 5]
A100_GPU_HCAS = (
    [["mlx5_0", "mlx5_1"]] * 2 + [["mlx5_2", "mlx5_3"]] * 2 + [["mlx5_6", "mlx5_7"]] * 2 + [["mlx5_8", "mlx5_9"]] * 2
)
A100_STORAGE = [("mlx5_4", "mlx5_5"), ("mlx5_10", "mlx5_11")]


def a100_node_cpus(node: int) -> set[int]:
    cores = range(16 * node, 16 * node + 16)
    return set(cores) | {128 + c for c in cores}


@pytest.fixture(scope="module")
def a100() -> View:
    return view("dgx-a100.xml")


def pxb_hcas(v: View, busid: str) -> list[str]:
    return sorted(
        (n for n, i in v.ofed.items() if pcie_level(v, busid, i["_pci"]) == "PXB"), key=lambda n: int(n.split("_")[1])
    )


def test_dgx_a100_cpus_numa_l3(a100: View) -> None:
    assert a100.pus == r(0, 255) and len(a100.cores) == 128 and all(len(c) == 2 for c in a100.cores)
    assert a100.packages == [r(0, 63) | r(128, 191), r(64, 127) | r(192, 255)]
    assert {k: x[0] for k, x in a100.numa.items()} == {k: a100_node_cpus(k) for k in range(8)}
    # the CPU affinities nvidia-smi prints for GPU0/1, 2/3, 4/5, 6/7
    assert a100.numa[3][0] == r(48, 63) | r(176, 191) and a100.numa[1][0] == r(16, 31) | r(144, 159)
    assert a100.numa[7][0] == r(112, 127) | r(240, 255) and a100.numa[5][0] == r(80, 95) | r(208, 223)
    assert len(a100.l3) == 32 and all(len(c) == 8 for c in a100.l3)  # 16 MB L3 per 4-core CCX
    assert sum(x[2] for x in a100.numa.values()) > 1000 * 10**9 - 20 * 2**30  # 1 TB
    assert a100.distances[(0, 0)] == 10 and a100.distances[(0, 3)] < a100.distances[(0, 4)]
    assert a100.infos["DMIProductName"] == "DGXA100"


def test_dgx_a100_gpus_and_hca_pairs(a100: View) -> None:
    g = gpus(a100, 0x10DE, (0x0302,))
    assert [p.device for p in g] == [0x20B0] * 8 and g[0].busid == "0000:07:00.0"
    assert [p.local_cpus for p in g] == [a100_node_cpus(n) for n in A100_GPU_NUMA]
    assert [pxb_hcas(a100, p.busid) for p in g] == A100_GPU_HCAS
    assert all(pcie_level(a100, p.busid, i["_pci"]) != "PIX" for p in g for i in a100.ofed.values())
    assert [list(p.osdevs) for p in g] == [[f"cuda{i}", f"nvml{i}"] for i in range(8)]


def test_dgx_a100_hcas_and_storage_nics(a100: View) -> None:
    assert sorted(a100.ofed) == sorted(f"mlx5_{i}" for i in range(12))
    # mlx5 names follow PCI bus order (the kernel probes in bus order)
    by_bus = sorted(a100.ofed, key=lambda n: a100.ofed[n]["_pci"])
    assert by_bus == [f"mlx5_{i}" for i in range(12)]
    assert a100.ofed["mlx5_0"]["_pci"] == "0000:0c:00.0"
    storage = {n for pair in A100_STORAGE for n in pair}
    for n, info in a100.ofed.items():
        pci = a100.pci[info["_pci"]]
        assert (pci.vendor, pci.device) == (0x15B3, 0x101B)  # ConnectX-6
        assert info["Port1State"] == "4" and "Port2State" not in info
        if n in storage:
            assert pci.class_id == 0x0200 and info["Port1LID"] == "0x0"
        else:
            assert pci.class_id == 0x0207 and int(info["Port1LID"], 16) != 0
            net = [d for d in pci.osdevs if d != n]
            assert len(net) == 1 and len(pci.osdevs[net[0]]["Address"].split(":")) == 20  # IPoIB
    for a, b in A100_STORAGE:  # two functions of one dual-port card, PIX to each other, no GPU near
        pa, pb = a100.ofed[a]["_pci"], a100.ofed[b]["_pci"]
        assert (pa[:-1], pa[-1], pb[-1]) == (pb[:-1], "0", "1")
        assert pcie_level(a100, pa, pb) == "PIX"
        assert all(pcie_level(a100, pa, p.busid) == "far" for p in gpus(a100, 0x10DE, (0x0302,)))


def test_dgx_a100_dead_hca_is_absent_and_the_rest_unchanged(a100: View) -> None:
    dead = view("dgx-a100-dead-hca.xml")
    gone = a100.ofed["mlx5_2"]["_pci"]
    assert gone == "0000:4b:00.0" and gone not in dead.pci
    assert set(dead.pci) == set(a100.pci) - {gone}
    # the others keep their names and functions, so the fixture compares 1:1 with the healthy node
    assert {n: i["_pci"] for n, i in dead.ofed.items()} == {n: i["_pci"] for n, i in a100.ofed.items() if n != "mlx5_2"}
    assert "ibp75s0" not in dead.osdev_parents
    g = gpus(dead, 0x10DE, (0x0302,))
    expect = [[n for n in hcas if n != "mlx5_2"] for hcas in A100_GPU_HCAS]
    assert [pxb_hcas(dead, p.busid) for p in g] == expect
    assert expect[2] == expect[3] == ["mlx5_3"]
    assert dead.pus == a100.pus and dead.numa == a100.numa


# ------------------------------------------------------------------ AC922 dual-port HCAs

# LLNL Lassen (IBM AC922, mpibind coral-lassen.xml): POWER9 chips 0 and 8, SMT4, V100s behind a
# PLX switch per socket, one dual-port ConnectX-5 per socket on its own PHB.
P9_S0, P9_S1 = r(0, 87), r(88, 175)
AC922_GPUS = ["0004:04:00.0", "0004:05:00.0", "0035:03:00.0", "0035:04:00.0"]
AC922_CARDS = {"0003:01:00": ("mlx5_0", "mlx5_1"), "0033:01:00": ("mlx5_2", "mlx5_3")}


def test_dual_port_power9_cpus_and_numa() -> None:
    v = view("dual-port-4gpu.xml")
    assert v.pus == r(0, 175) and len(v.cores) == 44 and all(len(c) == 4 for c in v.cores)
    assert v.packages == [P9_S0, P9_S1]
    assert {k: x[0] for k, x in v.numa.items()} == {0: P9_S0, 8: P9_S1}
    assert v.distances == {(0, 0): 10, (0, 8): 40, (8, 0): 40, (8, 8): 10}
    assert len(v.l3) == 22 and all(len(c) == 8 for c in v.l3)  # one L3 per core pair
    assert v.infos["Architecture"] == "ppc64le" and v.infos["PlatformModel"] == "PowerNV 8335-GTW"


def test_dual_port_cards_each_function_its_own_device() -> None:
    v = view("dual-port-4gpu.xml")
    g = gpus(v, 0x10DE, (0x0302,))
    assert [p.busid for p in g] == AC922_GPUS and all(p.device == 0x1DB1 for p in g)
    assert [p.local_cpus for p in g] == [P9_S0, P9_S0, P9_S1, P9_S1]
    assert pcie_level(v, AC922_GPUS[0], AC922_GPUS[1]) == "PIX"  # one PLX switch per socket
    assert sorted(v.ofed) == [f"mlx5_{i}" for i in range(4)]
    for s, (card, names) in enumerate(AC922_CARDS.items()):
        infos = [v.ofed[n] for n in names]
        assert [i["_pci"] for i in infos] == [f"{card}.{f}" for f in (0, 1)]
        assert all(v.pci[i["_pci"]].class_id == 0x0207 and v.pci[i["_pci"]].device == 0x1019 for i in infos)
        assert all(i["Port1State"] == "4" and int(i["Port1LID"], 16) and "Port2State" not in i for i in infos)
        assert infos[0]["Port1LID"] != infos[1]["Port1LID"]
        assert infos[0]["SysImageGUID"] == infos[1]["SysImageGUID"] != infos[1]["NodeGUID"]
        assert pcie_level(v, infos[0]["_pci"], infos[1]["_pci"]) == "PIX"
        assert all(v.pci[i["_pci"]].local_cpus == (P9_S0, P9_S1)[s] for i in infos)
        # on its own PHB (PCI domain), not under the GPU switch: equally far from both GPUs
        for gb in AC922_GPUS[2 * s : 2 * s + 2]:
            assert {pcie_level(v, gb, i["_pci"]) for i in infos} == {"far"}
            assert gb[:4] != card[:4]
    plain = [p for p in v.pci.values() if p.class_id == 0x0200]
    assert len(plain) == 2 and not any(n in v.ofed for p in plain for n in p.osdevs)  # BCM5719, no RDMA


# ------------------------------------------------------------------ Intel GPU (Aurora)

# ALCF Aurora node: 2x Xeon CPU Max 9470C (52 cores, HT), HBM as CPU-less NUMA nodes (flat),
# 6 Data Center GPU Max 1550 (8086:0bd5), 3 per socket; 8 Slingshot 11 NICs (17db), 4 per socket.
AU_S0, AU_S1 = r(0, 51) | r(104, 155), r(52, 103) | r(156, 207)


@pytest.fixture(scope="module")
def aurora() -> View:
    return view("intel-gpu.xml")


def test_intel_cpus_and_hbm_numa(aurora: View) -> None:
    assert aurora.pus == r(0, 207) and len(aurora.cores) == 104
    assert aurora.packages == [AU_S0, AU_S1]
    assert {k: (x[0], x[1]) for k, x in aurora.numa.items()} == {
        0: (AU_S0, "DRAM"),
        1: (AU_S1, "DRAM"),
        2: (AU_S0, "HBM"),
        3: (AU_S1, "HBM"),
    }
    assert all(60 * 2**30 < aurora.numa[n][2] <= 64 * 2**30 for n in (2, 3))  # 64 GB HBM per socket
    assert all(aurora.numa[n][2] > 480 * 2**30 for n in (0, 1))
    d = aurora.distances
    assert d[(0, 2)] < d[(0, 1)] and d[(1, 3)] < d[(1, 2)] and d[(2, 2)] == 10


def test_intel_gpus_have_drm_and_level_zero_devices(aurora: View) -> None:
    assert gpus(aurora, 0x10DE, (0x0302,)) == []
    g = gpus(aurora, 0x8086, (0x0380,))
    assert len(g) == 6 and all(p.device == 0x0BD5 for p in g)
    assert [p.local_cpus for p in g] == [AU_S0] * 3 + [AU_S1] * 3
    assert [sorted(p.osdevs) for p in g] == [sorted([f"card{i}", f"renderD{128 + i}", f"ze{i}"]) for i in range(6)]
    for i, p in enumerate(g):
        ze = p.osdevs[f"ze{i}"]
        assert ze["Backend"] == "LevelZero" and ze["LevelZeroSubdevices"] == "2"
        assert ze["LevelZeroModel"] == "Intel(R) Data Center GPU Max 1550"
        assert int(ze["LevelZeroHBMSize"].removesuffix("KiB")) == 128 * 2**20  # 128 GB HBM2e (hwloc 3 adds KiB)
        assert [n for n, parent in aurora.osdev_parents.items() if parent == f"ze{i}"] == [f"ze{i}.0", f"ze{i}.1"]
    assert {f"renderD{128 + i}" for i in range(6)} <= set(aurora.gpu_osdevs)  # DRM nodes are GPU OS devices


def test_intel_slingshot_nics_are_not_verbs_devices(aurora: View) -> None:
    assert aurora.ofed == {}
    nics = sorted((p for p in aurora.pci.values() if p.vendor == 0x17DB), key=lambda p: p.busid)
    assert len(nics) == 8 and all((p.device, p.class_id) == (0x0501, 0x0200) for p in nics)
    assert [list(p.osdevs) for p in nics] == [[f"hsn{i}"] for i in range(8)]
    assert [p.local_cpus for p in nics] == [AU_S0] * 4 + [AU_S1] * 4


def test_a_file_without_nvlink_facts_says_so() -> None:
    """A file holds no NVLink facts unless hwloc wrote its NVLinkBandwidth matrix: the GPU pairs
    show PCIe levels, and the node says NVLink is unknown (as live discovery without NVML does)."""
    from pinctl.discovery.hwloc import load_hwloc

    node = load_hwloc(xml_path=str(FIXTURES / "dgx-a100.xml"))
    assert sum(g.vendor == "nvidia" for g in node.gpus) == 8 and not any(g.nvlinks for g in node.gpus)
    (note,) = [n for n in node.notes if "NVLink" in n]
    assert note.startswith(f"NVLink unknown: hwloc-xml:{FIXTURES / 'dgx-a100.xml'} holds no NVLink facts")
    amd = load_hwloc(xml_path=str(FIXTURES / "epyc-nps4-8gpu.xml"))  # AMD GPUs: NVLink is no question
    assert not any("NVLink" in n for n in amd.notes)
