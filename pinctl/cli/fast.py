"""``launch`` and ``pin``, run without click: the one implementation of each, whichever parser read it.

Every rank of every job goes through ``launch --plan``, and re-pinning is often run in a
loop over many processes, so pinctl/cli/main.py reads both with the click-free parser over
their option tables (pinctl/cli/argtable.py) and runs them here; click loads only for
``--help`` and for a form that parser leaves to it, and its command (pinctl/cli/launch.py)
calls the same :func:`launch` with the same values. This module imports no click, rich,
pyhwloc, pynvml, psutil, jsonschema or dataclasses (tests/test_layers.py pins the import
set); what only some forms need (discovery and the planner, children, torchrun's world)
is imported inside the function that needs it. ``launch`` ends in ``execve``, so whatever
it imports is paid once per rank.

A plan file, or a plan computed from another machine's description (``--topology``,
``--root``), must fit this node on every form: the hostname, every CPU and memory node,
each rank's NUMA layout, and each launched rank's CPUs inside this process's cgroup cpuset
(pinctl.job.fit), read from sysfs at once. The fingerprint needs discovery (hwloc, NVML:
more than a launch may spend), so launch does not compare it; ``check`` and ``pin`` do.
"""

from __future__ import annotations

import os

from pinctl import api
from pinctl.act.launch import LaunchSpec, build_env, exec_command, spec_for_rank
from pinctl.act.numactl import Overrides, apply_overrides, cpus_option, mems_option, nodes_of
from pinctl.act.pin import PinReport, pin_targets
from pinctl.cli.argtable import LAUNCH, PIN, PLAN_OPTION_NAMES, parse
from pinctl.cli.output import fail, out, say, warn
from pinctl.cpuset import decimal
from pinctl.errors import PinctlError, UsageError
from pinctl.job.fit import refuse_foreign
from pinctl.kernel.files import KernelFiles
from pinctl.kernel.proc import process_id
from pinctl.plan.binding import Binding
from pinctl.planfile.allowlist import allowed_names
from pinctl.words import count

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~5 ms) on the launch fast path
if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence
    from typing import Any

    from pinctl.planfile.types import Plan, RankPlan


def try_fast_launch(args: list[str]) -> int | None:
    """Run ``launch`` (args after the word); None when click must read the form (``--help``, an error, ...)."""
    parsed = parse(LAUNCH, args, interspersed=False)
    if parsed is None or not parsed.rest:
        return None
    try:
        return launch(parsed.values, parsed.given, parsed.rest)
    except PinctlError as exc:
        return fail(exc)


def launch(values: Mapping[str, Any], given: Collection[str], command: tuple[str, ...]) -> int:
    """``pinctl launch``: bind this process as the plan (or numactl-style options) says, then exec
    *command*; or start one bound child per rank (``--nproc-per-node``). *values*: every option of
    the LAUNCH table; *given*: the ones typed."""
    base_env = dict(os.environ)  # before discovery: pyhwloc sets HWLOC_PLUGINS_PATH in os.environ
    overrides = Overrides(
        physcpubind=values["physcpubind"],
        cpunodebind=values["cpunodebind"],
        membind=values["membind"],
        preferred=values["preferred"],
        interleave=values["interleave"],
        localalloc=values["localalloc"],
    )
    if values["nproc_per_node"] is not None and values["local_rank"] is not None:
        raise UsageError("--local-rank picks one rank; --nproc-per-node starts one child per rank: give one")
    plan, foreign = _plan(values, given, overrides)
    # A plan made here was never shown by `pinctl plan`: say its warnings (--helpers without idle
    # cores, bind+gpu without GPU memory, ...), once per node: the launcher, or local rank 0.
    made_here = plan is not None and not values["plan_file"]
    if values["nproc_per_node"] is not None:
        if made_here and plan is not None:
            for w in plan.warnings:
                warn(w)
        return _run_group(plan, foreign, overrides, command, values, base_env)
    if plan is None:
        spec = LaunchSpec(apply_overrides(Binding(), overrides), (), command)
    else:
        rank, source = api.select_rank(plan, values["local_rank"], base_env)
        if made_here and rank.local_rank == 0:
            for w in plan.warnings:
                warn(w)
        if foreign:
            _refuse_foreign(plan, (rank,), force=values["force"])
        spec = spec_for_rank(rank, plan.fingerprint, command, source)
        spec = spec.replace(binding=apply_overrides(spec.binding, overrides))
    return _run_one(spec, base_env, values)


def _plan(values: Mapping[str, Any], given: Collection[str], overrides: Overrides) -> tuple[Plan | None, bool]:
    """The plan to launch from (None: numactl-style options alone), and whether it must be checked
    against this node (a file, or a plan computed from another machine's description)."""
    planning = any(name in given for name in (*PLAN_OPTION_NAMES, "topology", "root"))
    if values["plan_file"] and planning:
        raise UsageError("--plan FILE already holds the plan: drop the planning options (--gpus, --ranks, ...)")
    if values["allow_env"] and not values["plan_file"]:
        raise UsageError("--allow-env names variables to accept from a plan file: give --plan FILE")
    if values["plan_file"]:
        return api.load_plan(values["plan_file"], allowed_names(values["allow_env"])), True
    if not planning and overrides.given:
        return None, False
    node = api.discover(topology=values["topology"], root=values["root"])
    return api.make_plan(node, **{name: values[name] for name in PLAN_OPTION_NAMES}), node.source != "live"


def _refuse_foreign(plan: Plan, ranks: Sequence[RankPlan], *, force: bool) -> None:
    """A plan that does not fit this node, for any rank launched, is an error unless --force (then a warning)."""
    problems: list[str] = []
    for rank in ranks:
        problems += [p for p in api.fit(plan, rank)[0] if p not in problems]
    refuse_foreign(problems, force=force)
    for p in problems:
        warn(f"{p} (--force)")


def _run_one(spec: LaunchSpec, base_env: dict[str, str], values: Mapping[str, Any]) -> int:
    """Print (``--dry-run``) or apply, verify and exec one rank's LaunchSpec."""
    if values["dry_run"] or values["verbose"]:
        from pinctl.render.launch import describe, summary  # shlex: only when asked to report

        if values["dry_run"]:
            out(describe(spec))
            return 0
        say(summary(spec))
    api.bind_to(spec.binding, force=values["force"], warn=lambda w: warn(f"{w} (--force)"))
    exec_command(spec.argv, build_env(base_env, spec.env))


def _run_group(
    plan: Plan | None,
    foreign: bool,
    overrides: Overrides,
    command: tuple[str, ...],
    values: Mapping[str, Any],
    base_env: dict[str, str],
) -> int:
    """``--nproc-per-node``: one bound child per local rank, with torchrun's variables (pinctl.job.world)."""
    from pinctl.act.supervise import Child, run_children  # off the one-rank path
    from pinctl.job.world import group_world
    from pinctl.render.launch import describe, summary

    text = values["nproc_per_node"]
    if text == "all":
        if plan is None:
            raise UsageError("--nproc-per-node all needs a plan (one child per plan rank)")
        nproc = len(plan.ranks)
    elif 1 <= (decimal(text, limit=4) or 0) <= 4096:
        nproc = int(text)
    else:
        raise UsageError(f"--nproc-per-node {text!r}: expected a count 1-4096 or 'all'")
    if plan is not None and nproc > len(plan.ranks):
        raise UsageError(f"--nproc-per-node {nproc} but the plan has only {count(len(plan.ranks), 'rank')}")
    if plan is not None and foreign:
        _refuse_foreign(plan, plan.ranks[:nproc], force=values["force"])
    world = group_world(
        base_env,
        nnodes=values["nnodes"],
        node_rank=values["node_rank"],
        master_addr=values["master_addr"],
        master_port=values["master_port"],
    )
    specs: list[LaunchSpec] = []
    for local in range(nproc):
        rank = plan.rank(local) if plan is not None else None
        if rank is not None and plan is not None:
            binding, env = Binding.of_rank(rank), dict(spec_for_rank(rank, plan.fingerprint, command).env)
        else:
            binding, env = Binding(), {}
        env.update(world.rank_env(local, nproc))
        binding = apply_overrides(binding, overrides)
        specs.append(LaunchSpec(binding, tuple(sorted(env.items())), command, local, "--nproc-per-node"))
    if values["dry_run"]:
        for spec in specs:
            out([f"[local rank {spec.local_rank}]", *(f"  {line}" for line in describe(spec))])
        return 0
    if values["verbose"]:
        for spec in specs:
            say(summary(spec))
    children = [Child(spec.argv, tuple(build_env(base_env, spec.env).items()), spec.binding) for spec in specs]
    return run_children(children, grace=values["grace"], force=values["force"], warn=warn)


# --- pin ---------------------------------------------------------------------------------------

# The options of pin's --cpus form; any other (--rank, --gpu, --auto, a plan) needs the click command.
PIN_CPUS_FORM = frozenset({"cpus_text", "mems", "migrate", "force"})


def try_fast_pin(args: list[str]) -> int | None:
    """Run ``pin PID... --cpus LIST`` (args after the word) without click; None for any other form."""
    parsed = parse(PIN, args, interspersed=True)
    if parsed is None or "cpus_text" not in parsed.given or not parsed.given <= PIN_CPUS_FORM:
        return None
    try:
        return pin_cpus(parsed.rest, parsed.values)
    except PinctlError as exc:
        return fail(exc)


def pin_cpus(pids: Sequence[str], values: Mapping[str, Any]) -> int:
    """``pin PID... --cpus LIST [--mems NODES --migrate] [--force]``: every thread of each PID onto the
    CPUs, pages moved to --mems or to the CPUs' nodes (the click command runs this form here too)."""
    files = KernelFiles()
    if values["mems"] is not None and not values["migrate"]:
        raise UsageError("--mems only names the nodes for --migrate: another process's memory policy cannot be set")
    if not pids:
        raise UsageError("give at least one PID")
    numbers = [pid_argument(p) for p in pids]
    cpus = cpus_option(values["cpus_text"], files)
    mems = mems_option(values["mems"], files) if values["mems"] is not None else nodes_of(cpus, files)
    targets = [(pid, cpus, mems) for pid in numbers]
    return report_pins(pin_targets(targets, migrate=values["migrate"], files=files, force=values["force"]))


def pid_argument(text: str) -> int:
    pid = process_id(text)
    if pid is None:
        raise UsageError(f"{text[:40]!r} is not a process id")
    return pid


def report_pins(report: PinReport) -> int:
    """Print the report's lines, then raise what went wrong (a partial failure is never hidden)."""
    out(report.lines)
    error = report.error()
    if error is not None:
        raise error
    return 0
