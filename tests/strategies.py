"""Random but valid machine Layouts for the planner's property tests (tests/nodes.py builds them)."""

from __future__ import annotations

from hypothesis import strategies as st
from nodes import Layout, NicSpec, Place, build_node

from pinctl.model import Node


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
        gpu_vendor=draw(st.sampled_from(["nvidia", "nvidia", "amd", "intel"])),
        smt_known=draw(st.integers(0, 5)) != 0,
    )


def nodes(**kwargs: object) -> st.SearchStrategy[Node]:
    """Random valid Nodes (see :func:`layouts` for the knobs)."""
    return layouts(**kwargs).map(build_node)  # type: ignore[arg-type]
