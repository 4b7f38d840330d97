"""``pinctl launch``: the click command, for ``--help`` and the forms the click-free parser leaves to click.

The options are pinctl/cli/argtable.py's LAUNCH table, and the command runs
:func:`pinctl.cli.fast.launch` with the values click read: the same code the fast path
runs, so every form of launch means the same thing (pinctl/cli/main.py tries that
path first, without click).
"""

from __future__ import annotations

from typing import Any

import click

from pinctl.cli import fast
from pinctl.cli.argtable import LAUNCH
from pinctl.cli.options import click_options, given_options


@click.command(context_settings={"allow_interspersed_args": False})
@click_options(LAUNCH)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def launch(ctx: click.Context, /, command: tuple[str, ...], **params: Any) -> int:
    """Bind CPUs and memory for one rank (or start one bound child per rank), then run COMMAND.

    \b
    pinctl launch --plan plan.json -- python train.py     (rank from LOCAL_RANK, SLURM_LOCALID, ...)
    pinctl launch -C 0-13 -m 0 -- ./bench                 (numactl style, no plan)
    pinctl launch --nproc-per-node all -- python train.py (torchrun style)
    """
    return fast.launch(params, given_options(ctx), command)
