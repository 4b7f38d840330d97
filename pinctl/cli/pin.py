"""``pinctl pin``: re-pin running processes, every thread (``taskset -a -p``), optionally migrating memory.

Another process's memory *policy* cannot be set from outside (set_mempolicy acts
on the calling thread only), so ``--mems`` names the nodes that ``--migrate`` moves
pages to (``migratepages(8)``); it is refused without ``--migrate``. The options are
pinctl/cli/argtable.py's PIN table; the ``--cpus`` form usually runs without click
(pinctl/cli/fast.py, which this command calls for it too); this command adds the plan-based
forms --rank, --gpu and --auto.
"""

from __future__ import annotations

from typing import Any

import click

from pinctl.act.numactl import mems_option, nodes_of
from pinctl.act.pin import Target, pin_targets
from pinctl.cli.argtable import PIN, PLAN_OPTIONS
from pinctl.cli.fast import pid_argument, pin_cpus, report_pins
from pinctl.cli.options import click_options, given_options, gpu_cpus, obtain_plan
from pinctl.cli.output import note, out
from pinctl.discovery.nvml import gpu_processes
from pinctl.errors import TopologyError, UsageError
from pinctl.kernel.files import KernelFiles


@click.command()
@click.argument("pids", nargs=-1)
@click_options(PIN)
def pin(pids: tuple[str, ...], cpus_text: str | None, **params: Any) -> int:
    """Pin every thread of each PID to a CPU set (--cpus, or a plan's --rank / --gpu), like taskset -a -p.

    \b
    pinctl pin 4242 --cpus 0-13            every thread of 4242 onto CPUs 0-13
    pinctl pin 4242 --gpu 3 --migrate      onto GPU 3's CPUs, pages moved to its node
    pinctl pin --auto                      each GPU's processes (NVML) onto that GPU's CPUs
    """
    fs = KernelFiles()
    modes = [
        n for n, v in (("--cpus", cpus_text), ("--rank", params["rank"]), ("--gpu", params["gpu"])) if v is not None
    ]
    if params["auto"]:
        modes.append("--auto")
    if len(modes) != 1:
        raise UsageError("give exactly one of --cpus, --rank, --gpu or --auto")
    if params["mems"] is not None and not params["migrate"]:
        raise UsageError("--mems only names the nodes for --migrate: another process's memory policy cannot be set")
    if cpus_text is not None:
        plan_given = [o.flags[0] for o in PLAN_OPTIONS if o.dest in given_options(click.get_current_context())]
        if plan_given:
            raise UsageError(
                f"--cpus names the CPUs itself: drop {', '.join(plan_given)} (a plan is for --rank, --gpu)"
            )
        return pin_cpus(pids, {**params, "cpus_text": cpus_text})
    if params["auto"]:
        if pids:
            raise UsageError("--auto finds the processes itself: give no PID")
        targets = _auto_targets(params)
    else:
        if not pids:
            raise UsageError("give at least one PID")
        numbers = [pid_argument(p) for p in pids]
        cpus, mems = _target(params, fs)
        targets = [(pid, cpus, mems) for pid in numbers]
    if params["mems"] is not None:
        wanted = mems_option(params["mems"], fs)
        targets = [(pid, cpus, wanted) for pid, cpus, _ in targets]
    return report_pins(pin_targets(targets, migrate=params["migrate"], files=fs, force=params["force"]))


def _target(params: dict[str, Any], fs: KernelFiles) -> tuple[frozenset[int], frozenset[int]]:
    plan = obtain_plan(params, force=params["force"])
    if params["rank"] is not None:
        rank = plan.rank(params["rank"])
        if rank is None:
            raise UsageError(f"the plan has no local rank {params['rank']} (ranks 0-{len(plan.ranks) - 1})")
        return rank.cpus, rank.mems or nodes_of(rank.cpus, fs)
    cpus, mems = gpu_cpus(plan, params["gpu"])
    return cpus, mems or nodes_of(cpus, fs)


def _auto_targets(params: dict[str, Any]) -> list[Target]:
    """Each process NVML sees on a GPU, with the CPUs of that GPU's ranks (the union when it uses several).

    GPUs are joined on bus ids: NVML's index counts only the GPUs this job was given (a pod's
    two are 0 and 1), the plan's the node's. A GPU outside the plan keeps its processes, with a note.
    """
    per_gpu, why = gpu_processes()
    if per_gpu is None:
        raise TopologyError(f"pin --auto: {why}")
    plan = obtain_plan(params, force=params["force"])
    by_bus = {r.gpu.pci_bus_id: r.gpu.index for r in plan.ranks if r.gpu is not None and r.gpu.pci_bus_id}
    wanted: dict[int, tuple[set[int], set[int]]] = {}
    for gpu in per_gpu:
        if gpu.error is not None:
            note(f"pin --auto: could not list the processes on {gpu.error}; they are left alone")
        if not gpu.pids:
            continue
        index = by_bus.get(gpu.pci_bus_id or "")
        if index is None:
            note(
                f"pin --auto: NVML's GPU {gpu.index} ({gpu.pci_bus_id or 'bus id unknown'}) is not in the plan: "
                f"its processes {', '.join(map(str, gpu.pids))} are left alone"
            )
            continue
        cpus, mems = gpu_cpus(plan, index)
        for pid in gpu.pids:
            acc = wanted.setdefault(pid, (set(), set()))
            acc[0].update(cpus)
            acc[1].update(mems)
    if not wanted:
        out(
            [
                "no process is using a GPU"
                if not any(g.error for g in per_gpu)
                else "no process found on the GPUs NVML would list"
            ]
        )
    return [(pid, frozenset(c), frozenset(m)) for pid, (c, m) in sorted(wanted.items())]
