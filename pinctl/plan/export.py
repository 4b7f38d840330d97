"""Plan exports: JSON (pinctl.plan/v1), shell env blocks, numactl lines, Slurm options.

Pure string builders; the CLI writes them. JSON is ``sort_keys`` with no clock or
host facts beyond the plan's own, so the same node and request give the same bytes.
The numactl spelling is launch's own (:func:`pinctl.plan.binding.numactl_args`).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence

from pinctl.cpuset import format_list, format_mask
from pinctl.plan.binding import Binding, numactl_args
from pinctl.plan.types import Plan, RankPlan


def plan_to_json(plan: Plan) -> str:
    return json.dumps(plan.to_dict(), indent=2, sort_keys=True) + "\n"


def plan_to_env(plan: Plan) -> str:
    """One shell block per rank: ``# rank N`` then ``export K='V'`` lines."""
    blocks = []
    for r in plan.ranks:
        gpu = f" (GPU {r.gpu.index})" if r.gpu else ""
        lines = [f"# rank {r.local_rank}{gpu}: cpus {r.cpulist}"]
        lines += [f"export {k}={shlex.quote(v)}" for k, v in r.env]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def numactl_argv(r: RankPlan) -> list[str]:
    """``numactl`` and its options for one rank."""
    return ["numactl", *numactl_args(Binding.of_rank(r))]


def plan_to_numactl(plan: Plan, command: Sequence[str] = ()) -> str:
    """One ``numactl ... -- CMD`` line per rank, in rank order (``CMD`` when no command is given).

    The rank's environment is not repeated here: ``--format env`` carries it.
    """
    cmd = " ".join(shlex.quote(c) for c in command) if command else "CMD"
    return "".join(f"{' '.join(numactl_argv(r))} -- {cmd}\n" for r in plan.ranks)


def plan_to_slurm(plan: Plan) -> str:
    """srun binding options in rank order, and gres.conf lines per GPU."""
    masks = ",".join(format_mask(r.cpus) for r in plan.ranks)
    parts = ["srun", f"--ntasks-per-node={len(plan.ranks)}", f"--cpu-bind=mask_cpu:{masks}"]
    if all(r.gpu is not None for r in plan.ranks):
        parts.append("--gpu-bind=map_gpu:" + ",".join(str(r.gpu.index) for r in plan.ranks if r.gpu))
    if all(r.mem_policy == "bind" and len(r.mems) == 1 for r in plan.ranks):
        parts.append("--mem-bind=map_mem:" + ",".join(str(min(r.mems)) for r in plan.ranks))
    lines = [
        "# srun options: task i gets the i-th mask (OS CPU numbers, as taskset); needs the whole node.",
        " ".join(parts) + " CMD",
    ]
    gpus: dict[int, list[RankPlan]] = {}
    for r in plan.ranks:
        if r.gpu is not None:
            gpus.setdefault(r.gpu.index, []).append(r)
    if gpus:
        lines += [
            "",
            "# gres.conf: Cores= takes Slurm's logical core indexes (core 0 = first core of the first",
            "# socket, as hwloc's logical order), not OS CPU numbers: these are pinctl's core order.",
        ]
        for index, ranks in sorted(gpus.items()):
            gpu = ranks[0].gpu
            minor = gpu.minor if gpu and gpu.minor is not None else index
            cores = format_list(c for r in ranks for c in r.cores)
            lines.append(f"Name=gpu File=/dev/nvidia{minor} Cores={cores}")
    return "\n".join(lines) + "\n"
