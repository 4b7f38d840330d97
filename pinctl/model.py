"""The node model: plain frozen values that every layer above discovery reads.

Discovery sources (live hwloc, hwloc XML, NCCL topology XML, a gathered sysfs
tree, NVML) each fill the same model, so the planner, the renderers and the
doctor never know where a fact came from. Identifiers are OS numbers (CPU and
NUMA ``os_index``) and parsed PCI addresses, never hwloc's logical indexes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from pinctl.cpuset import decimal
from pinctl.errors import UsageError

_PCI_RE = re.compile(
    r"^(?:(?P<domain>[0-9a-fA-F]{1,8}):)?(?P<bus>[0-9a-fA-F]{1,2}):(?P<dev>[0-9a-fA-F]{1,2})\.(?P<fn>[0-7])$"
)


@dataclass(frozen=True, order=True)
class PciAddress:
    """A PCI function address; NVML writes ``00000000:3B:00.0``, sysfs ``0000:3b:00.0``."""

    domain: int
    bus: int
    dev: int
    fn: int

    @classmethod
    def parse(cls, text: str) -> PciAddress:
        address = cls.parse_or_none(text)
        if address is None:
            raise UsageError(f"malformed PCI address {text!r}")
        return address

    @classmethod
    def parse_or_none(cls, text: str) -> PciAddress | None:
        """:meth:`parse`, or None for what is not an address (a sysfs path part, a missing field)."""
        m = _PCI_RE.match(text.strip())
        if m is None:
            return None
        return cls(int(m["domain"] or "0", 16), int(m["bus"], 16), int(m["dev"], 16), int(m["fn"]))

    def __str__(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:{self.dev:02x}.{self.fn}"


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort names as people count: mlx5_2 before mlx5_10 (devices are listed and chosen in this order)."""
    # \d matches any Unicode decimal digit, and int() reads every one (not '²', which isdigit() accepts).
    return tuple((0, int(part)) if part.isdecimal() else (1, part) for part in re.split(r"(\d+)", name) if part)


def pcie_switches(bridges: Sequence[PciAddress]) -> tuple[str, ...]:
    """The PCIe switches above a device, nearest first, from its bridges (nearest first).

    A switch shows as a downstream-port bridge whose parent is the upstream-port bridge,
    so bridges pair bottom-up (downstream, upstream), each switch named by its upstream
    port; an odd bridge left at the top is the root port (docs/distances.md).
    """
    return tuple(str(bridges[2 * i + 1]) for i in range(len(bridges) // 2))


@dataclass(frozen=True)
class PciLink:
    """PCIe link state; speeds in GT/s per lane, as sysfs and lspci report them.

    ``bandwidth_gbs`` is hwloc's ``linkspeed`` (GB/s of the whole link, as hwloc XML's
    ``pci_link_speed`` holds it): an XML has no per-lane speed or width, but it has this.
    """

    speed_gts: float | None = None
    width: int | None = None
    max_speed_gts: float | None = None
    max_width: int | None = None
    bandwidth_gbs: float | None = None

    @property
    def degraded(self) -> bool:
        """Trained below capability (slower or narrower than the maximum)."""
        slow = self.speed_gts is not None and self.max_speed_gts is not None and self.speed_gts < self.max_speed_gts
        narrow = self.width is not None and self.max_width is not None and self.width < self.max_width
        return slow or narrow


@dataclass(frozen=True)
class PciInfo:
    """Where a PCI device sits: its id, its link, its bridges and its CPU locality.

    ``class_id`` is the 16-bit class (base class, subclass: 0x0302 for a 3D controller), as
    hwloc gives it; ``switches`` names the PCIe switches between the device and its host bridge,
    nearest first (one id per switch, whatever the source's bridge layout);
    ``bridges`` is the raw bridge chain, nearest first, for display.
    ``numa_node`` is None when locality is unknown (VMs, numa_node -1).
    """

    address: PciAddress
    class_id: int = 0
    vendor_id: int = 0
    device_id: int = 0
    link: PciLink = field(default_factory=PciLink)
    bridges: tuple[PciAddress, ...] = ()
    switches: tuple[str, ...] = ()
    host_bridge: str | None = None
    numa_node: int | None = None
    local_cpus: frozenset[int] = frozenset()
    package: int | None = None


@dataclass(frozen=True)
class Package:
    os_index: int
    cpus: frozenset[int]


@dataclass(frozen=True)
class NumaNode:
    """A NUMA domain. ``kind`` says what its memory is: dram, gpu, hbm, cxl, nvm.

    ``cpus_known`` is False where the source does not list the node's CPUs (an NCCL file's
    ``<cpu>`` without an affinity mask): unknown is not absent, so such a node is not CPU-less.
    """

    os_index: int
    cpus: frozenset[int]
    memory_bytes: int | None = None
    kind: str = "dram"
    package: int | None = None
    cpus_known: bool = True

    @property
    def cpuless(self) -> bool:
        return self.cpus_known and not self.cpus


@dataclass(frozen=True)
class Core:
    """A physical core: its hardware threads (SMT siblings) as OS CPU numbers, sorted."""

    pus: tuple[int, ...]
    package: int | None = None
    numa_node: int | None = None
    l3: int | None = None


@dataclass(frozen=True)
class CacheGroup:
    """CPUs sharing one last-level (L3) cache; ``index`` is a stable id within the node."""

    index: int
    cpus: frozenset[int]
    size_bytes: int | None = None


@dataclass(frozen=True)
class NvLink:
    """An NVLink connection to a peer (GPU or NVSwitch) by PCI address, with link count."""

    peer: PciAddress
    links: int


GpuVendor = Literal["nvidia", "amd", "intel", "other"]


@dataclass(frozen=True)
class MigDevice:
    """A MIG instance of a GPU in MIG mode, as NVML lists it; CUDA selects it by ``uuid`` (``MIG-...``)."""

    uuid: str
    name: str | None = None
    memory_bytes: int | None = None
    gpu_instance: int | None = None
    compute_instance: int | None = None


@dataclass(frozen=True)
class Gpu:
    """An accelerator. ``index`` is PCI bus order among all GPUs of the node (a host's NVML order).

    What this job may use (pinctl.discovery.access): ``unusable`` says why it may not (None:
    it may); ``runtime_index`` is its index among its vendor's GPUs the process enumerates
    before the selector variable (what a new CUDA_VISIBLE_DEVICES counts); ``visible_index``
    its index with the selector in force (what torch.cuda counts, and LOCAL_RANK follows).
    ``mig`` lists its MIG instances when it is in MIG mode (those this job may use).
    """

    index: int
    pci: PciInfo
    vendor: GpuVendor = "other"
    name: str | None = None
    uuid: str | None = None
    memory_bytes: int | None = None
    nvlinks: tuple[NvLink, ...] = ()
    memory_numa_node: int | None = None
    os_names: tuple[str, ...] = ()
    mig: tuple[MigDevice, ...] = ()
    unusable: str | None = None
    runtime_index: int | None = None
    visible_index: int | None = None

    @property
    def numa_node(self) -> int | None:
        return self.pci.numa_node

    @property
    def usable(self) -> bool:
        return self.unusable is None

    @property
    def device_minor(self) -> int | None:
        """N of the GPU's device file (/dev/nvidiaN, /dev/dri/renderDN) when a source named it."""
        prefix = "nvidia" if self.vendor == "nvidia" else "renderD"
        for name in self.os_names:
            if name.startswith(prefix) and (minor := decimal(name[len(prefix) :], limit=6)) is not None:
                return minor
        return None

    @property
    def device_name(self) -> str | None:
        """The device file's name under /dev (``nvidia2``) or /dev/dri (``renderD128``)."""
        minor = self.device_minor
        if minor is None:
            return None
        return f"nvidia{minor}" if self.vendor == "nvidia" else f"renderD{minor}"


def rocr_uuid(unique_id: str | None) -> str | None:
    """ROCm's spelling of a unique id: GPU- and 16 upper-case hex digits, zero-padded, as the ROCm
    runtime builds its own list to match ROCR_VISIBLE_DEVICES against (hwloc drops leading zeros)."""
    if not unique_id:
        return None
    digits = unique_id[4:] if unique_id.upper().startswith("GPU-") else unique_id
    try:
        value = int(digits, 16)
    except ValueError:
        return None
    return f"GPU-{value:016X}" if 0 < value < 1 << 64 else None


NicKind = Literal["infiniband", "roce", "efa", "slingshot", "ethernet", "other"]


@dataclass(frozen=True)
class NicPort:
    """One port of an RDMA device (or the single port of a plain NIC).

    ``state`` uses the verbs names (ACTIVE, DOWN, INIT, ARMED) when known;
    ``link_layer`` is InfiniBand or Ethernet; ``rate_gbps`` the effective rate.
    """

    number: int
    state: str | None = None
    phys_state: str | None = None
    link_layer: str | None = None
    rate_gbps: float | None = None
    netdev: str | None = None

    @property
    def active(self) -> bool:
        return self.state == "ACTIVE" and self.phys_state in (None, "LinkUp")


@dataclass(frozen=True)
class Nic:
    """A network device: an RDMA HCA (mlx5_N, efa, cxi) or a plain NIC (not RDMA)."""

    name: str
    kind: NicKind
    rdma: bool
    pci: PciInfo | None
    ports: tuple[NicPort, ...] = ()
    netdevs: tuple[str, ...] = ()

    @property
    def numa_node(self) -> int | None:
        return self.pci.numa_node if self.pci else None

    @property
    def primary_port(self) -> NicPort | None:
        """The port a plan would use: the first active one, else the first."""
        for port in self.ports:
            if port.active:
                return port
        return self.ports[0] if self.ports else None


@dataclass(frozen=True)
class Storage:
    """A block device on PCI (NVMe namespace or controller)."""

    name: str
    pci: PciInfo | None
    model: str | None = None
    size_bytes: int | None = None

    @property
    def numa_node(self) -> int | None:
        return self.pci.numa_node if self.pci else None


MIG_NODES_PER_GPU = 8  # NUMA nodes the NVIDIA driver gives each Grace GPU: its HBM node first, then MIG's


@dataclass(frozen=True)
class Node:
    """Everything pinctl knows about one machine.

    ``allowed_cpus`` is the cpuset the caller may use (the cgroup's, not an inherited affinity); it may
    be smaller than the union of all CPUs. ``allowed_mems`` the memory nodes the cgroup
    allows (cpuset.mems.effective), None when no cgroup says (all). ``numa_distances`` is keyed by OS index
    pairs, None when the source had no matrix. ``notes`` carries degradations
    (no NVML, unknown locality, facts a source could not provide).
    """

    hostname: str
    source: str
    packages: tuple[Package, ...]
    numa_nodes: tuple[NumaNode, ...]
    cores: tuple[Core, ...]
    l3_groups: tuple[CacheGroup, ...]
    allowed_cpus: frozenset[int]
    gpus: tuple[Gpu, ...] = ()
    nics: tuple[Nic, ...] = ()
    storage: tuple[Storage, ...] = ()
    numa_distances: tuple[tuple[int, int, int], ...] | None = None
    notes: tuple[str, ...] = ()
    smt_known: bool = True
    allowed_mems: frozenset[int] | None = None

    @property
    def usable_gpus(self) -> tuple[Gpu, ...]:
        """The GPUs this job may use, in the order the launched process counts them (visible index)."""
        usable = [g for g in self.gpus if g.usable]
        return tuple(sorted(usable, key=lambda g: (g.visible_index is None, g.visible_index or 0, g.index)))

    def memory_gpu(self, os_index: int) -> tuple[Gpu, bool] | None:
        """(the GPU, whether it is the HBM node itself) when NUMA node *os_index* is a GPU's memory
        node or one of the empty nodes reserved for its MIG instances after it (Grace)."""
        here = self.numa(os_index)
        for gpu in self.gpus:
            first = gpu.memory_numa_node
            if first == os_index:
                return gpu, True
            if (
                first is not None
                and first < os_index < first + MIG_NODES_PER_GPU
                and here is not None
                and here.kind == "gpu"
                and here.memory_bytes == 0
            ):
                return gpu, False
        return None

    def mem_allowed(self, os_index: int) -> bool:
        return self.allowed_mems is None or os_index in self.allowed_mems

    @property
    def cpus(self) -> frozenset[int]:
        out: set[int] = set()
        for core in self.cores:
            out.update(core.pus)
        return frozenset(out)

    def numa(self, os_index: int) -> NumaNode | None:
        for n in self.numa_nodes:
            if n.os_index == os_index:
                return n
        return None

    def distance(self, a: int, b: int) -> int | None:
        """NUMA distance (ACPI SLIT units, 10 = local) or None when unknown."""
        if self.numa_distances is None:
            return None
        for x, y, d in self.numa_distances:
            if x == a and y == b:
                return d
        return None
