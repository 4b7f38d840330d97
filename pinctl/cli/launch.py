"""``pinctl launch``: bind this process as the plan (or numactl-style options) says, then exec the command.

The common form ``launch --plan FILE -- CMD`` never reaches this module: pinctl/cli/main.py
hands it to pinctl/cli/fast.py before click loads. This command covers the rest:
computing the plan, numactl-style overrides, and one bound child per rank
(``--nproc-per-node``), torchrun style.
"""

from __future__ import annotations

import os
from typing import Any

import click

from pinctl import api
from pinctl.act.launch import LaunchSpec, build_env, spec_for_rank
from pinctl.act.numactl import Overrides, apply_overrides
from pinctl.act.supervise import Child, run_children
from pinctl.cli.fast import run_spec
from pinctl.cli.options import obtain_plan, plan_options, plan_options_given
from pinctl.cli.output import out, say, warn
from pinctl.cpuset import decimal
from pinctl.errors import UsageError
from pinctl.job.world import group_world
from pinctl.plan.binding import Binding
from pinctl.planfile.types import Plan
from pinctl.render.launch import describe, summary
from pinctl.words import count


@click.command(context_settings={"allow_interspersed_args": False})
@plan_options
@click.option("--local-rank", type=click.IntRange(0, 4095), default=None, help="This process's rank (else from env).")
@click.option("-C", "--physcpubind", metavar="CPUS", default=None, help="Run on these CPUs (numactl syntax, 'all').")
@click.option("-N", "--cpunodebind", metavar="NODES", default=None, help="Run on the CPUs of these NUMA nodes.")
@click.option("-m", "--membind", metavar="NODES", default=None, help="Allocate memory only on these nodes.")
@click.option("--preferred", metavar="NODE", default=None, help="Allocate on this node first.")
@click.option("-i", "--interleave", metavar="NODES", default=None, help="Interleave memory over these nodes.")
@click.option("-l", "--localalloc", is_flag=True, help="Allocate on the node of the running CPU.")
@click.option(
    "--nproc-per-node", metavar="N|all", default=None, help="Start N bound children (all: one per plan rank)."
)
@click.option("--nnodes", type=click.IntRange(1, 1 << 20), default=None,
              help="Nodes in the job (WORLD_SIZE = nnodes x nproc-per-node); default: the srun step's, else 1.")
@click.option(
    "--node-rank",
    type=click.IntRange(0, 1 << 20),
    default=None,
    help="This node's index (RANK offset); default SLURM_NODEID in an srun step, GROUP_RANK, else 0.",
)
@click.option("--master-addr", metavar="HOST", default=None,
              help="Host of node rank 0 (MASTER_ADDR); default $MASTER_ADDR, the step's first host, else 127.0.0.1.")
@click.option("--master-port", type=click.IntRange(1, 65535), default=None,
              help="Port on it (MASTER_PORT); default $MASTER_PORT, else 29500 as torchrun.")
@click.option(
    "--grace", type=click.FloatRange(0, 3600), default=10.0, show_default=True, help="Seconds before SIGKILL."
)
@click.option("-v", "--verbose", is_flag=True, help="Say on stderr which rank and binding were used.")
@click.option("--dry-run", is_flag=True, help="Print the binding, environment and numactl equivalent; run nothing.")
@click.option("--force", is_flag=True, help="Run even when the plan is foreign or the binding did not take.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def launch(ctx: click.Context, /, command: tuple[str, ...], **params: Any) -> int:
    """Bind CPUs and memory for one rank (or start one bound child per rank), then run COMMAND.

    \b
    pinctl launch --plan plan.json -- python train.py     (rank from LOCAL_RANK, SLURM_LOCALID, ...)
    pinctl launch -C 0-13 -m 0 -- ./bench                 (numactl style, no plan)
    pinctl launch --nproc-per-node all -- python train.py (torchrun style)
    """
    base_env = dict(os.environ)  # before discovery: pyhwloc sets HWLOC_PLUGINS_PATH in os.environ
    overrides = Overrides(
        physcpubind=params["physcpubind"],
        cpunodebind=params["cpunodebind"],
        membind=params["membind"],
        preferred=params["preferred"],
        interleave=params["interleave"],
        localalloc=params["localalloc"],
    )
    if params["allow_env"] and not params["plan_file"]:
        raise UsageError("--allow-env names variables to accept from a plan file: give --plan FILE")
    nproc = params["nproc_per_node"]
    use_plan = bool(params["plan_file"]) or plan_options_given(ctx) or not overrides.given
    plan = obtain_plan(params, force=params["force"]) if use_plan else None

    if nproc is None:
        if plan is not None:
            rank, source = api.select_rank(plan, params["local_rank"], base_env)
            spec = spec_for_rank(rank, plan.fingerprint, command, source)
            spec = spec.replace(binding=apply_overrides(spec.binding, overrides))
        else:
            spec = LaunchSpec(apply_overrides(Binding(), overrides), (), command)
        return run_spec(spec, base_env, verbose=params["verbose"], dry_run=params["dry_run"], force=params["force"])

    specs = _group_specs(plan, overrides, command, nproc, params, base_env)
    if params["dry_run"]:
        for spec in specs:
            out([f"[local rank {spec.local_rank}]", *(f"  {line}" for line in describe(spec))])
        return 0
    if params["verbose"]:
        for spec in specs:
            say(summary(spec))
    children = [Child(spec.argv, tuple(build_env(base_env, spec.env).items()), spec.binding) for spec in specs]
    return run_children(children, grace=params["grace"], force=params["force"], warn=warn)


def _group_specs(
    plan: Plan | None,
    overrides: Overrides,
    command: tuple[str, ...],
    nproc_text: str,
    params: dict[str, Any],
    env: dict[str, str],
) -> list[LaunchSpec]:
    """One spec per local rank, with torchrun's variables (pinctl.job.world)."""
    if nproc_text == "all":
        if plan is None:
            raise UsageError("--nproc-per-node all needs a plan (one child per plan rank)")
        nproc = len(plan.ranks)
    elif 1 <= (decimal(nproc_text, limit=4) or 0) <= 4096:
        nproc = int(nproc_text)
    else:
        raise UsageError(f"--nproc-per-node {nproc_text!r}: expected a count 1-4096 or 'all'")
    if plan is not None and nproc > len(plan.ranks):
        raise UsageError(f"--nproc-per-node {nproc} but the plan has only {count(len(plan.ranks), 'rank')}")
    world = group_world(env, nnodes=params["nnodes"], node_rank=params["node_rank"],
                        master_addr=params["master_addr"], master_port=params["master_port"])  # fmt: skip
    specs: list[LaunchSpec] = []
    for local in range(nproc):
        if plan is not None:
            rank = plan.rank(local)
            assert rank is not None
            binding, rank_env = Binding.of_rank(rank), dict(spec_for_rank(rank, plan.fingerprint, command).env)
        else:
            binding, rank_env = Binding(), {}
        rank_env.update(world.rank_env(local, nproc))
        binding = apply_overrides(binding, overrides)
        specs.append(LaunchSpec(binding, tuple(sorted(rank_env.items())), command, local, "--nproc-per-node"))
    return specs
