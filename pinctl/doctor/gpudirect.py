"""GPUDirect prerequisites where GPUs share a PCIe switch with RDMA NICs or NVMe drives.

The topology can be right and the path still off: GPUDirect RDMA needs the peer-memory
module (nvidia_peermem, or the older nv_peer_mem; or DMA-BUF with the open kernel module
on Linux 5.12+), GPUDirect Storage needs nvidia_fs, and peer traffic through a switch must
neither be redirected to the root complex by ACS nor translated by the IOMMU (NVIDIA's
GPUDirect RDMA and NCCL troubleshooting guides). Checked only where GPUs and the devices
share a switch: elsewhere there is no peer path to protect.
"""

from __future__ import annotations

from pinctl.distance import pci_level
from pinctl.doctor.finding import DoctorContext, Finding, no_node, ok, skipped
from pinctl.kernel import modules, pci, pcicfg
from pinctl.kernel.files import NeedsRoot
from pinctl.model import PciAddress, PciInfo
from pinctl.words import count

PEERMEM = "gpudirect.peer-memory"
STORAGE = "gpudirect.storage"
ACS = "gpudirect.acs"
IOMMU = "gpudirect.iommu"
_SHARED = ("PIX", "PXB")
Pairs = list[tuple[str, PciInfo, str, PciInfo]]


def _pairs(ctx: DoctorContext, check: str, *, nics: bool = True, nvme: bool = False) -> Pairs | Finding:
    """(GPU label, its PCI, peer name, its PCI) for GPUs and RDMA NICs / NVMe under one switch."""
    if ctx.node is None:
        return no_node(ctx, check)
    peers = [(n.name, n.pci) for n in ctx.node.nics if nics and n.rdma and n.pci is not None]
    peers += [(s.name, s.pci) for s in ctx.node.storage if nvme and s.pci is not None]
    out = [
        (f"GPU {g.index} ({g.pci.address})", g.pci, name, p)
        for g in ctx.node.gpus
        for name, p in peers
        if pci_level(g.pci, p) in _SHARED
    ]
    what = " or ".join(w for w, on in (("an RDMA NIC", nics), ("NVMe", nvme)) if on)
    return out or skipped(check, f"no GPU on a PCIe switch with {what}")


def _module_finding(ctx: DoctorContext, check: str, names: tuple[str, ...], pairs: Pairs, remedy: str) -> Finding:
    if not modules.known(ctx.files):
        return skipped(check, f"loaded modules unknown (no {modules.PROC_MODULES})")
    results = [modules.loaded(ctx.files, n) for n in names]
    gpus = count(len({p[0] for p in pairs}), "GPU")
    # the summary stays one short line; which GPU shares a switch with which device is evidence
    ev = (*(ev for _, ev in results), *sorted({f"{g} shares a PCIe switch with {peer}" for g, _, peer, _ in pairs}))
    if any(found for found, _ in results):
        return ok(check, "node", f"{names[[f for f, _ in results].index(True)]} loaded for {gpus}", *ev)
    return Finding(check, "warn", "node", f"{names[0]} not loaded: {gpus} need it", ev, remedy)


def peer_memory(ctx: DoctorContext) -> list[Finding]:
    pairs = _pairs(ctx, PEERMEM)
    if isinstance(pairs, Finding):
        return [pairs]
    finding = _module_finding(
        ctx,
        PEERMEM,
        ("nvidia_peermem", "nv_peer_mem"),
        pairs,
        "load it (modprobe nvidia_peermem; make it persistent in /etc/modules-load.d): without it "
        "NCCL and MPI stage GPU buffers through host memory instead of GPUDirect RDMA",
    )
    if (
        finding.severity == "warn"
        and modules.nvidia_open_module(ctx.files)
        and (modules.kernel_release(ctx.files) or (0, 0)) >= (5, 12)
    ):
        return [
            ok(
                PEERMEM,
                "node",
                "DMA-BUF serves GPUDirect RDMA (no nvidia_peermem)",  # open module, Linux 5.12+, NCCL 2.19+
                *finding.evidence,
                f"{modules.NVIDIA_VERSION}: Open Kernel Module",
            )
        ]
    return [finding]


def storage(ctx: DoctorContext) -> list[Finding]:
    pairs = _pairs(ctx, STORAGE, nics=False, nvme=True)
    if isinstance(pairs, Finding):
        return [pairs]
    return [
        _module_finding(
            ctx,
            STORAGE,
            ("nvidia_fs",),
            pairs,
            "install and load nvidia-fs (the GPUDirect Storage kernel module; modprobe nvidia_fs): "
            "without it cuFile runs in compatibility mode, through a bounce buffer in host memory",
        )
    ]


def _below_common(a: PciInfo, b: PciInfo) -> list[PciAddress]:
    """The bridges on a's and b's paths below their common ancestor (the switch ports peer traffic crosses)."""
    common = 0
    for x, y in zip(reversed(a.bridges), reversed(b.bridges), strict=False):
        if x != y:
            break
        common += 1
    return list(a.bridges[: len(a.bridges) - common]) + list(b.bridges[: len(b.bridges) - common])


def acs_redirect(ctx: DoctorContext) -> list[Finding]:
    pairs = _pairs(ctx, ACS)
    if isinstance(pairs, Finding):
        return [pairs]
    ports: dict[PciAddress, list[str]] = {}
    for gpu, gpci, nic, npci in pairs:
        for port in _below_common(gpci, npci):
            ports.setdefault(port, []).append(f"{gpu} - {nic}")
    if not ports:
        return [skipped(ACS, "switch ports between GPUs and NICs unknown")]
    out, read = [], 0
    for port, between in sorted(ports.items()):
        try:
            control = pcicfg.acs_control(ctx.files, port)
        except NeedsRoot:
            return [
                skipped(
                    ACS,
                    "needs root (ACS is in the extended config space)",
                    f"switch port {port}",  # others read only the first 64 bytes of its config file
                )
            ]
        if control is None:
            continue
        read += 1
        on = [name for bit, name in pcicfg.ACS_REDIRECT.items() if control & bit]
        if on:
            out.append(
                Finding(
                    ACS,
                    "warn",
                    f"switch port {port}",
                    f"ACS redirects P2P on {count(len(set(between)), 'GPU-NIC path')}",
                    (
                        f"{pci.device_file(port, 'config')}: ACS control = {control:#06x} ({' and '.join(on)})",
                        *(f"between {b}" for b in sorted(set(between))),
                    ),
                    "peer traffic goes up to the root complex instead of across the switch (NCCL's "
                    "troubleshooting guide): disable ACS in the BIOS (or `setpci -s PORT ECAP_ACS+0x6.w=0000` "
                    "at boot on bare metal; VMs need ACS for isolation)",
                )
            )
    if read == 0:
        return [skipped(ACS, "no ACS capability on the GPU-NIC switch ports")]
    return out or [ok(ACS, "node", f"no ACS redirect on {count(read, 'switch port')} to NICs")]


def iommu(ctx: DoctorContext) -> list[Finding]:
    pairs = _pairs(ctx, IOMMU, nvme=True)
    if isinstance(pairs, Finding):
        return [pairs]
    units, boot = pcicfg.iommu_units(ctx.files), pcicfg.cmdline_iommu(ctx.files)
    ev_boot = f"{pcicfg.CMDLINE}: {' '.join(boot) or 'no iommu parameter'}"
    devices = sorted({p for _, g, _, n in pairs for p in (g.address, n.address)})
    translated, unknown = [], []
    for addr in devices:
        group, kind = pcicfg.iommu_group_type(ctx.files, addr)
        if group is None:
            continue
        if kind is None:
            unknown.append(addr)
        elif kind.startswith("DMA"):
            translated.append(f"{addr}: iommu group {group} type = {kind}")
    if not translated and unknown and units and "iommu=pt" not in boot:
        return [
            skipped(
                IOMMU, "the IOMMU is on but its mode is not shown (no iommu_groups/N/type: kernel before 5.11)", "node"
            )
        ]
    if translated:
        return [
            Finding(
                IOMMU,
                "warn",
                "node",
                f"IOMMU translates DMA for {count(len(translated), 'GPUDirect device')}",
                (*translated, ev_boot),
                "boot with iommu=pt (passthrough; intel_iommu=on iommu=pt on Intel): translated peer-to-peer "
                "DMA is redirected or fails, and GPUDirect RDMA/Storage loses bandwidth",
            )
        ]
    why = "passthrough" if units else "off"
    return [
        ok(
            IOMMU,
            "node",
            f"IOMMU {why} for {count(len(devices), 'device')} on GPUDirect paths",
            f"{pcicfg.IOMMU_CLASS}: {', '.join(units) or 'empty'}",
            ev_boot,
        )
    ]
