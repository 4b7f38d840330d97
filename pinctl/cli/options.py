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
from pinctl.cli.argtable import PLAN_OPTION_NAMES, PLAN_OPTIONS, PLANNING, SOURCE, Opt
from pinctl.cli.output import warn
from pinctl.errors import UsageError
from pinctl.job.fit import refuse_foreign
from pinctl.planfile.allowlist import allowed_names
from pinctl.planfile.types import Plan

F = TypeVar("F", bound=Callable[..., Any])  # a click command function (no PEP 695: Python 3.10 runs this)


class IntRange(click.IntRange):
    """click's IntRange, named for what a person types: "'x' is not a valid integer", not "integer range"."""

    name = "integer"


class FloatRange(click.FloatRange):
    """click's FloatRange, named as a number ("'x' is not a valid number", not "float range")."""

    name = "number"


def click_options(table: tuple[Opt, ...]) -> Callable[[F], F]:
    """The click options of *table* (pinctl.cli.argtable), in its order: one grammar for both parsers."""

    def decorate(f: F) -> F:
        for opt in reversed(table):
            f = click.option(*opt.flags, opt.dest, **_click_keywords(opt))(f)
        return f

    return decorate


def _click_keywords(opt: Opt) -> dict[str, Any]:
    kw: dict[str, Any] = {"help": opt.help, "metavar": opt.metavar, "show_default": opt.shown}
    if opt.kind == "flag":
        return {**kw, "is_flag": True}
    kinds = {
        "int": IntRange(opt.lo, opt.hi),
        "float": FloatRange(opt.lo, opt.hi),
        "choice": click.Choice(opt.choices),
    }
    if opt.kind in kinds:
        kw["type"] = kinds[opt.kind]
    return {**kw, "default": opt.default, "multiple": opt.multiple}


def output_options(json_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--json`` and ``--format table|json|prometheus``, as doctor, watch and noise take them."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        f = click.option(
            "--format",
            "fmt",
            type=click.Choice(["table", "json", "prometheus"]),
            default="table",
            help="table (default), json (= --json), or prometheus (node_exporter textfile collector).",
        )(f)
        return click.option("--json", "as_json", is_flag=True, help=json_help)(f)

    return decorate


def output_format(ctx: click.Context, as_json: bool, fmt: str) -> str:
    """The one output asked for; ``--json`` with another ``--format`` is refused, not guessed."""
    if as_json and fmt != "json" and ctx.get_parameter_source("fmt") is not click.core.ParameterSource.DEFAULT:
        raise UsageError(f"--json and --format {fmt} ask for two outputs: give one")
    return "json" if as_json else fmt


source_options = click_options(SOURCE)
# The options that shape a plan, shared by plan, launch, pin and check (same names, same meaning).
planning_options = click_options(SOURCE + PLANNING)
# --plan FILE, or the options of ``pinctl plan`` to compute one.
plan_options = click_options(PLAN_OPTIONS)


def given_options(ctx: click.Context) -> frozenset[str]:
    """The options typed on the command line (not defaults), as argtable.parse reports them."""
    typed = click.core.ParameterSource.COMMANDLINE
    options = [p.name for p in ctx.command.params if isinstance(p, click.Option) and p.name]
    return frozenset(n for n in options if ctx.get_parameter_source(n) == typed)


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
