"""Where launch, pin and check get their plan: a plan file (validated) or one computed now.

Both roads end in the same validated :class:`pinctl.planfile.PlanFile`: a computed
plan is exported to its JSON dict and checked by the same validator as a file, so
the acting commands never see two shapes of plan.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from pinctl.cli.options import source_options
from pinctl.cpuset import parse_list
from pinctl.errors import PinctlError, PlanError, UsageError
from pinctl.plan.validate import PlanFile, check_live_node, load_plan_file, refuse_foreign, validate_plan

if TYPE_CHECKING:
    from pinctl.model import Node
    from pinctl.plan.make import PlanRequest

PLAN_OPTION_NAMES = (
    "topology",
    "root",
    "gpus",
    "procs_per_gpu",
    "ranks",
    "reserve",
    "reserve_per_numa",
    "smt",
    "mem_policy",
    "nic_link_layer",
    "nics_per_gpu",
    "isolate_gpus",
)


def planning_options[F: Callable[..., Any]](f: F) -> F:
    """The options that shape a plan, shared by plan, launch, pin and check (same names, same meaning)."""
    opts = [
        click.option("--gpus", default=None, metavar="LIST|all",
                     help="GPUs to plan for: indexes (0-3,6) or PCI bus ids."),
        click.option("--procs-per-gpu", type=click.IntRange(1, 64), default=1, show_default=True, metavar="N",
                     help="Ranks per GPU (they split the GPU's share of cores)."),
        click.option("--ranks", type=click.IntRange(1, 4096), default=None, metavar="N",
                     help="CPU-only ranks (a node without GPUs, or ignoring them)."),
        click.option("--reserve", default=None, metavar="CPULIST", help="CPUs kept out of every rank (housekeeping)."),
        click.option("--reserve-per-numa", type=click.IntRange(0, 1024), default=0, show_default=True, metavar="N",
                     help="Reserve the first N whole cores of each NUMA node."),
        click.option("--smt", type=click.Choice(["all", "one-per-core"]), default="all", show_default=True,
                     help="Give ranks every hardware thread of a core, or only its lowest-numbered one."),
        click.option("--mem-policy", type=click.Choice(["bind", "preferred", "interleave", "local", "none"]),
                     default="bind", show_default=True, help="Memory policy per rank (nodes local to its CPUs)."),
        click.option("--nic-link-layer", type=click.Choice(["ib", "eth", "any"]), default="ib", show_default=True,
                     help="RDMA NICs to use: InfiniBand (and EFA/Slingshot), RoCE, or any."),
        click.option("--nics-per-gpu", type=click.IntRange(0, 64), default=1, show_default=True, metavar="K",
                     help="Distinct NICs per GPU (multi-rail); 0 plans no NICs (and sets no NCCL/UCX variables)."),
        click.option("--isolate-gpus", is_flag=True, help="Set CUDA_VISIBLE_DEVICES to each rank's GPU."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return source_options(f)


def plan_options[F: Callable[..., Any]](f: F) -> F:
    """--plan FILE, or the options of ``pinctl plan`` to compute one."""
    f = planning_options(f)
    return click.option(
        "--plan", "plan_file", metavar="FILE", default=None, help="A plan file (pinctl plan --json)."
    )(f)


def build_request(node: Node, params: dict[str, Any]) -> PlanRequest:
    """The PlanRequest for the typed options; CUDA_VISIBLE_DEVICES counts only for this machine."""
    from pinctl.plan.make import PlanRequest, parse_visible_devices, select_gpus

    gpus = params.get("gpus")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    # A topology file or gathered tree is not what CUDA_VISIBLE_DEVICES indexes.
    live = not (params.get("topology") or params.get("root"))
    return PlanRequest(
        gpus=select_gpus(node, gpus) if gpus is not None else None,
        procs_per_gpu=params.get("procs_per_gpu", 1),
        ranks=params.get("ranks"),
        reserve=parse_list(params.get("reserve") or "", what="--reserve CPU list"),
        reserve_per_numa=params.get("reserve_per_numa", 0),
        smt=params.get("smt", "all"),
        mem_policy=params.get("mem_policy", "bind"),
        nic_link_layer=params.get("nic_link_layer", "ib"),
        nics_per_gpu=params.get("nics_per_gpu", 1),
        isolate_gpus=bool(params.get("isolate_gpus")),
        visible_devices=parse_visible_devices(visible) if visible is not None and live else None,
    )


def plan_options_given(ctx: click.Context, *, include_plan_file: bool = True) -> bool:
    """Whether any plan-shaping option was typed (then a plan is computed even with numactl overrides)."""
    names = (*PLAN_OPTION_NAMES, "plan_file") if include_plan_file else PLAN_OPTION_NAMES
    return any(ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT) for name in names)


def obtain_plan(params: dict[str, Any], *, force: bool, warn: Callable[[str], None]) -> PlanFile:
    """The plan file validated and checked against this node, or a plan computed from discovery."""
    plan_file = params.get("plan_file")
    ctx = click.get_current_context(silent=True)
    if plan_file and ctx is not None and plan_options_given(ctx, include_plan_file=False):
        raise UsageError("--plan FILE already holds the plan: drop the planning options (--gpus, --ranks, ...)")
    if plan_file:
        plan = load_plan_file(plan_file)
        problems = check_live_node(plan, None)
        problems += _fingerprint_problems(plan, warn)
        refuse_foreign(problems, force=force)
        for p in problems:
            warn(f"{p} (--force)")
        return plan
    return compute_plan(params)


def _discover(topology: str | None, root: str | None) -> Any:
    from pinctl.discover.entry import discover

    return discover(topology=topology, root=root)


def _fingerprint_problems(plan: PlanFile, warn: Callable[[str], None]) -> list[str]:
    """The full check the fast path skips: the live node's fingerprint against the plan's."""
    from pinctl.plan.make import fingerprint

    try:
        live = fingerprint(_discover(None, None))
    except PinctlError as exc:
        warn(f"cannot compute this node's fingerprint ({exc}); checked hostname, CPUs and nodes only")
        return []
    if live != plan.fingerprint:
        return [f"plan fingerprint {plan.fingerprint} is not this node's ({live})"]
    return []


def compute_plan(params: dict[str, Any]) -> PlanFile:
    """Discover the node and plan, then validate the exported dict exactly like a plan file."""
    from pinctl.plan.export import plan_to_dict
    from pinctl.plan.make import make_plan

    node = _discover(params.get("topology"), params.get("root"))
    plan = make_plan(node, build_request(node, params))
    # Round-trip through JSON so a computed plan meets exactly the checks a plan file does.
    try:
        obj = json.loads(json.dumps(plan_to_dict(plan)))
    except (TypeError, ValueError) as exc:
        raise PlanError(f"the planner produced a plan that is not JSON: {exc}") from None
    try:
        return validate_plan(obj)
    except PlanError as exc:
        raise PlanError(f"computed plan: {exc}") from None


def gpu_cpus(plan: PlanFile, gpu: int) -> tuple[frozenset[int], frozenset[int]]:
    """CPUs and memory nodes of every rank on one GPU (several with --procs-per-gpu)."""
    ranks = plan.ranks_for_gpu(gpu)
    if not ranks:
        have = sorted({r.gpu_index for r in plan.ranks if r.gpu_index is not None})
        raise UsageError(f"the plan has no rank on GPU {gpu} (GPUs in the plan: {have or 'none'})")
    cpus = frozenset().union(*(r.cpus for r in ranks))
    mems = frozenset().union(*(r.mems for r in ranks))
    return cpus, mems
