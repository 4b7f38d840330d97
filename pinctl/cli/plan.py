"""``pinctl plan``: discover the node, plan every local rank, print or save the plan."""

from __future__ import annotations

import sys
from typing import Any

import click

from pinctl.cli.plansource import build_request, planning_options
from pinctl.errors import UsageError

FORMATS = ("table", "json", "env", "numactl", "slurm")


def _discover(topology: str | None, root: str | None) -> Any:
    """The node to plan for (a seam the tests replace)."""
    from pinctl.discover.entry import discover

    return discover(topology=topology, root=root, nvml=True)


def schema_text() -> str:
    from importlib.resources import files

    return files("pinctl").joinpath("schemas/plan-v1.json").read_text(encoding="utf-8")


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
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False), help="Write to FILE, not stdout.")
@click.option("--schema", is_flag=True, help="Print the plan JSON Schema (pinctl.plan/v1) and exit.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def plan(
    topology: str | None,
    root: str | None,
    gpus: str | None,
    procs_per_gpu: int,
    ranks: int | None,
    reserve: str | None,
    reserve_per_numa: int,
    smt: str,
    mem_policy: str,
    nic_link_layer: str,
    nics_per_gpu: int,
    isolate_gpus: bool,
    fmt: str | None,
    as_json: bool,
    output: str | None,
    schema: bool,
    command: tuple[str, ...],
) -> int:
    """Plan CPU, memory, NIC and storage affinity for every local rank.

    COMMAND (after --) fills the numactl lines of --format numactl.
    """
    if schema:
        _write(schema_text(), output)
        return 0
    if as_json:
        if fmt not in (None, "json"):
            raise UsageError(f"--json conflicts with --format {fmt}")
        fmt = "json"
    if fmt is None:
        fmt = "table" if output is None and sys.stdout.isatty() else "json"
    if command and fmt != "numactl":
        raise UsageError("a COMMAND is only used with --format numactl")

    from pinctl.plan.make import make_plan

    node = _discover(topology, root)
    request = build_request(node, {
        "topology": topology, "root": root, "gpus": gpus, "procs_per_gpu": procs_per_gpu, "ranks": ranks,
        "reserve": reserve, "reserve_per_numa": reserve_per_numa, "smt": smt, "mem_policy": mem_policy,
        "nic_link_layer": nic_link_layer, "nics_per_gpu": nics_per_gpu, "isolate_gpus": isolate_gpus,
    })
    result = make_plan(node, request)
    if fmt == "table":
        _table(result, output)
    else:
        from pinctl.plan import export

        if fmt == "numactl":
            text = export.plan_to_numactl(result, command)
        else:
            text = {"json": export.plan_to_json, "env": export.plan_to_env, "slurm": export.plan_to_slurm}[fmt](result)
        _write(text, output)
        for w in result.warnings:
            click.echo(f"pinctl: warning: {w}", err=True)
    return 0


def _write(text: str, output: str | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    try:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise UsageError(f"cannot write {output!r}: {exc.strerror}") from None


def _table(result: Any, output: str | None) -> None:
    from pinctl.render.plan import plan_table
    from pinctl.render.table import draw, plain

    items = plan_table(result)
    if output is None:
        draw(items)
    else:
        _write(plain(items), output)
    for w in result.warnings:
        click.echo(f"pinctl: warning: {w}", err=True)
