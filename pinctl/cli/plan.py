"""``pinctl plan``: discover the node, plan every local rank, print or save the plan."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from pinctl.cli.options import source_options
from pinctl.errors import UsageError

FORMATS = ("table", "json", "env", "numactl", "slurm")


def _discover(topology: str | None, root: str | None) -> Any:
    """The node to plan for (a seam the tests replace)."""
    from pinctl.discover.node import discover

    return discover(topology=topology, root=root, nvml=True)


def schema_text() -> str:
    from importlib.resources import files

    return files("pinctl").joinpath("schemas/plan-v1.json").read_text(encoding="utf-8")


@click.command()
@source_options
@click.option("--gpus", default=None, metavar="LIST|all", help="GPUs to plan for: indexes (0-3,6) or PCI bus ids.")
@click.option("--procs-per-gpu", type=int, default=1, show_default=True, help="Ranks per GPU.")
@click.option("--ranks", type=int, default=None, help="CPU-only ranks (a node without GPUs, or ignoring them).")
@click.option("--reserve", default=None, metavar="CPULIST", help="CPUs kept out of every rank (housekeeping).")
@click.option(
    "--reserve-per-numa",
    type=int,
    default=0,
    show_default=True,
    metavar="N",
    help="Reserve the first N whole cores of each NUMA node.",
)
@click.option(
    "--smt",
    type=click.Choice(["all", "one-per-core"]),
    default="all",
    show_default=True,
    help="Give ranks every hardware thread of a core, or only its lowest-numbered one.",
)
@click.option(
    "--mem-policy",
    type=click.Choice(["bind", "preferred", "interleave", "local", "none"]),
    default="bind",
    show_default=True,
    help="Memory policy per rank (nodes local to its CPUs).",
)
@click.option(
    "--nic-link-layer",
    type=click.Choice(["ib", "eth", "any"]),
    default="ib",
    show_default=True,
    help="RDMA NICs to use: InfiniBand (and EFA/Slingshot), RoCE, or any.",
)
@click.option("--nics-per-gpu", type=int, default=1, show_default=True, help="Distinct NICs per GPU (multi-rail).")
@click.option("--isolate-gpus", is_flag=True, help="Set CUDA_VISIBLE_DEVICES to each rank's GPU.")
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

    from pinctl.cpuset import parse_list
    from pinctl.plan import PlanRequest, make_plan, parse_visible_devices, select_gpus

    reserved = parse_list(reserve or "", what="--reserve CPU list")
    node = _discover(topology, root)
    visible = None
    live = topology is None and root is None
    if live and "CUDA_VISIBLE_DEVICES" in os.environ:
        visible = parse_visible_devices(os.environ["CUDA_VISIBLE_DEVICES"])
    request = PlanRequest(
        gpus=select_gpus(node, gpus) if gpus is not None else None,
        procs_per_gpu=procs_per_gpu,
        ranks=ranks,
        reserve=reserved,
        reserve_per_numa=reserve_per_numa,
        smt=smt,  # type: ignore[arg-type]
        mem_policy=mem_policy,
        nic_link_layer=nic_link_layer,  # type: ignore[arg-type]
        nics_per_gpu=nics_per_gpu,
        isolate_gpus=isolate_gpus,
        visible_devices=visible,
    )
    result = make_plan(node, request)
    if fmt == "table":
        _table(result, output)
    else:
        from pinctl import export

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
    from pinctl.planview import plan_table
    from pinctl.render import draw, plain

    items = plan_table(result)
    if output is None:
        draw(items)
    else:
        _write(plain(items), output)
    for w in result.warnings:
        click.echo(f"pinctl: warning: {w}", err=True)
