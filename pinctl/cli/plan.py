"""``pinctl plan``: discover the node, plan every local rank, print or save the plan."""

from __future__ import annotations

import sys
from importlib.resources import files
from typing import Any

import click

from pinctl import api
from pinctl.act.files import write_file, write_tree
from pinctl.cli.options import planning_keywords, planning_options
from pinctl.cli.output import warn
from pinctl.discovery.merge import LOST_GPU
from pinctl.errors import UsageError
from pinctl.model import Node
from pinctl.render import export, housekeeping
from pinctl.render.plan import plan_table
from pinctl.render.table import draw, plain

FORMATS = ("table", "json", "env", "numactl", "slurm", "systemd", "irqbalance")


def _discover(topology: str | None, root: str | None) -> Node:
    """The node to plan for (a seam the tests replace)."""
    return api.discover(topology=topology, root=root, nvml=True)


def schema_text() -> str:
    return files("pinctl").joinpath("schemas/plan-v2.json").read_text(encoding="utf-8")


@click.command()
@planning_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="Output form (default: table on a terminal, json otherwise).",
)
@click.option("--json", "as_json", is_flag=True, help="Short for --format json.")
@click.option(
    "-o",
    "--output",
    default=None,
    type=click.Path(),
    metavar="FILE|DIR",
    help="Write to FILE, not stdout (--format systemd: the drop-ins under DIR, laid out as /etc/systemd).",
)
@click.option("--schema", is_flag=True, help="Print the plan JSON Schema (pinctl.plan/v2) and exit.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def plan(
    topology: str | None,
    root: str | None,
    fmt: str | None,
    as_json: bool,
    output: str | None,
    schema: bool,
    command: tuple[str, ...],
    **params: Any,
) -> int:
    """Plan CPU, memory, NIC and storage affinity for every local rank.

    COMMAND (after --) fills the command of --format numactl and --format slurm.
    """
    if schema:
        _write(schema_text(), output)
        return 0
    if as_json:
        if fmt not in (None, "json"):
            raise UsageError(f"--json and --format {fmt} ask for two outputs: give one")
        fmt = "json"
    if fmt is None:
        fmt = "table" if output is None and sys.stdout.isatty() else "json"
    if command and fmt not in ("numactl", "slurm"):
        raise UsageError("a COMMAND is only used with --format numactl or slurm")

    node = _discover(topology, root)
    for n in node.notes:
        if n.startswith(LOST_GPU):  # the plan leaves a lost GPU out: say which and why
            warn(n)
    result = api.make_plan(node, **planning_keywords(params))
    if fmt == "table":
        items = plan_table(result)
        if output is None:
            draw(items)
        else:
            _write(plain(items), output)
    elif fmt == "numactl":
        _write(export.plan_to_numactl(result, command), output)
    elif fmt == "slurm":
        _write(export.plan_to_slurm(result, command=command), output)
    elif fmt == "systemd":
        if output is None:
            _write(housekeeping.plan_to_systemd(result), None)
        else:
            write_tree(output, housekeeping.systemd_files(result))
    elif fmt == "irqbalance":
        _write(housekeeping.plan_to_irqbalance(result), output)
    else:
        _write({"json": export.plan_to_json, "env": export.plan_to_env}[fmt](result), output)
    for w in result.warnings:
        warn(w)
    return 0


def _write(text: str, output: str | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    write_file(output, text)
