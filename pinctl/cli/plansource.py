"""Where launch, pin and check get their plan: a plan file (validated) or one computed now.

Both roads end in the same validated :class:`pinctl.planfile.PlanFile`: a computed
plan is exported to its JSON dict and checked by the same validator as a file, so
the acting commands never see two shapes of plan.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import click

from pinctl.cli.options import source_options
from pinctl.cpuset import parse_list
from pinctl.errors import PinctlError, PlanError, UsageError
from pinctl.planfile import PlanFile, check_live_node, load_plan_file, refuse_foreign, validate_plan

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


def plan_options[F: Callable[..., Any]](f: F) -> F:
    """--plan FILE, or the options of ``pinctl plan`` to compute one (same names, same meaning)."""
    opts = [
        click.option("--plan", "plan_file", metavar="FILE", default=None, help="A plan file (pinctl plan --json)."),
        click.option("--gpus", default=None, metavar="LIST|all", help="GPUs to plan for (default all)."),
        click.option("--procs-per-gpu", type=click.IntRange(1, 64), default=1, show_default=True),
        click.option("--ranks", type=click.IntRange(1, 4096), default=None, help="Ranks on a node without GPUs."),
        click.option("--reserve", default=None, metavar="LIST", help="CPUs to keep out of every rank."),
        click.option("--reserve-per-numa", type=click.IntRange(0, 1024), default=0, show_default=True),
        click.option("--smt", type=click.Choice(["all", "one-per-core"]), default="all", show_default=True),
        click.option(
            "--mem-policy",
            type=click.Choice(["bind", "preferred", "interleave", "local", "none"]),
            default="bind",
            show_default=True,
        ),
        click.option("--nic-link-layer", type=click.Choice(["ib", "eth", "any"]), default="ib", show_default=True),
        click.option("--nics-per-gpu", type=click.IntRange(0, 64), default=1, show_default=True),
        click.option("--isolate-gpus", is_flag=True, help="Set CUDA_VISIBLE_DEVICES to each rank's GPU."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return source_options(f)


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
    from pinctl.discover.node import discover

    return discover(topology=topology, root=root)


def _fingerprint_problems(plan: PlanFile, warn: Callable[[str], None]) -> list[str]:
    """The full check the fast path skips: the live node's fingerprint against the plan's."""
    try:
        from pinctl.plan import fingerprint

        live = fingerprint(_discover(None, None))
    except (ImportError, PinctlError) as exc:
        warn(f"cannot compute this node's fingerprint ({exc}); checked hostname, CPUs and nodes only")
        return []
    if live != plan.fingerprint:
        return [f"plan fingerprint {plan.fingerprint} is not this node's ({live})"]
    return []


def compute_plan(params: dict[str, Any]) -> PlanFile:
    """Discover the node and plan with H4's planner, then validate the exported dict like a file."""
    try:
        from pinctl.plan import PlanRequest, make_plan, parse_visible_devices, select_gpus
    except ImportError as exc:
        raise PlanError(f"the planner is not available ({exc}); give --plan FILE") from None
    plan_to_dict = _exporter()
    node = _discover(params.get("topology"), params.get("root"))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    request = PlanRequest(
        gpus=select_gpus(node, params.get("gpus") or "all"),
        procs_per_gpu=params.get("procs_per_gpu", 1),
        ranks=params.get("ranks"),
        reserve=parse_list(params.get("reserve") or "", what="--reserve CPU list"),
        reserve_per_numa=params.get("reserve_per_numa", 0),
        smt=params.get("smt", "all"),
        mem_policy=params.get("mem_policy", "bind"),
        nic_link_layer=params.get("nic_link_layer", "ib"),
        nics_per_gpu=params.get("nics_per_gpu", 1),
        isolate_gpus=bool(params.get("isolate_gpus")),
        # Only for this machine: a topology file or gathered tree is not what CUDA_VISIBLE_DEVICES indexes.
        visible_devices=parse_visible_devices(visible)
        if visible is not None and not (params.get("topology") or params.get("root"))
        else None,
    )
    plan = make_plan(node, request)
    # Round-trip through JSON so a computed plan meets exactly the checks a plan file does.
    try:
        obj = json.loads(json.dumps(plan_to_dict(plan)))
    except (TypeError, ValueError) as exc:
        raise PlanError(f"the planner produced a plan that is not JSON: {exc}") from None
    try:
        return validate_plan(obj)
    except PlanError as exc:
        raise PlanError(f"computed plan: {exc}") from None


def _exporter() -> Callable[[Any], dict[str, Any]]:
    """plan_to_dict from pinctl.export (the contract's home for it), else from pinctl.plan."""
    import importlib

    for module in ("pinctl.export", "pinctl.plan"):
        try:
            fn = getattr(importlib.import_module(module), "plan_to_dict", None)
        except ImportError:
            continue
        if fn is not None:
            return fn  # type: ignore[no-any-return]
    raise PlanError("the plan exporter (plan_to_dict) is not available; give --plan FILE")


def gpu_cpus(plan: PlanFile, gpu: int) -> tuple[frozenset[int], frozenset[int]]:
    """CPUs and memory nodes of every rank on one GPU (several with --procs-per-gpu)."""
    ranks = plan.ranks_for_gpu(gpu)
    if not ranks:
        have = sorted({r.gpu_index for r in plan.ranks if r.gpu_index is not None})
        raise UsageError(f"the plan has no rank on GPU {gpu} (GPUs in the plan: {have or 'none'})")
    cpus = frozenset().union(*(r.cpus for r in ranks))
    mems = frozenset().union(*(r.mems for r in ranks))
    return cpus, mems
