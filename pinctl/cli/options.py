"""Option bundles shared by several commands (one definition, same help), and where a command's plan comes from.

Click parameters stop here: the commands turn them into typed keywords for
:func:`pinctl.api.make_plan` (:func:`planning_keywords`), so no options dict
travels below the CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from pinctl import api
from pinctl.cli.output import warn
from pinctl.errors import UsageError
from pinctl.job.fit import refuse_foreign
from pinctl.planfile.allowlist import allowed_names
from pinctl.planfile.types import MEM_POLICIES, Plan

F = TypeVar("F", bound=Callable[..., Any])  # a click command function (no PEP 695: Python 3.10 runs this)

# The planning options of ``pinctl plan`` (click parameter names), shared by launch, pin and check.
PLAN_OPTION_NAMES = (
    "gpus", "procs_per_gpu", "ranks", "reserve", "reserve_per_numa", "smt", "mem_policy", "nic_link_layer",
    "nics_per_gpu", "local_rails", "isolate_gpus", "helpers",
)  # fmt: skip


def source_options(f: F) -> F:
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


def planning_options(f: F) -> F:
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
        click.option("--mem-policy", type=click.Choice(MEM_POLICIES), default="bind", show_default=True,
                     help="Memory policy per rank (nodes local to its CPUs)."),
        click.option("--nic-link-layer", type=click.Choice(["ib", "eth", "any"]), default="ib", show_default=True,
                     help="RDMA NICs to use: InfiniBand (and EFA/Slingshot), RoCE, or any."),
        click.option("--nics-per-gpu", type=click.IntRange(0, 64), default=1, show_default=True, metavar="K",
                     help="Distinct NICs per GPU (multi-rail); 0 plans no NICs (and sets no NCCL/UCX variables)."),
        click.option("--local-rails", is_flag=True,
                     help="Extra rails (--nics-per-gpu > 1) only on the GPU's side of the CPU interconnect."),
        click.option("--isolate-gpus", is_flag=True,
                     help="Show each rank only its GPU (CUDA_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES or "
                          "ZE_AFFINITY_MASK, by vendor)."),
        click.option("--helpers", is_flag=True,
                     help="Share the idle cores out as each rank's helper CPUs for data-loader workers, nearest "
                          "its GPU first (PINCTL_HELPER_CPUS; pinctl.bind_helper binds a worker there)."),
    ]  # fmt: skip
    for opt in reversed(opts):
        f = opt(f)
    return source_options(f)


def plan_options(f: F) -> F:
    """--plan FILE, or the options of ``pinctl plan`` to compute one."""
    f = planning_options(f)
    f = click.option(
        "--allow-env", "allow_env", metavar="NAME", multiple=True,
        help="Accept this variable in the plan file's environment beyond pinctl's list (docs/launch.md); repeatable.",
    )(f)
    return click.option(
        "--plan", "plan_file", metavar="FILE", default=None, help="A plan file (pinctl plan --json)."
    )(f)


def planning_keywords(params: dict[str, Any]) -> dict[str, Any]:
    """The typed keywords of :func:`pinctl.api.make_plan` from the planning options' values."""
    return {name: params[name] for name in PLAN_OPTION_NAMES}


def plan_options_given(ctx: click.Context, *, include_plan_file: bool = True) -> bool:
    """Whether any plan-shaping option was typed (then a plan is computed even with numactl overrides)."""
    names = (*PLAN_OPTION_NAMES, "topology", "root", *(("plan_file",) if include_plan_file else ()))
    return any(ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT) for name in names)


def obtain_plan(params: dict[str, Any], *, force: bool, note: Callable[[str], None] = warn) -> Plan:
    """The plan file, validated and checked against this node (fingerprint included), or a plan computed now."""
    plan_file = params.get("plan_file")
    ctx = click.get_current_context(silent=True)
    if plan_file and ctx is not None and plan_options_given(ctx, include_plan_file=False):
        raise UsageError("--plan FILE already holds the plan: drop the planning options (--gpus, --ranks, ...)")
    if params.get("allow_env") and not plan_file:
        raise UsageError("--allow-env names variables to accept from a plan file: give --plan FILE")
    if plan_file:
        plan = api.load_plan(plan_file, allowed_names(params.get("allow_env") or ()))
        problems, notes = api.fit(plan, fingerprint=True)
        for n in notes:
            note(n)
        refuse_foreign(problems, force=force)
        for p in problems:
            note(f"{p} (--force)")
        return plan
    node = api.discover(topology=params.get("topology"), root=params.get("root"))
    plan = api.make_plan(node, **planning_keywords(params))
    if node.source != "live":  # planned from another machine's description: does it fit this one?
        problems, _ = api.fit(plan)
        refuse_foreign(problems, force=force)
        for p in problems:
            note(f"{p} (--force)")
    return plan


def gpu_cpus(plan: Plan, gpu: int) -> tuple[frozenset[int], frozenset[int]]:
    """CPUs and memory nodes of every rank on one GPU (several with --procs-per-gpu)."""
    ranks = plan.ranks_for_gpu(gpu)
    if not ranks:
        have = sorted({r.gpu.index for r in plan.ranks if r.gpu is not None})
        raise UsageError(f"the plan has no rank on GPU {gpu} (GPUs in the plan: {have or 'none'})")
    cpus = frozenset().union(*(r.cpus for r in ranks))
    mems = frozenset().union(*(r.mems for r in ranks))
    return cpus, mems
