"""The plan as a table (one row per rank), drawn by pinctl.render.table: rich on a TTY, plain otherwise."""

from __future__ import annotations

from pinctl.plan.types import NicUse, Plan
from pinctl.render.table import Table

HEADERS = ("rank", "GPU", "NUMA", "cpulist", "#cores", "mem policy", "NIC (distance)", "storage")
# Without SMT facts a "core" is one CPU: say CPUs, never cores.
HEADERS_SMT_UNKNOWN = tuple("#CPUs" if h == "#cores" else h for h in HEADERS)


def _port(nic: NicUse) -> str:
    """``:1`` for a verbs port (as NCCL_IB_HCA names it); EFA and Slingshot have no port to name."""
    return "" if nic.kind in ("efa", "slingshot") or nic.port is None else f":{nic.port}"


def plan_table(plan: Plan) -> list[Table | str]:
    rows = []
    for r in plan.ranks:
        mem = r.mem_policy + (f" {','.join(map(str, sorted(r.mems)))}" if r.mems else "")
        rows.append(
            (
                str(r.local_rank),
                "-" if r.gpu is None else f"{r.gpu.index} {r.gpu.pci_bus_id}",
                "-" if r.numa_node is None else str(r.numa_node),
                r.cpulist,
                str(len(r.cores)),
                mem,
                ", ".join(f"{n.name}{_port(n)} ({n.distance})" for n in r.nics) or "-",
                ", ".join(f"{s.name} ({s.distance})" for s in r.storage) or "-",
            )
        )
    title = f"Plan for {plan.hostname} ({plan.source}), fingerprint {plan.fingerprint}"
    headers = HEADERS if plan.smt_known else HEADERS_SMT_UNKNOWN
    # The core count is the cpulist's, restated: the first thing a narrow terminal can do without.
    return [Table(title, headers, tuple(rows), optional=(headers[4],))]
