"""``pinctl show`` and ``pinctl snapshot``: discover the node and print or save it."""

from __future__ import annotations

import json
import sys

import click

from pinctl import api
from pinctl.act.files import write_file
from pinctl.cli.options import source_options
from pinctl.cli.output import note, say
from pinctl.discovery.engine import live_xml
from pinctl.discovery.nvml import query_nvml
from pinctl.nodejson import node_to_dict
from pinctl.render.show import show_items
from pinctl.render.table import draw


@click.command()
@source_options
@click.option("--json", "as_json", is_flag=True, help="Print the model as JSON (schema pinctl.node/v1).")
@click.option("--no-nvml", is_flag=True, help="Do not query NVML (GPU names, UUIDs, NVLink).")
def show(topology: str | None, root: str | None, as_json: bool, no_nvml: bool) -> int:
    """Show the node: NUMA domains, cores, GPUs, NICs, storage and their distances."""
    node = api.discover(topology=topology, root=root, nvml=not no_nvml)
    if as_json:
        sys.stdout.write(json.dumps(node_to_dict(node), indent=2) + "\n")
        return 0
    draw(show_items(node))
    return 0


@click.command()
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="File to write ('-': standard output).",
)
def snapshot(output: str) -> int:
    """Write this machine's topology (I/O devices included) as hwloc XML."""
    text, crashed = live_xml()
    if output == "-":  # as lstopo and most tools read it (a file named '-' is ./-)
        sys.stdout.write(text)
    else:
        write_file(output, text)
        say(f"wrote {output}")
    if crashed:
        note(crashed)
    for line in lost_gpus():  # the XML has a lost GPU's PCI facts only: say which and why
        note(line)
    return 0


def lost_gpus() -> list[str]:
    """One line per GPU NVML cannot read (the snapshot's XML cannot say it); none without NVML."""
    result, _ = query_nvml()
    gpus = result.gpus if result is not None else ()
    return [h.line(f"NVML GPU {g.index}") for g in gpus if (h := g.lost) is not None]
