"""gpu.driver: the NVIDIA driver and its library answer as one version.

After a driver upgrade without a reboot the kernel module still loaded is the old one and
libnvidia-ml.so.1 (and libcuda) the new: nvmlInit answers LIB_RM_VERSION_MISMATCH and every
CUDA job on the node fails at start. With GPUs bound to the nvidia driver that is a broken
node, not "no NVML here": the other gpu.* checks cannot run, so this one fails. Other
reasons NVML cannot start (no library, no driver loaded) keep their meaning: a node
without NVIDIA GPUs is not sick. When NVML answers, the same check compares the GPUs'
firmware with the driver (:func:`pinctl.doctor.gpuhealth.driver_versions`).
"""

from __future__ import annotations

from pinctl.doctor.finding import DoctorContext, Finding, skipped
from pinctl.doctor.gpu import nvidia_pci_gpus
from pinctl.doctor.gpuhealth import DRIVER, driver_versions
from pinctl.kernel import pci
from pinctl.words import count

CHECK = DRIVER
MISMATCH = "LIB_RM_VERSION_MISMATCH"
REMEDY = (
    "the loaded nvidia kernel module is not the installed driver's (upgraded without a reboot): "
    "reboot the node, or stop everything using the GPUs (nvidia-persistenced, DCGM, jobs) and reload "
    "the modules (rmmod nvidia_uvm nvidia_drm nvidia_modeset nvidia; modprobe nvidia)"
)


def driver(ctx: DoctorContext) -> list[Finding]:
    if ctx.health is not None:
        return driver_versions(ctx)
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
                "NVIDIA driver and libnvidia-ml.so.1 versions differ (no GPU bound to the driver)",
                evidence,
                REMEDY,
            )
        ]
    summary = (
        f"NVIDIA driver and libnvidia-ml.so.1 versions differ: CUDA cannot start on the {count(len(bound), 'GPU')}"
    )
    return [Finding(CHECK, "fail", "node", summary, evidence, REMEDY)]
