"""The node model as JSON (``pinctl show --json``), schema ``pinctl.node/v1``.

Other tools rely on these keys (docs/show-json.md is the contract): lists of OS
CPU numbers rather than strings, PCI bus ids in the long form, ``null`` for
facts that are unknown rather than made up.
"""

from __future__ import annotations

from typing import Any

from pinctl.cpuset import format_list
from pinctl.distance import device_columns, distance_matrix
from pinctl.model import Gpu, Nic, Node, PciInfo, Storage

SCHEMA_ID = "pinctl.node/v1"


def _pci(info: PciInfo | None) -> dict[str, Any] | None:
    if info is None:
        return None
    link = info.link
    return {
        "address": str(info.address),
        "class": f"0x{info.class_id:04x}",
        "vendor_id": f"0x{info.vendor_id:04x}",
        "device_id": f"0x{info.device_id:04x}",
        "link": {
            "speed_gts": link.speed_gts,
            "width": link.width,
            "max_speed_gts": link.max_speed_gts,
            "max_width": link.max_width,
            "degraded": link.degraded,
            "bandwidth_gbs": link.bandwidth_gbs,
        },
        "bridges": [str(b) for b in info.bridges],
        "switches": list(info.switches),
        "host_bridge": info.host_bridge,
        "numa_node": info.numa_node,
        "local_cpus": sorted(info.local_cpus),
        "package": info.package,
    }


def _gpu(g: Gpu) -> dict[str, Any]:
    return {
        "index": g.index,
        "pci_bus_id": str(g.pci.address),
        "numa_node": g.numa_node,
        "vendor": g.vendor,
        "name": g.name,
        "uuid": g.uuid,
        "memory_bytes": g.memory_bytes,
        "memory_numa_node": g.memory_numa_node,
        "nvlinks": [{"peer": str(link.peer), "links": link.links} for link in g.nvlinks],
        "os_names": list(g.os_names),
        "pci": _pci(g.pci),
        "usable": g.usable,
        "unusable": g.unusable,
        "runtime_index": g.runtime_index,
        "visible_index": g.visible_index,
        "mig": [
            {
                "uuid": m.uuid,
                "name": m.name,
                "memory_bytes": m.memory_bytes,
                "gpu_instance": m.gpu_instance,
                "compute_instance": m.compute_instance,
            }
            for m in g.mig
        ],
    }


def _nic(n: Nic) -> dict[str, Any]:
    port = n.primary_port
    return {
        "name": n.name,
        "kind": n.kind,
        "rdma": n.rdma,
        "pci_bus_id": str(n.pci.address) if n.pci else None,
        "numa_node": n.numa_node,
        "link_layer": port.link_layer if port else None,
        "state": port.state if port else None,
        "ports": [
            {
                "number": p.number,
                "state": p.state,
                "phys_state": p.phys_state,
                "link_layer": p.link_layer,
                "rate_gbps": p.rate_gbps,
                "netdev": p.netdev,
                "active": p.active,
            }
            for p in n.ports
        ],
        "netdevs": list(n.netdevs),
        "pci": _pci(n.pci),
    }


def _storage(s: Storage) -> dict[str, Any]:
    return {
        "name": s.name,
        "pci_bus_id": str(s.pci.address) if s.pci else None,
        "numa_node": s.numa_node,
        "model": s.model,
        "size_bytes": s.size_bytes,
        "pci": _pci(s.pci),
    }


def node_to_dict(node: Node) -> dict[str, Any]:
    """The whole model as plain JSON-able data, deterministic in order."""
    numa_ids = [n.os_index for n in node.numa_nodes]
    matrix = None
    if node.numa_distances is not None:
        matrix = {
            "nodes": numa_ids,
            "matrix": [[node.distance(a, b) for b in numa_ids] for a in numa_ids],
        }
    threads = max((len(c.pus) for c in node.cores), default=0)
    return {
        "schema": SCHEMA_ID,
        "hostname": node.hostname,
        "source": node.source,
        "packages": [{"os_index": p.os_index, "cpus": sorted(p.cpus)} for p in node.packages],
        "numa_nodes": [
            {
                "os_index": n.os_index,
                "cpus": sorted(n.cpus),
                "cpulist": format_list(n.cpus),
                "cpuless": n.cpuless,
                "cpus_known": n.cpus_known,
                "kind": n.kind,
                "memory_bytes": n.memory_bytes,
                "memoryless": n.memory_bytes == 0,
                "gpu": None if (owner := node.memory_gpu(n.os_index)) is None else owner[0].index,
                "package": n.package,
            }
            for n in node.numa_nodes
        ],
        "numa_distances": matrix,
        "cores": [{"pus": list(c.pus), "package": c.package, "numa_node": c.numa_node, "l3": c.l3} for c in node.cores],
        "smt": {"known": node.smt_known, "threads_per_core": threads if node.smt_known else None},
        "l3_groups": [{"index": g.index, "cpus": sorted(g.cpus), "size_bytes": g.size_bytes} for g in node.l3_groups],
        "cpus": sorted(node.cpus),
        "allowed_cpus": sorted(node.allowed_cpus),
        "allowed_cpulist": format_list(node.allowed_cpus),
        "allowed_mems": None if node.allowed_mems is None else sorted(node.allowed_mems),
        "gpus": [_gpu(g) for g in node.gpus],
        "nics": [_nic(n) for n in node.nics],
        "storage": [_storage(s) for s in node.storage],
        "distances": {
            "rows": [f"GPU{g.index}" for g in node.gpus],
            "columns": [label for label, _ in device_columns(node)],
            "matrix": distance_matrix(node),
        },
        "notes": list(node.notes),
    }
