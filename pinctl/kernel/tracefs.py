"""Whether the kernel's own noise tracer (osnoise, Documentation/trace/osnoise-tracer.rst) can run here.

It needs a kernel built with CONFIG_OSNOISE_TRACER, tracefs mounted, and root to write it;
``pinctl noise`` says which of these is missing when it falls back to its own probe.
"""

from __future__ import annotations

import gzip
import os

from pinctl.kernel.files import KernelFiles

TRACERS = ("/sys/kernel/tracing/available_tracers", "/sys/kernel/debug/tracing/available_tracers")
CONFIG = "/proc/config.gz"


def _config_says(files: KernelFiles, option: str) -> bool | None:
    """Whether /proc/config.gz sets *option* (None: the kernel does not publish its config)."""
    try:
        with gzip.open(files.path(CONFIG), "rt", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(option + "=") or line.startswith(f"# {option} is not set"):
                    return line.startswith(option + "=")
    except (OSError, EOFError):
        return None
    return False


def osnoise(files: KernelFiles) -> tuple[bool, str]:
    """(usable, why): whether the osnoise tracer is there and this user may run it."""
    for path in TRACERS:
        text = files.read(path, strict_perm=False)
        if text is not None:
            if "osnoise" not in text.split():
                return False, f"this kernel has no osnoise tracer ({path} does not list it)"
            if os.geteuid() != 0:
                return False, "the osnoise tracer needs root (tracefs is root's)"
            return True, f"osnoise is in {path}"
    built = _config_says(files, "CONFIG_OSNOISE_TRACER")
    if built is False:
        return False, "this kernel is built without the osnoise tracer (CONFIG_OSNOISE_TRACER is not set)"
    return False, "tracefs is not mounted (no /sys/kernel/tracing/available_tracers)"
