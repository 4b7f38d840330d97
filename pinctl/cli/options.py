"""Option bundles shared by several commands, as decorators (one definition, same help)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def source_options[F: Callable[..., Any]](f: F) -> F:
    """Where the topology comes from: a file, a gathered tree, or (default) this machine."""
    f = click.option(
        "--root",
        metavar="DIR",
        default=None,
        help="A gathered /sys and /proc tree (hwloc-gather-topology layout) instead of this machine.",
    )(f)
    f = click.option(
        "--topology",
        metavar="PATH",
        default=None,
        help="An hwloc XML (lstopo --of xml, pinctl snapshot) or NCCL topology XML instead of this machine.",
    )(f)
    return f
