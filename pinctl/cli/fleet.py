"""``pinctl fleet PATH...``: read every node's ``doctor --json`` and name the nodes unlike their peers.

Exit status: 0 no node is odd, 1 some are, 2 no report could be read (a report that cannot
be read is named on stderr and skipped; it never stops the rest).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable

import click

from pinctl.cli.output import error, out, warn
from pinctl.errors import UsageError
from pinctl.fleet.compare import Tally, Verdict
from pinctl.fleet.lost import SCHEMAS as LOST_SCHEMAS
from pinctl.fleet.read import Report, load_reference, read_paths
from pinctl.fleet.shape import Checks, Shape, facts, problems
from pinctl.render.fleet import draw
from pinctl.words import count


def tally(reports: Iterable[Report], reference: tuple[str, Shape, Checks] | None = None) -> Tally:
    """Count a stream of reports, naming the unreadable ones as they come."""
    t = Tally(reference)
    for report in reports:
        if report.data is None:
            warn(f"skipped {report.source}: {report.error}")
            t.skip(report.source, report.error or "unreadable")
            continue
        host = str(report.data.get("hostname") or report.source)
        if report.data.get("schema") in LOST_SCHEMAS:
            t.lost.add(host, report.data)
        else:
            t.add(host, facts(report.data), problems(report.data))
    return t


@click.command()
@click.argument("paths", nargs=-1, metavar="[PATH]...")
@click.option("--expect", metavar="REPORT", help="Compare every node with this node's report, not the majority.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def fleet(paths: tuple[str, ...], expect: str | None, as_json: bool) -> int:
    """Find the nodes that differ from their peers, from `pinctl doctor --json` reports.

    `pinctl watch --json` and `pinctl noise --json` reports name the node that loses the most
    time (its ranks' CPUs taken by other threads, or its CPUs' lost time under the probe).

    PATH is a report file, a folder of them, or - for standard input (what
    `srun pinctl doctor --json` prints, reports one after another); no PATH reads standard input.

    Exit status: 0 no node is odd, 1 some are (or lose time standing out), 2 nothing could be read.
    """
    if not paths and sys.stdin.isatty():
        raise UsageError("no PATH given and standard input is a terminal: pipe reports in, or name files or folders")
    reference = load_reference(expect) if expect is not None else None
    verdict: Verdict = tally(read_paths(paths or ("-",), sys.stdin), reference).verdict()
    if as_json:
        out([json.dumps(verdict.to_dict(), indent=2)])
    elif verdict.nodes or verdict.lost:
        draw(verdict)
    # each skipped report was named as it was read; an empty table says nothing more
    if verdict.nodes == 0 and verdict.lost is None:
        why = f"{count(len(verdict.skipped), 'source')} skipped" if verdict.skipped else "the input held none"
        return error(f"no report could be read ({why})", 2)
    return 1 if verdict.outliers or (verdict.lost and verdict.lost.standing_out) else 0
