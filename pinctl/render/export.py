"""Plan exports: JSON (pinctl.plan/v2), shell env blocks, numactl lines, Slurm options.

Pure string builders; the CLI writes them. JSON is ``sort_keys`` with no clock or
host facts beyond the plan's own, so the same node and request give the same bytes.
The numactl spelling is launch's own (:func:`pinctl.act.numactl.numactl_args`).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence

from pinctl.act.numactl import numactl_args
from pinctl.cpuset import format_list, format_mask
from pinctl.plan.binding import Binding
from pinctl.plan.vendors import device_file
from pinctl.planfile.types import Plan, RankPlan
from pinctl.render.housekeeping import slurm_node_lines


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


def _slurm_mem_bind(plan: Plan) -> tuple[str | None, str | None]:
    """srun's --mem-bind for the plan's policy, or (None, why it has none).

    Slurm's ``local`` is a strict bind (numa_maps shows bind:N), so the kernel's local policy,
    which falls back to other nodes, is ``prefer,local``; interleaving has no srun spelling.
    """
    policies = {r.mem_policy for r in plan.ranks}
    if len(policies) != 1:
        return None, "ranks have different memory policies"
    policy = policies.pop()
    single = all(len(r.mems) == 1 for r in plan.ranks)
    if policy == "bind" and single:
        return "map_mem:" + ",".join(str(min(r.mems)) for r in plan.ranks), None
    if policy == "bind":
        return "mask_mem:" + ",".join(format_mask(r.mems) for r in plan.ranks), None
    if policy == "preferred" and single:
        return "prefer,map_mem:" + ",".join(str(min(r.mems)) for r in plan.ranks), None
    if policy == "local":
        return "prefer,local", None
    if policy == "none":
        return None, None
    return None, f"memory policy {policy} has no srun --mem-bind spelling"


def plan_to_slurm(plan: Plan, plan_file: str = "plan.json", command: Sequence[str] = ()) -> str:
    """srun lines for the plan (binding options, and the ``pinctl launch --plan`` form that also
    sets each rank's environment), and gres.conf lines per GPU.

    srun refuses masks outside the CPUs its step holds ("Unable to satisfy cpu bind request"),
    so the lines ask for them: one node, the plan's tasks, --cpus-per-task as wide as the widest
    rank. Standalone srun then takes them; inside sbatch the job must hold them.
    """
    cmd = " ".join(shlex.quote(c) for c in command) if command else "CMD"
    ntasks = len(plan.ranks)
    width = max(len(r.cpus) for r in plan.ranks)
    ask = ["srun", "--nodes=1", f"--ntasks-per-node={ntasks}", f"--cpus-per-task={width}"]
    parts = [*ask, "--cpu-bind=mask_cpu:" + ",".join(format_mask(r.cpus) for r in plan.ranks)]
    if all(r.gpu is not None for r in plan.ranks):
        parts.append("--gpu-bind=map_gpu:" + ",".join(str(r.gpu.index) for r in plan.ranks if r.gpu))
    mem_bind, no_mem_bind = _slurm_mem_bind(plan)
    if mem_bind is not None:
        parts.append(f"--mem-bind={mem_bind}")
    options = dict(plan.options)
    file = shlex.quote(plan_file)
    lines = [
        "# srun options: task i gets the i-th mask (OS CPU numbers, as taskset). Standalone, srun takes",
        "# the CPUs it asks for; inside sbatch the job must hold them "
        f"(sbatch --exclusive, or -n {ntasks} -c {width}).",
    ]
    if plan.cpu_classes is not None and plan.cpu_classes.housekeeping:
        lines.append("# The plan reserves housekeeping CPUs: keep Slurm's jobs off them too (the CpuSpecList= line")
        lines.append("# below), or the step may be given them and srun refuses the masks.")
    elif plan.cpu_classes is None and (options.get("reserve") or options.get("reserve_per_numa")):
        lines.append("# The plan reserves CPUs: keep Slurm's jobs off them too (CpuSpecList= in slurm.conf), or the")
        lines.append("# step may be given them and srun refuses the masks.")
    if no_mem_bind:
        lines.append(f"# No --mem-bind: {no_mem_bind}; the pinctl launch form below applies it.")
    lines += [
        " ".join(parts) + f" {cmd}",
        "",
        "# Each rank's environment (NCCL_IB_HCA, UCX_NET_DEVICES, OMP_NUM_THREADS, ...) cannot travel in srun",
        f"# options: this form binds each task and sets it from the plan (pinctl plan --json -o {file}):",
        " ".join([*ask, "--cpu-bind=none", "pinctl", "launch", "--plan", file, "--", cmd]),
    ]
    gpus: dict[int, list[RankPlan]] = {}
    for r in plan.ranks:
        if r.gpu is not None:
            gpus.setdefault(r.gpu.index, []).append(r)
    if gpus:
        lines += (
            [
                "",
                "# gres.conf: Cores= takes Slurm's logical core indexes (core 0 = first core of the first",
                "# socket, as hwloc's logical order), not OS CPU numbers: these are pinctl's core order.",
            ]
            if plan.smt_known
            else ["", "# gres.conf lines:"]
        )
        for index, ranks in sorted(gpus.items()):
            gpu = ranks[0].gpu
            cores = format_list(c for r in ranks for c in r.cores)
            vendor = gpu.vendor if gpu else None
            minor = gpu.minor if gpu else None
            if minor is None and vendor in (None, "nvidia"):
                minor = index  # the driver numbers /dev/nvidiaN in PCI order unless told otherwise
            path = device_file(vendor, minor)
            line = f"Name=gpu File={path or '/dev/dri/renderDN'}" + (f" Cores={cores}" if plan.smt_known else "")
            if path is None:  # commented out: a made-up path would stop slurmd
                bus = gpu.pci_bus_id if gpu else "?"
                lines.append(f"# GPU {index} ({bus}): N from `ls -l /dev/dri/by-path/pci-{bus}-render` on the node")
                line = "# " + line
            lines.append(line)
        if not plan.smt_known:
            lines.append(
                "# No Cores=: the topology did not say which CPUs share a core, so Slurm's core indexes are unknown."
            )
    lines += slurm_node_lines(plan)
    return "\n".join(lines) + "\n"
