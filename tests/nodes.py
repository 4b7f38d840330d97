"""The one place tests build Nodes by hand (no discovery).

Two ways, one module:

* :class:`Layout` + :func:`build_node`: a whole synthetic machine from a few numbers
  (packages, NUMA nodes, L3 groups, cores, SMT, CPU numbering, CPU-less nodes, the
  allowed cpuset, GPUs, NICs, NVMe and where each device sits in the PCIe tree), with
  the facts kept consistent: a switch belongs to one host bridge, a host bridge to one
  NUMA node, and each device's PciInfo.numa_node is its host bridge's node (None for
  unknown locality). The planner's property tests draw Layouts (tests/strategies.py).
* :func:`pci`, :func:`gpu`, :func:`nic` and :func:`two_sockets`: devices placed at exact
  PCI addresses, for tests that pair a Node with a fake /sys tree (fixtures/doctor/) or
  check one fact of a view. The two-socket node: NUMA 0 = CPUs 0-3, NUMA 1 = CPUs 4-7;
  GPU 0 (18:00.0) and mlx5_0 (19:00.0) share switch 16:00 under root port 15:01.0;
  GPU 1 (98:00.0) and mlx5_1 (99:00.0) share switch 96:00 under 95:01.0; nvme0 (1a:00.0)
  sits on root port 15:02.0. Tests vary one fact at a time with dataclasses.replace.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

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

# A device's place: (CPU NUMA node ordinal, host bridge ordinal, switch ordinal or None); None = unknown locality.
Place = tuple[int, int, int | None] | None


@dataclass(frozen=True)
class NicSpec:
    place: Place
    ports: tuple[tuple[str | None, str | None], ...] = (("ACTIVE", "InfiniBand"),)  # (state, link layer)
    kind: str = "infiniband"
    rdma: bool = True
    has_pci: bool = True


@dataclass(frozen=True)
class Layout:
    packages: int = 2
    numa_per_package: int = 1
    l3_per_numa: int = 1
    cores_per_l3: int = 4
    smt: int = 2
    interleaved: bool = False  # socket-interleaved CPU numbering (0,2,4.. on package 0)
    cpuless: int = 0  # extra CPU-less NUMA nodes (HBM/GPU memory), one per package round-robin
    disallowed: frozenset[int] = frozenset()  # CPUs outside the allowed cpuset
    distances: bool = True
    gpus: tuple[Place, ...] = ()
    gpu_on_cpuless: frozenset[int] = frozenset()  # GPU ordinals reported on a CPU-less node
    nics: tuple[NicSpec, ...] = ()
    storage: tuple[Place, ...] = ()
    hostname: str = "synthetic"
    gpu_vendor: str = "nvidia"  # every GPU's vendor; its os_names follow (nvidiaN, or renderD and rsmi)
    smt_known: bool = True  # False: the source (an NCCL file) gives one "core" per CPU
    extra_notes: tuple[str, ...] = field(default=())

    @property
    def cpu_numa_count(self) -> int:
        return self.packages * self.numa_per_package

    @property
    def total_cores(self) -> int:
        return self.cpu_numa_count * self.l3_per_numa * self.cores_per_l3


def _cpu_number(layout: Layout, pkg: int, local_core: int, thread: int) -> int:
    """OS CPU number: thread siblings are total_cores apart (Linux x86 habit)."""
    per_pkg = layout.total_cores // layout.packages
    core_no = local_core * layout.packages + pkg if layout.interleaved else pkg * per_pkg + local_core
    return core_no + thread * layout.total_cores


def build_node(layout: Layout) -> Node:
    packages: list[Package] = []
    numas: list[NumaNode] = []
    cores: list[Core] = []
    l3s: list[CacheGroup] = []
    per_pkg = layout.numa_per_package * layout.l3_per_numa * layout.cores_per_l3
    for p in range(layout.packages):
        pkg_cpus: set[int] = set()
        for m in range(layout.numa_per_package):
            numa_id = p * layout.numa_per_package + m
            numa_cpus: set[int] = set()
            for c3 in range(layout.l3_per_numa):
                l3_index = numa_id * layout.l3_per_numa + c3
                l3_cpus: set[int] = set()
                for k in range(layout.cores_per_l3):
                    local = (m * layout.l3_per_numa + c3) * layout.cores_per_l3 + k
                    pus = tuple(sorted(_cpu_number(layout, p, local, t) for t in range(layout.smt)))
                    cores.append(Core(pus, package=p, numa_node=numa_id, l3=l3_index))
                    l3_cpus.update(pus)
                l3s.append(CacheGroup(l3_index, frozenset(l3_cpus)))
                numa_cpus |= l3_cpus
            numas.append(NumaNode(numa_id, frozenset(numa_cpus), 1 << 34, "dram", p))
            pkg_cpus |= numa_cpus
        packages.append(Package(p, frozenset(pkg_cpus)))
    assert len(cores) == per_pkg * layout.packages
    ncpu = layout.cpu_numa_count
    for j in range(layout.cpuless):
        numas.append(NumaNode(ncpu + j, frozenset(), 1 << 33, "hbm", j % layout.packages))
    dist = None
    if layout.distances:
        rows = []
        for a in numas:
            for b in numas:
                if a.os_index == b.os_index:
                    d = 10
                elif a.package == b.package:
                    d = 12 if a.cpus and b.cpus else 14
                else:
                    d = 21 if a.cpus and b.cpus else 31
                rows.append((a.os_index, b.os_index, d))
        dist = tuple(rows)
    all_cpus = frozenset(pu for c in cores for pu in c.pus)
    bus = iter(range(0x10, 0xFF))

    def pci(place: Place, numa_override: int | None = None) -> PciInfo:
        addr = PciAddress(0, next(bus), 0, 0)
        if place is None:
            return PciInfo(addr, numa_node=None)
        numa, hb, sw = place
        numa %= ncpu
        switches = (f"sw{numa}.{hb}.{sw}",) if sw is not None else ()
        return PciInfo(
            addr,
            switches=switches,
            host_bridge=f"hb{numa}.{hb}",
            numa_node=numa if numa_override is None else numa_override,
        )

    gpus = []
    for i, place in enumerate(layout.gpus):
        override = ncpu + (i % layout.cpuless) if i in layout.gpu_on_cpuless and layout.cpuless else None
        if layout.gpu_vendor == "nvidia":
            gpus.append(Gpu(i, pci(place, override), vendor="nvidia", uuid=f"GPU-{i:08x}-0000",
                            os_names=(f"nvidia{i}",)))  # fmt: skip
        else:
            names = (f"renderD{128 + i}",) + ((f"rsmi{i}",) if layout.gpu_vendor == "amd" else ())
            uuid = f"{0xABC0 + i:016x}" if layout.gpu_vendor == "amd" and i % 2 == 0 else None
            gpus.append(Gpu(i, pci(place, override), vendor=layout.gpu_vendor, uuid=uuid,  # type: ignore[arg-type]
                            os_names=names))  # fmt: skip
    nics = []
    for i, spec in enumerate(layout.nics):
        ports = tuple(
            NicPort(n + 1, state=state, link_layer=ll, netdev=f"ib{i}p{n}" if ll == "InfiniBand" else f"eth{i}p{n}")
            for n, (state, ll) in enumerate(spec.ports)
        )
        info = pci(spec.place) if spec.has_pci else None
        nics.append(Nic(f"mlx5_{i}", spec.kind, spec.rdma, info, ports))  # type: ignore[arg-type]
    storage = [Storage(f"nvme{i}n1", pci(place)) for i, place in enumerate(layout.storage)]
    if not layout.smt_known:  # what an NCCL topology file gives: CPUs, no siblings, no caches
        cores = [Core((pu,), package=c.package, numa_node=c.numa_node) for c in cores for pu in c.pus]
        l3s = []
    return Node(
        hostname=layout.hostname,
        source="synthetic",
        packages=tuple(packages),
        numa_nodes=tuple(numas),
        cores=tuple(cores),
        l3_groups=tuple(l3s),
        allowed_cpus=all_cpus - layout.disallowed,
        gpus=tuple(gpus),
        nics=tuple(nics),
        storage=tuple(storage),
        numa_distances=dist,
        notes=layout.extra_notes,
        smt_known=layout.smt_known,
    )


# --- hypothesis strategies ----------------------------------------------------------------------


# --- devices at exact places ------------------------------------------------------------------

N0 = frozenset(range(4))
N1 = frozenset(range(4, 8))
A = PciAddress.parse


def pci(
    addr: str,
    bridges: tuple[str, ...] = (),
    numa: int | None = 0,
    switch: str | None = None,
    host: str = "hb0",
    *,
    link: PciLink | None = None,
    local_cpus: frozenset[int] | None = None,
) -> PciInfo:
    """A device at *addr* below *bridges* (nearest first), on *switch* under host bridge *host*."""
    if local_cpus is None:
        local_cpus = (N0 if numa == 0 else N1) if numa is not None else frozenset()
    return PciInfo(
        address=A(addr),
        link=link or PciLink(),
        bridges=tuple(A(b) for b in bridges),
        switches=(switch,) if switch else (),
        host_bridge=host,
        numa_node=numa,
        local_cpus=local_cpus,
    )


def gpu(index: int, addr: str, bridges: tuple[str, ...], numa: int | None, switch: str | None, host: str) -> Gpu:
    return Gpu(index=index, pci=pci(addr, bridges, numa, switch, host), vendor="nvidia", name="H100")


def nic(
    name: str,
    addr: str,
    bridges: tuple[str, ...],
    numa: int | None,
    switch: str | None,
    host: str,
    state: str = "ACTIVE",
) -> Nic:
    port = NicPort(1, state=state, phys_state="LinkUp" if state == "ACTIVE" else "Polling", link_layer="InfiniBand")
    return Nic(name, "infiniband", True, pci(addr, bridges, numa, switch, host), (port,))


GPU0 = gpu(0, "0000:18:00.0", ("0000:17:00.0", "0000:16:00.0", "0000:15:01.0"), 0, "sw16", "hb0")
GPU1 = gpu(1, "0000:98:00.0", ("0000:97:00.0", "0000:96:00.0", "0000:95:01.0"), 1, "sw96", "hb1")
NIC0 = nic("mlx5_0", "0000:19:00.0", ("0000:17:01.0", "0000:16:00.0", "0000:15:01.0"), 0, "sw16", "hb0")
NIC1 = nic("mlx5_1", "0000:99:00.0", ("0000:97:01.0", "0000:96:00.0", "0000:95:01.0"), 1, "sw96", "hb1")
NVME = Storage("nvme0n1", pci("0000:1a:00.0", ("0000:15:02.0",), 0, None, "hb0"), model="fake")


def two_sockets(**changes: object) -> Node:
    """The two-socket node above (one CPU per core), with *changes* applied."""
    node = Node(
        hostname="fake",
        source="test",
        packages=(Package(0, N0), Package(1, N1)),
        numa_nodes=(NumaNode(0, N0, 64 << 30, package=0), NumaNode(1, N1, 64 << 30, package=1)),
        cores=tuple(Core((c,), package=c // 4, numa_node=c // 4) for c in range(8)),
        l3_groups=(),
        allowed_cpus=N0 | N1,
        gpus=(GPU0, GPU1),
        nics=(NIC0, NIC1),
        storage=(NVME,),
    )
    return replace(node, **changes)  # type: ignore[arg-type]
