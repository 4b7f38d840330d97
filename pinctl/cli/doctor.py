"""``pinctl doctor``: run the node health checks, print them, exit 0/1/2 for schedulers.

Exit codes follow health-check conventions (Slurm HealthCheckProgram scripts,
node-problem-detector plugins): 0 healthy, 1 warnings, 2 failures; ``--strict``
turns warnings into 2. A failed discovery is a finding, not an error, so the
file-based kernel checks still run on a node whose topology cannot be read.
"""

from __future__ import annotations

import json
import os

import click
from click.core import ParameterSource

from pinctl import api
from pinctl.cli.options import source_options
from pinctl.cli.output import out
from pinctl.cpuset import parse_list
from pinctl.discovery.nvml import NvmlUnavailable, query_health
from pinctl.doctor import CHECKS, DoctorContext, exit_code, run_checks, select
from pinctl.doctor.finding import Finding
from pinctl.doctor.inventory import inventory
from pinctl.doctor.report import to_json_value
from pinctl.errors import PinctlError, UsageError
from pinctl.fleet.compare import shape_differences, shown
from pinctl.fleet.read import load_reference
from pinctl.fleet.shape import facts
from pinctl.kernel.files import KernelFiles
from pinctl.model import Node
from pinctl.planfile.allowlist import allowed_names
from pinctl.render.doctor import draw
from pinctl.render.prometheus import textfile


def _discover(topology: str | None, root: str | None, debug: bool) -> tuple[Node | None, str | None]:
    try:
        # a topology file names its machine; --root then only feeds the file-based checks
        node = api.discover(topology=topology, root=None if topology else root, nvml=root is None and not topology)
        return node, None
    except PinctlError as exc:
        return None, str(exc)
    except Exception as exc:  # a health check must still report the rest; --debug shows the traceback
        if debug:
            raise
        return None, f"discovery crashed: {type(exc).__name__}: {exc}"


def build_context(
    *,
    root: str | None,
    topology: str | None,
    nvml: bool,
    reserve: str | None,
    plan: str | None,
    need_node: bool,
    debug: bool = False,
    allow_env: tuple[str, ...] = (),
) -> DoctorContext:
    """Gather what the selected checks need (skipping discovery or NVML when none need it)."""
    node, error = _discover(topology, root, debug) if need_node else (None, "not needed by the selected checks")
    health = None
    note = "NVML not queried"
    nvml_error = None
    offline = topology is not None and root is None
    if root is not None or offline:
        note = f"live node only: NVML ({'--root' if root is not None else '--topology'} given)"
    elif not nvml:
        note = "--no-nvml given"
    else:
        result = query_health()
        if isinstance(result, NvmlUnavailable):
            note = result.reason  # "NVML not available: ...", the one wording of every NVML query
            nvml_error = result.code
        else:
            health = result
    housekeeping = parse_list(reserve, what="--reserve CPU list") if reserve is not None else None
    loaded = api.load_plan(plan, allowed_names(allow_env)) if plan is not None else None
    if housekeeping is None and loaded is not None and loaded.cpu_classes is not None:
        housekeeping = loaded.cpu_classes.housekeeping or None  # the plan's own, unless --reserve says

    job_cpus = frozenset().union(*(r.cpus for r in loaded.ranks)) if loaded is not None else None
    return DoctorContext(
        files=KernelFiles(root or "/"),
        node=node,
        health=health,
        nvml_note=note,
        nvml_error=nvml_error,
        discovery_error=error,
        housekeeping=housekeeping,
        job_cpus=job_cpus,
        plan=loaded,
        offline=offline,
    )


@click.command()
@source_options
@click.option("--json", "as_json", is_flag=True, help="Print findings, summary and the node's inventory as JSON.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "prometheus"]),
    default="table",
    help="table (default), json (= --json), or prometheus (node_exporter textfile collector).",
)
@click.option("--expect", metavar="REPORT", help="Fail unless this node has the shape of this doctor --json report.")
@click.option("--only", metavar="IDS", help="Run only these checks (ids or areas: rdma,kernel.thp-defrag).")
@click.option("--skip", metavar="IDS", help="Skip these checks (ids or areas).")
@click.option("--strict", is_flag=True, help="Exit 2 on warnings too.")
@click.option(
    "--reserve",
    metavar="CPUS",
    help="Housekeeping CPUs the plan reserves (compared with isolcpus; default: the --plan file's).",
)
@click.option("--plan", "plan", metavar="FILE", help="A plan file: its CPUs are the job CPUs.")
@click.option(
    "--allow-env",
    "allow_env",
    metavar="NAME",
    multiple=True,
    help="Accept this variable in the plan file's environment beyond pinctl's list; repeatable.",
)
@click.option("--no-nvml", is_flag=True, help="Do not query NVML (GPU health checks are skipped).")
@click.option("--list", "list_checks", is_flag=True, help="List check ids and exit.")
@click.option("-v", "--verbose", is_flag=True, help="Show evidence for every finding, not only problems.")
@click.pass_context
def doctor(
    ctx: click.Context,
    root: str | None,
    topology: str | None,
    as_json: bool,
    fmt: str,
    expect: str | None,
    only: str | None,
    skip: str | None,
    strict: bool,
    reserve: str | None,
    plan: str | None,
    allow_env: tuple[str, ...],
    no_nvml: bool,
    list_checks: bool,
    verbose: bool,
) -> int:
    """Find topology problems that silently slow this GPU node down.

    Exit status: 0 all ok or skipped, 1 warnings (2 with --strict), 2 failures
    (a shape unlike the --expect reference is a failure).
    """
    if list_checks:
        out([f"{c.id:<24} {c.title}" for c in CHECKS])
        return 0
    if as_json and fmt != "json" and ctx.get_parameter_source("fmt") is not ParameterSource.DEFAULT:
        raise UsageError(f"--json and --format {fmt} ask for two outputs: give one")
    reference = load_reference(expect) if expect is not None else None
    checks = select(only, skip)
    if root is not None and not os.path.isdir(root):
        raise UsageError(f"--root {root!r} is not a directory")
    if root is not None and not KernelFiles(root).holds_a_tree():
        raise UsageError(f"--root {root!r} holds no sys/ or proc/: not a gathered /sys and /proc tree")
    need_node = any(c.needs_node for c in checks) or expect is not None  # a shape needs the topology
    need_nvml = any(c.area in ("gpu", "procs", "pcie") for c in checks)  # pcie: NVML knows links sysfs lacks
    debug = bool((ctx.find_root().obj or {}).get("debug"))
    context = build_context(
        root=root,
        topology=topology,
        nvml=need_nvml and not no_nvml,
        reserve=reserve,
        plan=plan,
        need_node=need_node,
        debug=debug,
        allow_env=allow_env,
    )
    findings = run_checks(context, checks, debug=debug)
    node_inventory = inventory(context, from_topology=topology is not None and root is None)
    if reference is not None:
        shape = facts(to_json_value(findings, inventory=node_inventory))
        ref_shape = reference[1]
        if context.offline:  # a topology file holds no kernel settings: compare the hardware only
            ref_shape = tuple(fact for fact in ref_shape if not fact[0].startswith("kernel."))
        findings.extend(expected_shape(shape, ref_shape, reference[0]))
    report = to_json_value(findings, strict=strict, inventory=node_inventory)
    if as_json or fmt == "json":
        out([json.dumps(report, indent=2, sort_keys=True)])
    elif fmt == "prometheus":
        out([textfile(report).rstrip("\n")])
    else:
        draw(findings, verbose=verbose)
    return exit_code(findings, strict=strict)


EXPECTED_SHAPE = "fleet.expected-shape"


def expected_shape(
    shape: tuple[tuple[str, str, str, str], ...], ref: tuple[tuple[str, str, str, str], ...], name: str
) -> list[Finding]:
    """``--expect``: one failed finding per way this node differs from the reference node, else one ok."""
    diffs = shape_differences(shape, ref, name)
    if not diffs:
        return [Finding(EXPECTED_SHAPE, "ok", "node", f"same shape as {name}")]
    remedy = (
        "drain the node and look at what changed (a GPU off the bus, a link or HCA trained low, "
        "a BIOS NUMA setting); docs/fleet.md"
    )
    return [
        Finding(
            EXPECTED_SHAPE,
            "fail",
            d.key,
            d.text,
            (f"this node: {shown(d.node, d.key)}", f"{name}: {shown(d.reference, d.key)}"),
            remedy,
        )
        for d in diffs
    ]
