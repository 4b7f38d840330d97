"""Hand-made Nodes matching the small fake trees under fixtures/doctor/ (good, bad, vm).

The layout: NUMA 0 = CPUs 0-3, NUMA 1 = CPUs 4-7. GPU 0 (18:00.0) and mlx5_0
(19:00.0) share switch 16:00 under root port 15:01.0; GPU 1 (98:00.0) and
mlx5_1 (99:00.0) share switch 96:00 under 95:01.0; nvme0 (1a:00.0) sits on
root port 15:02.0. Tests vary one fact at a time with dataclasses.replace.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pinctl.doctor import DoctorContext
from pinctl.kernel.files import KernelFiles
from pinctl.model import (
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

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "doctor"
N0 = frozenset(range(4))
N1 = frozenset(range(4, 8))

A = PciAddress.parse


def pci(addr: str, bridges: tuple[str, ...], numa: int | None, switch: str | None, host: str) -> PciInfo:
    return PciInfo(
        address=A(addr),
        bridges=tuple(A(b) for b in bridges),
        switches=(switch,) if switch else (),
        host_bridge=host,
        numa_node=numa,
        local_cpus=(N0 if numa == 0 else N1) if numa is not None else frozenset(),
    )


def gpu(index: int, addr: str, bridges: tuple[str, ...], numa: int | None, switch: str | None,
        host: str) -> Gpu:
    return Gpu(index=index, pci=pci(addr, bridges, numa, switch, host), vendor="nvidia", name="H100")


def nic(name: str, addr: str, bridges: tuple[str, ...], numa: int | None, switch: str | None, host: str,
        state: str = "ACTIVE") -> Nic:
    port = NicPort(1, state=state, phys_state="LinkUp" if state == "ACTIVE" else "Polling",
                   link_layer="InfiniBand")
    return Nic(name, "infiniband", True, pci(addr, bridges, numa, switch, host), (port,))


GPU0 = gpu(0, "0000:18:00.0", ("0000:17:00.0", "0000:16:00.0", "0000:15:01.0"), 0, "sw16", "hb0")
GPU1 = gpu(1, "0000:98:00.0", ("0000:97:00.0", "0000:96:00.0", "0000:95:01.0"), 1, "sw96", "hb1")
NIC0 = nic("mlx5_0", "0000:19:00.0", ("0000:17:01.0", "0000:16:00.0", "0000:15:01.0"), 0, "sw16", "hb0")
NIC1 = nic("mlx5_1", "0000:99:00.0", ("0000:97:01.0", "0000:96:00.0", "0000:95:01.0"), 1, "sw96", "hb1")
NVME = Storage("nvme0n1", pci("0000:1a:00.0", ("0000:15:02.0",), 0, None, "hb0"), model="fake")


def small_node(**changes: object) -> Node:
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


def ctx(case: str = "good", node: Node | None = None, **kw: object) -> DoctorContext:
    return DoctorContext(files=KernelFiles(str(FIXTURES / case)), node=node, **kw)  # type: ignore[arg-type]


def levels(findings: list) -> list[str]:  # type: ignore[type-arg]
    return sorted({f.level for f in findings})
