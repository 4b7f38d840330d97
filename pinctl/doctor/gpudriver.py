"""gpu.driver: the NVIDIA driver and its library answer as one version.

After a driver upgrade without a reboot the kernel module still loaded is the old one and
libnvidia-ml.so.1 (and libcuda) the new: nvmlInit answers LIB_RM_VERSION_MISMATCH and every
CUDA job on the node fails at start. With GPUs bound to the nvidia driver that is a broken
node, not "no NVML here": the other gpu.* checks cannot run, so this one fails. Other
reasons NVML cannot start (no library, no driver loaded) keep their meaning: a node
without NVIDIA GPUs is not sick. But NVIDIA GPUs on the PCI bus with no driver bound (or nouveau)
while NVML says the driver is not loaded are a node whose driver failed to load (a kernel
updated without its module, secure boot refusing it): no CUDA job can start, so that fails too.
When NVML answers, the same check compares the GPUs' firmware with the driver
(:func:`pinctl.doctor.gpuhealth.driver_versions`).
"""

from __future__ import annotations

from pinctl.doctor.finding import DoctorContext, Finding, skipped
from pinctl.doctor.gpu import nvidia_pci_gpus
from pinctl.doctor.gpuhealth import DRIVER, driver_versions
from pinctl.kernel import pci
from pinctl.words import count

CHECK = DRIVER
MISMATCH = "LIB_RM_VERSION_MISMATCH"
NOT_LOADED = "DRIVER_NOT_LOADED"
REMEDY = (
    "the loaded nvidia kernel module is not the installed driver's (upgraded without a reboot): "
    "reboot the node, or stop everything using the GPUs (nvidia-persistenced, DCGM, jobs) and reload "
    "the modules (rmmod nvidia_uvm nvidia_drm nvidia_modeset nvidia; modprobe nvidia)"
)


def driver(ctx: DoctorContext) -> list[Finding]:
    if ctx.health is not None:
        return driver_versions(ctx)
    if ctx.nvml_error == NOT_LOADED:
        return [_not_loaded(ctx) or skipped(CHECK, ctx.nvml_note)]
    if ctx.nvml_error != MISMATCH:
        return [skipped(CHECK, ctx.nvml_note)]
    bound = nvidia_pci_gpus(ctx)
    evidence = (
        f"nvmlInit() -> {MISMATCH}",
        f"{pci.DEVICES_DIR}/*: {count(len(bound), 'NVIDIA GPU')} bound to the nvidia driver",
    )
    if not bound:
        return [
            Finding(
                CHECK,
                "warn",
                "node",
                "driver/library version mismatch (no GPU bound)",
                evidence,
                REMEDY,
            )
        ]
    summary = f"driver/library version mismatch: {count(len(bound), 'GPU')} unusable"
    return [Finding(CHECK, "fail", "node", summary, evidence, REMEDY)]


def _not_loaded(ctx: DoctorContext) -> Finding | None:
    """FAIL when NVIDIA GPUs sit on the bus without a driver (or under nouveau); None without any."""
    idle = [
        (addr, bound)
        for addr in pci.functions(ctx.files)
        if (ids := pci.ids(ctx.files, addr))[1] == 0x10DE
        and ids[0] >> 16 == 0x03
        and (bound := pci.driver(ctx.files, addr)) in (None, "nouveau")
    ]
    if not idle:
        return None
    evidence = (
        f"nvmlInit() -> {NOT_LOADED}",
        *(f"{pci.DEVICES_DIR}/{addr}/driver: {bound or 'none bound'}" for addr, bound in idle),
    )
    return Finding(
        CHECK,
        "fail",
        "node",
        f"NVIDIA driver not loaded: {count(len(idle), 'GPU')} unusable",
        evidence,
        "load it (modprobe nvidia) and read why it failed in dmesg: a kernel updated without the "
        "driver's module (rebuild it: dkms autoinstall), secure boot refusing an unsigned module, or "
        "nouveau holding the GPUs (blacklist it); then reboot or restart the GPU services",
    )
