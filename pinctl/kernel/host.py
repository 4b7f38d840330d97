"""Who a node is: its hostname, read from the tree being judged, never from the machine pinctl runs on.

``doctor --root`` reads a tree gathered on another node, so the name must come from that
tree: /proc/sys/kernel/hostname (what ``uname -n`` says, proc(5)), else /etc/hostname
(hostname(5), what the node is configured to be called).
"""

from __future__ import annotations

from pinctl.kernel.files import KernelFiles

KERNEL_HOSTNAME = "/proc/sys/kernel/hostname"
ETC_HOSTNAME = "/etc/hostname"


def hostname(files: KernelFiles) -> str | None:
    """The node's name, or None when neither file is there (a tree gathered without them)."""
    for path in (KERNEL_HOSTNAME, ETC_HOSTNAME):
        text = files.read(path)
        if text:
            name = text.splitlines()[0].strip()
            if name:
                return name
    return None
