"""What ``pinctl show`` puts on screen, as plain tables built from the model.

The order follows how an HPC engineer reads a node: one summary line, the NUMA
domains with their CPUs, memory and attached devices, every device with its
PCIe placement, and the GPU x device distance matrix that decides placement.
"""

from __future__ import annotations

from pinctl.cpuset import format_compact, format_list
from pinctl.distance import device_columns, distance_matrix
from pinctl.model import Node, NumaNode, PciInfo, PciLink
from pinctl.render.table import Table


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def summary_line(node: Node) -> str:
    cpuless = sum(1 for n in node.numa_nodes if n.cpuless)
    numa = f"{len(node.numa_nodes)} NUMA node{'s' if len(node.numa_nodes) != 1 else ''}"
    if cpuless:
        numa += f" ({cpuless} CPU-less)"
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
    names += [f"GPU{g.index} memory" for g in node.gpus if g.memory_numa_node == numa.os_index]
    names += [n.name for n in node.nics if n.numa_node == numa.os_index]
    names += [s.name for s in node.storage if s.numa_node == numa.os_index]
    return ", ".join(names) or "-"


def _allowed(cpus: frozenset[int], allowed: frozenset[int]) -> str:
    if not cpus:
        return "-"
    if allowed == cpus:
        return "all"
    return format_compact(allowed) if allowed else "none"


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
                format_compact(n.cpus) or "-",
                _allowed(n.cpus, allowed),
                str(l3),
                human_bytes(n.memory_bytes),
                _devices_on(node, n),
            )
        )
    footer: list[str] = []
    if node.numa_distances is not None and len(node.numa_nodes) > 1:
        ids = [n.os_index for n in node.numa_nodes]
        footer.append("distances: " + "; ".join(
            f"{a}: " + " ".join(str(node.distance(a, b) or "-") for b in ids) for a in ids
        ))
    return Table(
        "NUMA domains",
        ("node", "pkg", "kind", "CPUs", "allowed", "L3", "memory", "devices"),
        tuple(rows),
        tuple(footer),
    )


def _link(link: PciLink) -> str:
    if link.speed_gts is None and link.width is None:
        return "-"
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
        detail = " ".join(x for x in (g.name or g.vendor, human_bytes(g.memory_bytes) if g.memory_bytes else "") if x)
        if g.mig:
            detail += f", MIG: {len(g.mig)} instance{'s' if len(g.mig) != 1 else ''}"
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
        detail = " ".join(x for x in (s.model or "", human_bytes(s.size_bytes) if s.size_bytes else "") if x)
        addr, numa, link, path = _place(s.pci)
        rows.append((s.name, "storage", addr, numa, link, detail or "-", path))
    return Table("Devices", ("device", "kind", "PCI", "NUMA", "link", "details", "bridges"), tuple(rows))


def matrix_table(node: Node) -> Table:
    cols = [label for label, _ in device_columns(node)]
    rows = []
    for gpu, cells in zip(node.gpus, distance_matrix(node), strict=True):
        local = gpu.pci.local_cpus & node.allowed_cpus
        affinity = format_compact(local) if local else "?"
        numa = "?" if gpu.numa_node is None else str(gpu.numa_node)
        rows.append((f"GPU{gpu.index}", *cells, affinity, numa))
    legend = (
        "X self; NV# NVLink (# links); PIX one PCIe switch; PXB several switches; "
        "PHB same host bridge; NODE same NUMA node; SYS across NUMA nodes or unknown locality"
    )
    return Table("GPU distances", ("", *cols, "CPU affinity", "NUMA"), tuple(rows), (legend,))


def show_items(node: Node) -> list[Table | str]:
    items: list[Table | str] = [summary_line(node), "", numa_table(node)]
    if node.gpus or node.nics or node.storage:
        items.append(device_table(node))
    if node.gpus:
        items.append(matrix_table(node))
    else:
        items.append("No GPUs found: nothing to place; `pinctl plan --ranks N` plans CPU-only ranks.")
    items.extend(f"note: {n}" for n in node.notes)
    return items
