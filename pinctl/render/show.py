"""What ``pinctl show`` puts on screen, as plain tables built from the model.

The order follows how an HPC engineer reads a node: one summary line, the NUMA
domains with their CPUs, memory and attached devices, every device with its
PCIe placement, and the GPU x device distance matrix that decides placement.
"""

from __future__ import annotations

from pinctl.cpuset import format_list
from pinctl.distance import device_columns, distance_matrix, level_order
from pinctl.model import Node, NumaNode, PciInfo, PciLink
from pinctl.render.layout import GLUE
from pinctl.render.table import Alternatives, Item, Table
from pinctl.words import count


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            # Glued: "1007.4" and "GiB" on two lines read as two values.
            return f"{value:.0f}{GLUE}{unit}" if unit == "B" else f"{value:.1f}{GLUE}{unit}"
        value /= 1024
    return f"{n} B"


def summary_line(node: Node) -> str:
    cpuless = sum(1 for n in node.numa_nodes if n.cpuless)
    numa = f"{len(node.numa_nodes)} NUMA node{'s' if len(node.numa_nodes) != 1 else ''}"
    unknown = sum(1 for n in node.numa_nodes if not n.cpus_known)
    memoryless = sum(1 for n in node.numa_nodes if n.memory_bytes == 0)
    if cpuless or unknown or memoryless:
        parts = (
            f"{cpuless} CPU-less" if cpuless else "",
            f"{memoryless} memory-less" if memoryless else "",
            f"{unknown} with CPUs unknown" if unknown else "",
        )
        numa += " (" + "; ".join(x for x in parts if x) + ")"
    threads = max((len(c.pus) for c in node.cores), default=0)
    # Without SMT facts the model holds one "core" per CPU: the core count would be made up.
    cores = f"{_n(len(node.cores), 'core')}, " if node.smt_known else "cores unknown, "
    smt = f"SMT {threads}" if node.smt_known else "SMT unknown"
    allowed = format_list(node.allowed_cpus)
    restricted = "" if node.allowed_cpus == node.cpus else " (restricted)"
    rdma = sum(1 for n in node.nics if n.rdma)
    return (
        f"{node.hostname}: {len(node.packages)} package{'s' if len(node.packages) != 1 else ''}, {numa}, "
        f"{cores}{len(node.cpus)} CPUs ({smt}), {_n(len(node.l3_groups), 'L3 group')}, "
        f"allowed {allowed}{restricted}; {_n(len(node.gpus), 'GPU')}{_usable(node)}, {_n(rdma, 'RDMA NIC')}, "
        f"{_n(len(node.nics) - rdma, 'other NIC')}, {len(node.storage)} storage  [{node.source}]"
    )


def _usable(node: Node) -> str:
    usable = sum(1 for g in node.gpus if g.usable)
    return "" if usable == len(node.gpus) else f" ({usable} usable by this job)"


def _devices_on(node: Node, numa: NumaNode) -> str:
    names = [f"GPU{g.index}" for g in node.gpus if g.numa_node == numa.os_index]
    owner = node.memory_gpu(numa.os_index)
    if owner is not None:
        names.append(f"GPU{owner[0].index} memory" if owner[1] else f"GPU{owner[0].index} (reserved for MIG)")
    names += [n.name for n in node.nics if n.numa_node == numa.os_index]
    names += [s.name for s in node.storage if s.numa_node == numa.os_index]
    return ", ".join(names) or "-"


def _allowed(cpus: frozenset[int], allowed: frozenset[int]) -> str:
    if not cpus:
        return "-"
    if allowed == cpus:
        return "all"
    return format_list(allowed) if allowed else "none"


def _n(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def numa_table(node: Node) -> Table:
    rows = []
    for n in node.numa_nodes:
        allowed = n.cpus & node.allowed_cpus
        l3 = sum(1 for g in node.l3_groups if g.cpus and g.cpus <= n.cpus)
        rows.append(
            (
                str(n.os_index),
                "-" if n.package is None else str(n.package),
                n.kind + (" (CPU-less)" if n.cpuless else ""),
                format_list(n.cpus) or ("-" if n.cpus_known else "unknown"),
                _allowed(n.cpus, allowed),
                str(l3),
                "0 (memory-less)" if n.memory_bytes == 0 else human_bytes(n.memory_bytes),
                _devices_on(node, n),
            )
        )
    return Table(
        "NUMA domains",
        ("node", "pkg", "kind", "CPUs", "allowed", "L3", "memory", "devices"),
        tuple(rows),
    )


def numa_distances(node: Node) -> Alternatives | None:
    """The NUMA distance matrix as ``numactl -H`` prints it; where it does not fit, one line per row."""
    if node.numa_distances is None or len(node.numa_nodes) < 2:
        return None
    ids = [n.os_index for n in node.numa_nodes]
    cells = [[str(node.distance(a, b) or "-") for b in ids] for a in ids]
    matrix = Table(
        "NUMA distances",
        ("node", *map(str, ids)),
        tuple((f"{a}:", *row) for a, row in zip(ids, cells, strict=True)),
        borders=False,
    )
    lines = [f"NUMA distances (each row: node, then its distance to nodes {format_list(frozenset(ids))}):"]
    label = max(len(str(a)) for a in ids)
    cell = max(len(c) for row in cells for c in row)
    lines += [f"  {a:>{label}}: " + " ".join(c.rjust(cell) for c in row) for a, row in zip(ids, cells, strict=True)]
    return Alternatives(((matrix,), (*lines, "")))


def _link(link: PciLink) -> str:
    if link.speed_gts is None and link.width is None:
        # hwloc XML: no per-lane speed or width, but the link's bandwidth (pci_link_speed).
        return "-" if link.bandwidth_gbs is None else f"{link.bandwidth_gbs:.1f}{GLUE}GB/s"
    cur = f"{link.speed_gts:g}GT/s" if link.speed_gts is not None else "?"
    cur += f" x{link.width}" if link.width is not None else ""
    if link.max_speed_gts is not None or link.max_width is not None:
        mx = f"{link.max_speed_gts:g}GT/s" if link.max_speed_gts is not None else "?"
        mx += f" x{link.max_width}" if link.max_width is not None else ""
        if mx != cur:
            cur += f" (max {mx})"
    return cur


def _place(info: PciInfo | None) -> tuple[str, str, str, str]:
    if info is None:
        return ("-", "?", "-", "-")
    numa = "?" if info.numa_node is None else str(info.numa_node)
    path = " > ".join(str(b) for b in info.bridges) or "-"
    return (str(info.address), numa, _link(info.link), path)


def device_table(node: Node) -> Table:
    rows: list[tuple[str, ...]] = []
    for g in node.gpus:
        size = human_bytes(g.memory_bytes) if g.memory_bytes else ""
        detail = " ".join(x for x in (_glued(g.name or g.vendor), size) if x)
        if g.mig:
            detail += f", MIG: {count(len(g.mig), 'instance')}"
        if not g.usable:
            detail += f"; not usable by this job: {g.unusable}"
        elif g.visible_index is not None and g.visible_index != g.index:
            detail += f"; this job's GPU {g.visible_index}"
        addr, numa, link, path = _place(g.pci)
        rows.append((f"GPU{g.index}", "gpu", addr, numa, link, detail, path))
    for n in node.nics:
        ports = []
        for p in n.ports:
            bits = [p.state or "state?", p.link_layer or "", f"{p.rate_gbps:g}Gb/s" if p.rate_gbps else ""]
            ports.append(f"p{p.number}:" + "/".join(b for b in bits if b))
        detail = " ".join(ports + ([",".join(n.netdevs)] if n.netdevs else []))
        addr, numa, link, path = _place(n.pci)
        kind = n.kind + ("" if n.rdma else " (no RDMA)")
        rows.append((n.name, kind, addr, numa, link, detail or "-", path))
    for s in node.storage:
        detail = " ".join(x for x in (_glued(s.model or ""), human_bytes(s.size_bytes) if s.size_bytes else "") if x)
        addr, numa, link, path = _place(s.pci)
        rows.append((s.name, "storage", addr, numa, link, detail or "-", path))
    # A narrow terminal loses the bridge path first (it is in --json), then gets one block per device.
    return Table(
        "Devices", ("device", "kind", "PCI", "NUMA", "link", "details", "bridges"), tuple(rows), optional=("bridges",)
    )


def _glued(name: str) -> str:
    """A device name is one value: it may not be wrapped between its words."""
    return GLUE.join(name.split())


LEGEND = (
    "X self; NV# NVLink (# links); PIX one PCIe switch; PXB several switches; "
    "PHB same host bridge; NODE same NUMA node; SYS across NUMA nodes or unknown locality"
)


def matrix_table(
    node: Node, span: tuple[int, int] | None = None, *, title: str = "GPU distances", placement: bool = True
) -> Table:
    """GPU rows x device columns (those in *span*, all by default), drawn without cell borders as
    ``nvidia-smi topo -m`` is: a boxed 30-column matrix needs 90 more characters. With *placement*,
    each GPU's CPU affinity and NUMA node end its row, and the legend follows."""
    labels = [label for label, _ in device_columns(node)]
    a, b = span or (0, len(labels))
    rows = []
    for gpu, cells in zip(node.gpus, distance_matrix(node), strict=True):
        local = gpu.pci.local_cpus & node.allowed_cpus
        affinity = format_list(local) if local else "?"
        numa = "?" if gpu.numa_node is None else str(gpu.numa_node)
        rows.append((f"GPU{gpu.index}", *cells[a:b], *((affinity, numa) if placement else ())))
    headers = ("", *labels[a:b], *(("CPU affinity", "NUMA") if placement else ()))
    legend = (LEGEND,) if placement else ()
    return Table(title, headers, tuple(rows), legend, whole=("CPU affinity",), borders=False)


def distances(node: Node) -> Alternatives:
    """The GPU x device matrix as wide as the terminal allows: whole; then GPUs and NICs (what
    nvidia-smi shows) with storage as a second matrix; then each GPU's nearest devices."""
    whole = (matrix_table(node),)
    n_gpu_nic = len(node.gpus) + len(node.nics)
    choices: list[tuple[Table | str, ...]] = [whole]
    if node.storage and n_gpu_nic > len(node.gpus):
        choices.append(
            (
                matrix_table(node, (0, n_gpu_nic), title="GPU distances: GPUs and NICs"),
                matrix_table(
                    node, (n_gpu_nic, n_gpu_nic + len(node.storage)), title="GPU distances: storage", placement=False
                ),
            )
        )
    choices.append((nearest_table(node, LEGEND),))
    return Alternatives(tuple(choices))


def _nearest(names: list[str], cells: list[str]) -> str:
    """The devices at the nearest known level among *names*, as ``PIX: mlx5_0, nvme2n1``."""
    others = [(level, name) for level, name in zip(cells, names, strict=True) if level != "X"]
    known = [(level, name) for level, name in others if level != "?"]
    if not known:
        return "?" if others else "-"
    # Among NVLink peers, more links are nearer (NV18 before NV6).
    best = min(known, key=lambda k: (level_order(k[0]), -int(k[0][2:]) if k[0][2:].isdigit() else 0))[0]
    return f"{best}: " + ", ".join(name for level, name in known if level == best)


def nearest_table(node: Node, legend: str) -> Table:
    """The matrix folded for a terminal too narrow for it: per GPU, its nearest GPUs, NICs and storage."""
    cols = [label for label, _ in device_columns(node)]
    spans = {"GPUs": (0, len(node.gpus)), "NICs": (len(node.gpus), len(node.gpus) + len(node.nics))}
    spans["storage"] = (spans["NICs"][1], len(cols))
    rows = []
    for gpu, cells in zip(node.gpus, distance_matrix(node), strict=True):
        local = gpu.pci.local_cpus & node.allowed_cpus
        nearest = [_nearest(cols[a:b], cells[a:b]) for a, b in spans.values()]
        rows.append(
            (
                f"GPU{gpu.index}",
                *nearest,
                format_list(local) if local else "?",
                "?" if gpu.numa_node is None else str(gpu.numa_node),
            )
        )
    return Table(
        "GPU distances: nearest devices (the full matrix needs a wider terminal; or --json)",
        ("GPU", *(f"nearest {k}" for k in spans), "CPU affinity", "NUMA"),
        tuple(rows),
        (legend,),
    )


def show_items(node: Node) -> list[Item]:
    items: list[Item] = [summary_line(node), "", numa_table(node)]
    distances_of_numa = numa_distances(node)
    if distances_of_numa is not None:
        items.append(distances_of_numa)
    if node.gpus or node.nics or node.storage:
        items.append(device_table(node))
    if node.gpus:
        items.append(distances(node))
    else:
        items.append("No GPUs found: nothing to place; `pinctl plan --ranks N` plans CPU-only ranks.")
    items.extend(f"note: {n}" for n in node.notes)
    return items
