"""The plan as tables (one row per rank, then every CPU of the node by class), drawn by
pinctl.render.table: rich on a TTY, plain otherwise."""

from __future__ import annotations

from pinctl.cpuset import format_list
from pinctl.planfile.types import Plan
from pinctl.planfile.uses import NicUse
from pinctl.render.table import Table

HEADERS = ("rank", "GPU", "NUMA", "cpulist", "#cores", "mem policy", "NIC (distance)", "storage")
# Without SMT facts a "core" is one CPU: say CPUs, never cores.
HEADERS_SMT_UNKNOWN = tuple("#CPUs" if h == "#cores" else h for h in HEADERS)
CLASS_HEADERS = ("class", "#CPUs", "cpulist", "for")


def _port(nic: NicUse) -> str:
    """``:1`` for a verbs port (as NCCL_IB_HCA names it); EFA and Slingshot have no port to name."""
    return "" if nic.kind in ("efa", "slingshot") or nic.port is None else f":{nic.port}"


def plan_table(plan: Plan) -> list[Table | str]:
    """The ranks' table (with a helpers column under --helpers) and the node's CPU classes."""
    helpers = any(r.helpers for r in plan.ranks)
    rows = []
    for r in plan.ranks:
        mem = r.mem_policy + (f" {','.join(map(str, sorted(r.mems)))}" if r.mems else "")
        row = [
            str(r.local_rank),
            "-" if r.gpu is None else f"{r.gpu.index} {r.gpu.pci_bus_id}",
            "-" if r.numa_node is None else str(r.numa_node),
            r.cpulist,
            str(len(r.cores)),
            mem,
            ", ".join(f"{n.name}{_port(n)} ({n.distance})" for n in r.nics) or "-",
            ", ".join(f"{s.name} ({s.distance})" for s in r.storage) or "-",
        ]
        if helpers:
            row.insert(4, format_list(r.helpers) or "-")
        rows.append(tuple(row))
    headers = list(HEADERS if plan.smt_known else HEADERS_SMT_UNKNOWN)
    if helpers:
        headers.insert(4, "helpers")
    title = f"Plan for {plan.hostname} ({plan.source}), fingerprint {plan.fingerprint}"
    # The core count is the cpulist's, restated: the first thing a narrow terminal can do without.
    optional = tuple(h for h in headers if h in ("#cores", "#CPUs"))
    # A CPU list is copied from here into taskset or numactl: never split it (one block per rank instead).
    whole = ("cpulist", "helpers")
    items: list[Table | str] = [Table(title, tuple(headers), tuple(rows), optional=optional, whole=whole)]
    classes = plan_cpu_classes(plan)
    if classes is not None:
        items.append(classes)
    return items


def plan_cpu_classes(plan: Plan) -> Table | None:
    """Every CPU of the node by class; None for a v1 plan file, which did not say."""
    c = plan.cpu_classes
    if c is None:
        return None
    idle_why = "no one" + ("" if plan.helper_cpus or not c.idle else " (--helpers gives them to data loaders)")
    entries = [
        ("ranks", plan.rank_cpus, "the ranks (above)"),
        ("helpers", plan.helper_cpus, "data-loader workers (--helpers)"),
        ("housekeeping", c.housekeeping, "daemons and IRQs (--format systemd, slurm, irqbalance)"),
        ("idle", c.idle, idle_why),
        ("not allowed", c.not_allowed, "outside the cpuset this plan was made in"),
    ]
    rows = tuple(
        (name, str(len(cpus)), format_list(cpus) or "-", why)
        for name, cpus, why in entries
        if cpus or name in ("ranks", "housekeeping", "idle")
    )
    return Table("Node CPUs", CLASS_HEADERS, rows, whole=("cpulist",))
