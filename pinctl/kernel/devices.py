"""The GPU device files this process can open: /dev/nvidiaN and /dev/dri/renderDN.

A container or job step is given GPUs as device files: the Kubernetes device plugin and
``docker --gpus`` create only the given /dev/nvidiaN (the minor numbers stay the host's),
and Slurm's ConstrainDevices lets only the allocated ones be opened. A GPU whose file is
absent or not readable and writable cannot be used, whatever sysfs shows. A device
cgroup that denies a file which is present is not seen here (that shows only on open,
and opening a GPU can take seconds): the visibility variables cover that case.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from pinctl.kernel.files import KernelFiles


def _numbered(names: Iterable[str], prefix: str) -> list[str]:
    return [n for n in names if n.startswith(prefix) and n[len(prefix) :].isdigit()]


def gpu_device_files(files: KernelFiles) -> frozenset[str] | None:
    """Names (``nvidia2``, ``renderD128``) of the GPU device files present and openable read-write.

    None when the root has no /dev at all (a gathered tree that did not save one): then
    nothing is known, which is not the same as "no device files".
    """
    if not files.exists("/dev"):
        return None
    out = set()
    for folder, prefix in (("/dev", "nvidia"), ("/dev/dri", "renderD")):
        for name in _numbered(files.listdir(folder), prefix):
            if os.access(files.path(f"{folder}/{name}"), os.R_OK | os.W_OK):
                out.add(name)
    return frozenset(out)
