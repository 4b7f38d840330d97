"""RDMA ports that are down, GPUs without a GPUDirect-friendly NIC, NICs shared unevenly.

Port states come straight from sysfs (pinctl.kernel.rdma: ``ports/N/state``
reads ``4: ACTIVE``, ``phys_state`` reads ``5: LinkUp``), so a gathered tree can
be diagnosed. GPU-to-NIC distances use the model and pinctl.distance, the same
classes ``nvidia-smi topo -m`` prints; NCCL decides on GPUDirect RDMA by that
distance (NCCL_NET_GDR_LEVEL), and NVIDIA asks for GPU and HCA under one PCIe
switch for full GPUDirect RDMA bandwidth (docs/doctor.md has the sources).
NIC balance is judged with the planner's own assignment
(:func:`pinctl.plan.devices.choose_gpu_nics`): the doctor warns exactly when the
plan, which serves each GPU at its nearest level and spreads ties, leaves one NIC
carrying two or more GPUs more than another.
"""

from __future__ import annotations

from pinctl.distance import c2c_attached, level_order, pci_level
from pinctl.doctor.finding import DoctorContext, Finding, no_node, ok, skipped
from pinctl.kernel import rdma
from pinctl.kernel.pci import device_file
from pinctl.model import Gpu, Nic, Node
from pinctl.plan.devices import choose_gpu_nics
from pinctl.plan.nicnotes import port_tool
from pinctl.words import count

PORT_DOWN = "rdma.port-down"
STACK = "rdma.stack-missing"
NO_GDR = "rdma.no-gdr-path"
IMBALANCE = "rdma.nic-imbalance"
LINK_ERRORS = "rdma.link-errors"
_FAR = ("PHB", "NODE", "SYS")


def port_down(ctx: DoctorContext) -> list[Finding]:
    if ctx.offline:
        return _ports_in_file(ctx)
    devices = rdma.devices(ctx.files)
    if not devices:
        return [skipped(PORT_DOWN, f"no RDMA devices in {rdma.IB_DIR}")]
    out: list[Finding] = []
    ports = 0
    kinds = {n.name: n.kind for n in ctx.node.nics} if ctx.node is not None else {}
    for dev in devices:
        tool = port_tool(kinds.get(dev, "infiniband"))
        for port in rdma.ports(ctx.files, dev, strict=True):
            if port.state_text is None:
                continue
            ports += 1
            good_phys = port.phys_text is None or (port.phys_state or "").replace("_", "").lower() == "linkup"
            if port.state != "ACTIVE" or not good_phys:
                evidence = [f"{port.path}/state = {port.state_text}"]
                if port.phys_text is not None:
                    evidence.append(f"{port.path}/phys_state = {port.phys_text}")
                out.append(
                    Finding(
                        PORT_DOWN,
                        "warn",
                        f"{dev} port {port.number}",
                        f"port is {port.state}" + (f" / {port.phys_state}" if port.phys_text else ""),
                        tuple(evidence),
                        "check the cable and the switch port; on InfiniBand make sure a subnet manager "
                        f"runs (INIT/ARMED means no SM has configured the port); `{tool}` shows the same",
                    )
                )
    if ports == 0:
        return [skipped(PORT_DOWN, "RDMA devices have no readable port state")]
    return out or [ok(PORT_DOWN, "node", f"{count(ports, 'RDMA port')} ACTIVE / LinkUp")]


def _ports_in_file(ctx: DoctorContext) -> list[Finding]:
    """A topology file alone: judge the port states it holds (hwloc's ``Port1State``, NCCL's none)."""
    if ctx.node is None:
        return [no_node(ctx, PORT_DOWN)]
    out: list[Finding] = []
    ports = 0
    for nic in ctx.node.nics:
        if not nic.rdma:
            continue
        for port in nic.ports:
            if port.state is None:
                continue
            ports += 1
            if not port.active:
                state = port.state + (f" / {port.phys_state}" if port.phys_state else "")
                out.append(
                    Finding(
                        PORT_DOWN,
                        "warn",
                        f"{nic.name} port {port.number}",
                        f"port is {state}",
                        (f"{ctx.node.source}: {nic.name} port {port.number} state = {state}",),
                        "check the cable and the switch port on that node; on InfiniBand make sure a subnet "
                        f"manager runs; `{port_tool(nic.kind)}` there shows the same",
                    )
                )
    if ports == 0:
        return [skipped(PORT_DOWN, "the topology file holds no RDMA port states")]
    return out or [ok(PORT_DOWN, "node", f"{count(ports, 'RDMA port')} ACTIVE in the topology file")]


def stack_missing(ctx: DoctorContext) -> list[Finding]:
    """ConnectX functions on mlx5_core with no verbs device: on the bus, unusable for RDMA."""
    bare = rdma.mlx5_without_rdma(ctx.files)
    if not bare:
        owned = len(rdma.devices(ctx.files))
        return [
            ok(
                STACK,
                "node",
                f"RDMA stack loaded ({count(owned, 'RDMA device')})" if owned else "no ConnectX on mlx5_core",
            )
        ]
    return [
        Finding(
            STACK,
            "fail",
            f"ConnectX {address}",
            "bound to mlx5_core but has no RDMA device: the RDMA stack (ib_core, mlx5_ib) is not loaded",
            (f"{device_file(address, 'driver')} -> mlx5_core", f"{rdma.IB_DIR}: no entry for {address}"),
            "modprobe mlx5_ib (and ib_uverbs, rdma_ucm); make it persistent with the distribution's rdma-core "
            "package (or NVIDIA MLNX_OFED/DOCA-OFED, whose openibd service loads it); `ibv_devices` then lists it",
        )
        for address in bare
    ]


def link_errors(ctx: DoctorContext) -> list[Finding]:
    """Ports whose error counters are above zero: a link that flapped or loses bits (NHC, Azure HPC checks)."""
    devices = rdma.devices(ctx.files)
    if not devices:
        return [skipped(LINK_ERRORS, f"no RDMA devices in {rdma.IB_DIR}")]
    out: list[Finding] = []
    read = 0
    for dev in devices:
        for port in rdma.ports(ctx.files, dev):
            counters = rdma.error_counters(ctx.files, port.path)
            if not counters:
                continue
            read += 1
            bad = {k: v for k, v in counters.items() if v > 0}
            if bad:
                out.append(
                    Finding(
                        LINK_ERRORS,
                        "warn",
                        f"{dev} port {port.number}",
                        ", ".join(f"{k} = {v}" for k, v in bad.items()),
                        tuple(f"{port.path}/counters/{k} = {v}" for k, v in bad.items()),
                        "counts since the counters were last cleared; a flapping or noisy link slows every "
                        "collective that crosses it: check `ibstat`/"
                        "`perfquery -x` again later; if the counts grow, reseat or replace the cable or "
                        "transceiver and check the switch port (clear with `perfquery -R` to see a rate)",
                    )
                )
    if read == 0:
        return [skipped(LINK_ERRORS, "RDMA ports have no readable error counters")]
    return out or [ok(LINK_ERRORS, "node", f"no link errors on {count(read, 'RDMA port')}")]


def _usable(nics: tuple[Nic, ...]) -> list[Nic]:
    """RDMA NICs on PCI with an active port (or no port facts at all)."""
    return [n for n in nics if n.rdma and n.pci is not None and (not n.ports or any(p.active for p in n.ports))]


def _nearest(gpu: Gpu, nics: list[Nic]) -> tuple[str, list[Nic]]:
    levels = {n.name: pci_level(gpu.pci, n.pci) for n in nics if n.pci is not None}
    best = min(levels.values(), key=level_order)
    return best, [n for n in nics if levels[n.name] == best]


def _needs(ctx: DoctorContext, check: str) -> tuple[list[Gpu], list[Nic]] | Finding:
    if ctx.node is None:
        return no_node(ctx, check)
    if not ctx.node.gpus:
        return skipped(check, "no GPUs in the topology")
    nics = _usable(ctx.node.nics)
    if not nics:
        return skipped(check, "no usable RDMA NIC (none found, or no port ACTIVE)")
    return list(ctx.node.gpus), nics


def no_gdr_path(ctx: DoctorContext) -> list[Finding]:
    needs = _needs(ctx, NO_GDR)
    if isinstance(needs, Finding):
        return [needs]
    gpus, nics = needs
    assert ctx.node is not None
    down = [n for n in ctx.node.nics if n.rdma and n.pci is not None and n not in nics]
    out: list[Finding] = []
    unknown: list[str] = []
    for gpu in gpus:
        level, nearest = _nearest(gpu, nics)
        if level == "SYS" and (gpu.numa_node is None or all(n.numa_node is None for n in nearest)):
            unknown.append(f"GPU {gpu.index}")  # SYS only because locality is unknown: not a finding here
            continue
        c2c = c2c_attached(gpu)
        if level in (("SYS",) if c2c else _FAR):  # C2C: a NIC on its own CPU's PCIe roots is its nearest path
            ev = [
                f"GPU {gpu.index} {gpu.pci.address} -> {n.name} {n.pci.address if n.pci else '?'}: {level}"
                for n in nearest[:3]
            ]
            if len(nearest) > 3:
                ev.append(f"... {len(nearest) - 3} more NICs at {level}")
            close = [
                n.name
                for n in down
                if n.pci is not None and level_order(pci_level(gpu.pci, n.pci)) < level_order(level)
            ]
            if close:
                ev.append(f"nearer RDMA NIC(s) without an active port: {', '.join(close)}")
            out.append(
                Finding(
                    NO_GDR,
                    "warn",
                    f"GPU {gpu.index} ({gpu.pci.address})",
                    (
                        "attached to its CPU by NVLink-C2C, but the nearest usable RDMA NIC is on another CPU (SYS)"
                        if c2c
                        else f"nearest usable RDMA NIC is {level} away (no PCIe switch shared)"
                    ),
                    tuple(ev),
                    ("bring the nearer NIC's port up (see rdma.port-down); " if close else "")
                    + (
                        "GPUDirect RDMA from a C2C-attached GPU goes through its own CPU: use (or install) an RDMA "
                        "NIC under that CPU's PCIe roots, or accept the hop between CPUs"
                        if c2c
                        else "GPUDirect RDMA needs the NIC under the same PCIe switch as the GPU (PIX/PXB): move the "
                        "NIC or GPU to a shared switch, or accept staging through host memory"
                    ),
                )
            )
    if unknown:
        out.append(
            skipped(
                NO_GDR,
                f"{', '.join(unknown)}: NUMA locality unknown, distance cannot be judged (see numa.unknown-locality)",
            )
        )
    near = "at PIX/PXB" if not any(c2c_attached(g) for g in gpus) else "on its nearest path (C2C: its own CPU's PCIe)"
    return out or [ok(NO_GDR, "node", f"every GPU ({len(gpus)}) has an RDMA NIC {near}")]


def nic_loads(node: Node, gpus: list[Gpu]) -> dict[str, list[int]]:
    """Per usable NIC, the GPUs (by index) the planner's assignment gives it as their first NIC.

    The planner serves every GPU at its nearest usable level first, so an uneven
    spread here is one the hardware forces, not one a better plan would avoid.
    """
    choice = choose_gpu_nics(node, gpus)
    loads: dict[str, list[int]] = {c.nic.name: [] for c in choice.candidates}
    names = list(loads)
    for gpu, chosen in zip(gpus, choice.chosen, strict=True):
        if chosen:
            loads[names[chosen[0]]].append(gpu.index)
    return loads


def nic_imbalance(ctx: DoctorContext) -> list[Finding]:
    needs = _needs(ctx, IMBALANCE)
    if isinstance(needs, Finding):
        return [needs]
    gpus, _ = needs
    assert ctx.node is not None
    loads = nic_loads(ctx.node, gpus)
    evidence = tuple(
        f"{name}: planned for {len(got)} GPU(s)" + (f" ({', '.join(map(str, got))})" if got else "")
        for name, got in loads.items()
    )
    counts = {name: len(got) for name, got in loads.items()}
    hi, lo = max(counts.values()), min(counts.values())
    if hi - lo > 1:
        busiest = [name for name, c in counts.items() if c == hi]
        return [
            Finding(
                IMBALANCE,
                "warn",
                ", ".join(busiest),
                f"RDMA NICs shared unevenly: {count(hi, 'GPU')} on the busiest NIC, {lo} on the idlest, "
                "in the plan that serves every GPU from its nearest usable NICs",
                evidence,
                "rebalance GPUs and NICs across PCIe switches (or fix down ports) so each NIC serves "
                "about the same number of GPUs; otherwise the busiest NIC caps all-reduce bandwidth",
            )
        ]
    return [ok(IMBALANCE, "node", f"{count(len(gpus), 'GPU')} spread over {count(len(loads), 'RDMA NIC')}", *evidence)]
