"""Loaded kernel modules and the NVIDIA driver's flavour, for the GPUDirect checks.

A module is loaded when /sys/module/NAME/initstate exists (built-in modules have a
/sys/module folder too, but no initstate) or /proc/modules lists it. /proc/driver/nvidia/version
names the kernel module ("Open Kernel Module" for the open one, which exports DMA-BUF).
"""

from __future__ import annotations

from pinctl.kernel.files import KernelFiles

MODULES_DIR = "/sys/module"
PROC_MODULES = "/proc/modules"
NVIDIA_VERSION = "/proc/driver/nvidia/version"
OSRELEASE = "/proc/sys/kernel/osrelease"


def known(files: KernelFiles) -> bool:
    """Whether this tree says which modules are loaded at all."""
    return files.exists(PROC_MODULES) or bool(files.listdir(MODULES_DIR))


def loaded(files: KernelFiles, name: str) -> tuple[bool, str]:
    """``(loaded, evidence line)`` for module *name*."""
    if files.exists(f"{MODULES_DIR}/{name}/initstate"):
        state = files.read(f"{MODULES_DIR}/{name}/initstate")
        return state == "live", f"{MODULES_DIR}/{name}/initstate = {state}"
    listed = files.read(PROC_MODULES)
    if listed is not None:
        found = any(line.split(" ", 1)[0] == name for line in listed.splitlines())
        return found, f"{PROC_MODULES}: {name} {'listed' if found else 'not listed'}"
    return False, f"{MODULES_DIR}/{name}: absent"


def nvidia_open_module(files: KernelFiles) -> bool | None:
    """True for NVIDIA's open kernel module, False for the proprietary one, None when unknown."""
    text = files.read(NVIDIA_VERSION)
    return None if text is None else "Open Kernel Module" in text


def kernel_release(files: KernelFiles) -> tuple[int, int] | None:
    """``6.8.0-45-generic`` -> (6, 8)."""
    text = files.read(OSRELEASE) or ""
    parts = text.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or "x")
    except (IndexError, ValueError):
        return None
