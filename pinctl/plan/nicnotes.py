"""What a plan says about its NICs: one line per reason, naming the GPUs it concerns.

An operator reading eight copies of one sentence misses the ninth that differs, so
the notes are grouped: "GPUs 0-7: no RDMA NIC shares a PCIe switch ..." once, not
per GPU. Each port-state hint names the tool for that NIC's kind only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pinctl.cpuset import format_list
from pinctl.distance import c2c_attached, level_between, level_order
from pinctl.model import Gpu, Nic, NicKind, natural_key
from pinctl.planfile.uses import NicUse

# Where a GPU's RDMA traffic goes when its NIC is at this level (nvidia-smi topo -m legend).
_CROSSES = {
    "PHB": "crosses the CPU's PCIe host bridge",
    "NODE": "crosses between PCIe host bridges of one NUMA node",
    "SYS": "crosses the interconnect between NUMA nodes",
}


def port_tool(kind: NicKind | str) -> str:
    """The command that shows a NIC's port state, by kind (verbs devices: ibstat)."""
    return {"efa": "fi_info -p efa", "slingshot": "cxi_stat"}.get(kind, "ibstat")


def gpu_label(indexes: Iterable[int]) -> str:
    """``GPU 3`` or ``GPUs 0-3,6``."""
    values = sorted(set(indexes))
    return f"GPU {values[0]}" if len(values) == 1 else f"GPUs {format_list(values)}"


def grouped(reasons: dict[str, list[int]]) -> list[str]:
    """``{reason: [gpu, ...]}`` as lines ``GPUs 0-3: reason``, in first-seen order."""
    return [f"{gpu_label(gpus)}: {reason}" for reason, gpus in reasons.items()]


def name_list(names: Sequence[str], limit: int = 6) -> str:
    """``NIC mlx5_0``, ``NICs mlx5_0, mlx5_1`` or, past *limit*, ``32 NICs (rdmap79s0, ..., rdmap201s0)``."""
    if len(names) == 1:
        return f"NIC {names[0]}"
    if len(names) <= limit:
        return f"NICs {', '.join(names)}"
    return f"{len(names)} NICs ({names[0]}, {names[1]}, ..., {names[-1]})"


def unknown_port_notes(nics: Sequence[Nic]) -> list[str]:
    """NICs whose port state nobody reported, one line per tool that would show it."""
    by_tool: dict[str, list[str]] = {}
    for nic in nics:
        by_tool.setdefault(port_tool(nic.kind), []).append(nic.name)
    return [
        f"port state unknown for {name_list(names)}: assuming usable (check with {tool} on the node)"
        for tool, names in by_tool.items()
    ]


def _down(nic: Nic) -> bool:
    port = nic.primary_port
    return port is not None and (port.state not in (None, "ACTIVE") or port.phys_state not in (None, "LinkUp"))


def unused_reason(nic: Nic, candidates: frozenset[str]) -> str:
    """Why a nearer NIC was not taken: its port (with the tool to look), or the --nic-link-layer filter."""
    port = nic.primary_port
    tool = f" (see {port_tool(nic.kind)})"
    if port is not None and port.state not in (None, "ACTIVE"):
        return f"has port {port.number} {port.state}{tool}"
    if port is not None and port.phys_state not in (None, "LinkUp"):
        return f"has port {port.number} {port.phys_state}{tool}"
    if nic.name not in candidates:
        layer = port.link_layer if port is not None and port.link_layer else nic.kind
        return f"is {layer}, excluded by --nic-link-layer"
    return "serves other GPUs"


def nic_notes(
    nics: Sequence[Nic],
    gpus: Sequence[Gpu],
    nic_map: dict[int, tuple[NicUse, ...]],
    candidates: frozenset[str],
    short_rails: dict[int, int],
    per_gpu: int,
) -> list[str]:
    """Why a GPU's NIC is farther than it could be, rails across the CPU interconnect, and
    rails --local-rails left out (*short_rails*: GPU index -> rails kept)."""
    rdma = sorted((n for n in nics if n.rdma and n.pci is not None), key=lambda n: natural_key(n.name))
    unusable: dict[str, list[int]] = {}
    sharing: dict[str, list[int]] = {}
    far: dict[str, list[int]] = {}
    far_c2c: list[int] = []  # C2C-attached GPUs whose nearest NIC is on the other CPU
    cross: list[str] = []
    riders: dict[str, int] = {}  # first NIC -> how many GPUs ride on it
    for uses in nic_map.values():
        if uses:
            riders[uses[0].name] = riders.get(uses[0].name, 0) + 1
    for gpu in gpus:
        used = nic_map.get(gpu.index, ())
        if not used or not rdma:
            continue
        worst = max(level_order(u.distance or "SYS") for u in used)
        in_use = {u.name for u in used}
        nearer = [n for n in rdma if n.name not in in_use and level_order(level_between(gpu.pci, n.pci)) < worst]
        for n in nearer:
            unusable.setdefault(f"the nearer NIC {n.name} {unused_reason(n, candidates)}", []).append(gpu.index)
        first = used[0].distance or "SYS"
        if riders.get(used[0].name, 0) > 1:  # sharing: say so when an equally near NIC is out of use
            for n in rdma:
                out_of_use = _down(n)  # a link-layer filter is a choice, not a loss: not repeated here
                if out_of_use and n.name not in in_use and level_between(gpu.pci, n.pci) == first:
                    reason = f"share {used[0].name}: the equally near NIC {n.name} {unused_reason(n, candidates)}"
                    sharing.setdefault(reason, []).append(gpu.index)
        best = min(level_order(level_between(gpu.pci, n.pci)) for n in rdma)
        if c2c_attached(gpu):  # its nearest path is its own CPU's PCIe root: only the other CPU is far
            if not nearer and best >= level_order("SYS"):
                far_c2c.append(gpu.index)
        elif not nearer and best >= level_order("PHB"):
            far.setdefault(first, []).append(gpu.index)
        far_rails = [u.name for u in used[1:] if u.distance == "SYS"]
        if first != "SYS" and far_rails:
            cross.append(f"GPU {gpu.index}: {', '.join(far_rails)}")
    out = [
        f"{gpu_label(indexes)}: no RDMA NIC shares a PCIe switch with {'it' if len(indexes) == 1 else 'them'}; "
        f"the nearest is {level} (GPUDirect RDMA traffic {_CROSSES.get(level, _CROSSES['SYS'])})"
        for level, indexes in far.items()
    ]
    if far_c2c:
        out.append(
            f"{gpu_label(far_c2c)}: attached to {'its' if len(far_c2c) == 1 else 'their'} CPU by NVLink-C2C, "
            "but no RDMA NIC is under that CPU's PCIe roots; the nearest is SYS (GPUDirect RDMA traffic "
            f"{_CROSSES['SYS']})"
        )
    out += [f"{line}, so a farther one is used" for line in grouped(unusable)]
    out += grouped(sharing)
    if cross:
        out.append(
            f"extra rails at SYS, across the interconnect between NUMA nodes ({'; '.join(cross)}): their "
            "traffic leaves the GPU's NUMA node (--local-rails keeps only rails that do not)"
        )
    kept: dict[str, list[int]] = {}
    for index, count in short_rails.items():
        kept.setdefault(f"--local-rails leaves {count} of {per_gpu} rails (the others would be SYS)", []).append(index)
    return out + grouped(kept)


def fabric_notes(nic_map: dict[int, tuple[NicUse, ...]]) -> list[str]:
    """Once per plan: fabrics whose library documents no per-process NIC selector (Slingshot)."""
    slingshot = sorted({u.name for uses in nic_map.values() for u in uses if u.kind == "slingshot"}, key=natural_key)
    if not slingshot:
        return []
    return [
        f"Slingshot {name_list(slingshot)}: libfabric's cxi provider documents no per-process NIC "
        "selector, so the plan names each rank's NIC but sets no variable for it (with HPE Cray MPICH, "
        "MPICH_OFI_NIC_POLICY=GPU picks the NIC nearest each rank's GPU)"
    ]
