"""The NIC objective of docs/plan.md as a checker, shared by the property, table and capture tests.

1. each GPU's NICs are the nearest it can have (the levels of its K NICs are its K smallest);
2. no NIC serves two GPUs while a usable NIC at the same or a nearer level for one of them
   serves none.
(3, fewer bridges among equals, and 4, names, only order ties; they are not checked here.)
"""

from __future__ import annotations

from collections import Counter

from pinctl.distance import level_order, pci_level
from pinctl.model import Nic, Node, PciInfo
from pinctl.planfile.types import Plan


def usable(nic: Nic) -> bool:
    """An RDMA NIC with an active port or no port facts at all (NCCL files), as a user would count it."""
    states = [p.state in (None, "ACTIVE") and p.phys_state in (None, "LinkUp") for p in nic.ports]
    return bool(nic.rdma and (not states or any(states)))


def _level(a: PciInfo | None, b: PciInfo | None) -> int:
    return level_order("SYS" if a is None or b is None else pci_level(a, b))


def gpu_nics(plan: Plan) -> dict[int, tuple[str, ...]]:
    """Each GPU's NICs (every rank of one GPU has the same)."""
    out: dict[int, tuple[str, ...]] = {}
    for r in plan.ranks:
        if r.gpu is not None:
            names = tuple(n.name for n in r.nics)
            assert out.setdefault(r.gpu.index, names) == names, f"ranks of GPU {r.gpu.index} differ in NICs"
    return out


def objective_problems(node: Node, plan: Plan) -> list[str]:
    """Where the plan's NIC choice breaks the objective; empty when it holds."""
    cands = {n.name: n for n in node.nics if usable(n)}
    chosen = gpu_nics(plan)
    load = Counter(name for names in chosen.values() for name in names)
    gpus = {g.index: g for g in node.gpus}
    problems = []
    for index, names in chosen.items():
        gpu = gpus[index]
        levels = {name: _level(gpu.pci, nic.pci) for name, nic in cands.items()}
        if sorted(levels[n] for n in names) != sorted(levels.values())[: len(names)]:
            problems.append(f"GPU {index}: {names} are not its nearest usable NICs")
        for name in names:
            if load[name] < 2:
                continue
            idle = [z for z in cands if z not in names and load[z] == 0 and levels[z] <= levels[name]]
            if idle:
                problems.append(f"GPU {index} shares {name} while {idle[0]} is as near and idle")
    return problems
