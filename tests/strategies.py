"""Random but valid Node models for the planner's property tests, and a builder for hand-made ones.

A :class:`Layout` says what a machine is made of (packages, NUMA nodes, L3 groups,
cores, SMT, CPU numbering, CPU-less nodes, the allowed cpuset, GPUs, NICs, NVMe
and where each device sits in the PCIe tree); :func:`build_node` turns it into a
pinctl.model.Node by hand (no discovery), keeping the facts consistent: a switch
belongs to one host bridge, a host bridge to one NUMA node, and each device's
PciInfo.numa_node is its host bridge's node (None for unknown locality).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

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
        gpus.append(
            Gpu(i, pci(place, override), vendor="nvidia", uuid=f"GPU-{i:08x}-0000", os_names=(f"nvidia{i}",))
        )
    nics = []
    for i, spec in enumerate(layout.nics):
        ports = tuple(
            NicPort(n + 1, state=state, link_layer=ll, netdev=f"ib{i}p{n}" if ll == "InfiniBand" else f"eth{i}p{n}")
            for n, (state, ll) in enumerate(spec.ports)
        )
        info = pci(spec.place) if spec.has_pci else None
        nics.append(Nic(f"mlx5_{i}", spec.kind, spec.rdma, info, ports))  # type: ignore[arg-type]
    storage = [Storage(f"nvme{i}n1", pci(place)) for i, place in enumerate(layout.storage)]
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
    )


# --- hypothesis strategies ----------------------------------------------------------------------


@st.composite
def places(draw: st.DrawFn, ncpu: int, unknown: bool = True) -> Place:
    if unknown and draw(st.integers(0, 9)) == 0:
        return None
    numa = draw(st.integers(0, ncpu - 1))
    hb = draw(st.integers(0, 1))
    sw = draw(st.one_of(st.none(), st.integers(0, 1)))
    return (numa, hb, sw)


@st.composite
def nic_specs(draw: st.DrawFn, ncpu: int) -> NicSpec:
    nports = draw(st.integers(1, 2))
    ports = tuple(
        (
            draw(st.sampled_from(["ACTIVE", "ACTIVE", "ACTIVE", "DOWN", "INIT", None])),
            draw(st.sampled_from(["InfiniBand", "InfiniBand", "Ethernet", None])),
        )
        for _ in range(nports)
    )
    return NicSpec(
        place=draw(places(ncpu)),
        ports=ports,
        kind=draw(st.sampled_from(["infiniband", "infiniband", "roce", "efa", "other"])),
        rdma=draw(st.integers(0, 7)) != 0,
        has_pci=draw(st.integers(0, 15)) != 0,
    )


@st.composite
def layouts(draw: st.DrawFn, max_gpus: int = 6, max_nics: int = 6, with_gpus: bool = True) -> Layout:
    packages = draw(st.integers(1, 2))
    numa_per_package = draw(st.integers(1, 3))
    l3_per_numa = draw(st.integers(1, 3))
    cores_per_l3 = draw(st.integers(1, 5))
    smt = draw(st.integers(1, 2))
    ncpu = packages * numa_per_package
    base = Layout(
        packages=packages,
        numa_per_package=numa_per_package,
        l3_per_numa=l3_per_numa,
        cores_per_l3=cores_per_l3,
        smt=smt,
        interleaved=draw(st.booleans()),
    )
    ncpus = base.total_cores * smt
    disallowed: frozenset[int] = frozenset()
    if draw(st.booleans()):
        disallowed = frozenset(draw(st.sets(st.integers(0, ncpus - 1), max_size=max(1, ncpus // 3))))
    cpuless = draw(st.integers(0, 2))
    ngpus = draw(st.integers(1 if with_gpus else 0, max_gpus if with_gpus else 0))
    gpus = tuple(draw(places(ncpu)) for _ in range(ngpus))
    on_cpuless = frozenset(draw(st.sets(st.integers(0, max(0, ngpus - 1)), max_size=1))) if cpuless else frozenset()
    nics = tuple(draw(nic_specs(ncpu)) for _ in range(draw(st.integers(0, max_nics))))
    storage = tuple(draw(places(ncpu)) for _ in range(draw(st.integers(0, 3))))
    return Layout(
        packages=packages,
        numa_per_package=numa_per_package,
        l3_per_numa=l3_per_numa,
        cores_per_l3=cores_per_l3,
        smt=smt,
        interleaved=base.interleaved,
        cpuless=cpuless,
        disallowed=disallowed,
        distances=draw(st.integers(0, 4)) != 0,
        gpus=gpus,
        gpu_on_cpuless=frozenset(i for i in on_cpuless if i < ngpus and gpus[i] is not None),
        nics=nics,
        storage=storage,
    )


def nodes(**kwargs: object) -> st.SearchStrategy[Node]:
    """Random valid Nodes (see :func:`layouts` for the knobs)."""
    return layouts(**kwargs).map(build_node)  # type: ignore[arg-type]
