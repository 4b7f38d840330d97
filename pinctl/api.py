"""The library API: discover a node, plan it, load a plan, bind this process to its rank.

Frameworks that start their own workers (vLLM, Ray, Lightning, NeMo) call these
instead of carrying their own NUMA-binding helper; the CLI is their first client:
``pinctl show`` is :func:`discover`, ``pinctl plan`` is :func:`make_plan`, and
``pinctl launch --plan`` is :func:`load_plan` then :func:`bind` then exec.
docs/api.md has the reference and a worker that binds itself.

Every error is a :class:`pinctl.errors.PinctlError`. This module is on the
``launch --plan`` path, so discovery and the planner (xml, dataclasses, pyhwloc
on demand) are imported inside the two functions that need them.
"""

from __future__ import annotations

import os

from pinctl.act.bind import bind_self
from pinctl.act.pin import pin_threads
from pinctl.cpuset import format_list, parse_list
from pinctl.errors import BindError, PinctlError, PinctlWarning, UsageError
from pinctl.job.fit import check_live_node, refuse_foreign
from pinctl.job.localrank import detect_local_rank
from pinctl.kernel.files import KernelFiles
from pinctl.plan.binding import Binding
from pinctl.plan.environment import HELPER_VARIABLE
from pinctl.planfile.load import load_plan
from pinctl.planfile.types import Plan, RankPlan

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the launch path
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from typing_extensions import Unpack  # typing.Unpack is Python 3.11+; annotations only

    from pinctl.model import Node
    from pinctl.plan.request import PlanOptions, PlanRequest

__all__ = ["bind", "bind_helper", "bind_to", "discover", "fit", "load_plan", "make_plan", "select_rank"]


def discover(
    *, topology: str | None = None, root: str | None = None, nvml: bool = True, env: Mapping[str, str] | None = None
) -> Node:
    """This machine's Node (hwloc, sysfs and NVML), or a saved one's.

    *topology*: an hwloc XML (``lstopo --of xml``, ``pinctl snapshot``) or an NCCL
    topology XML; *root*: a gathered /sys and /proc tree. *nvml* False skips NVML
    (GPU names, UUIDs, NVLink). No GPU, driver or InfiniBand is fine: the Node's
    ``notes`` say what could not be seen. GPUs this job may not use (a pod's or job step's
    share of the node) are kept and marked; *env* is the environment whose visibility
    variables apply (default: this process's, for this machine).
    """
    from pinctl.discovery import discover as run_discovery  # xml, dataclasses; pyhwloc when it runs

    return run_discovery(topology=topology, root=root, nvml=nvml, env=env)


def make_plan(node: Node, request: PlanRequest | None = None, **options: Unpack[PlanOptions]) -> Plan:
    """Plan every local rank of *node*; the keywords are ``pinctl plan``'s long options
    (:class:`pinctl.plan.request.PlanOptions`).

    Lists may be given as text (``gpus="0-3,6"``, ``reserve="0,1"``) or as values.
    Only the GPUs this job may use are planned: :func:`discover` has applied the visibility
    variables (CUDA_VISIBLE_DEVICES, ...), the device files and NVML's list, and ranks follow
    the order the launched process counts GPUs in. *visible_devices* narrows further.
    """
    from pinctl.plan.make import make_plan as plan_node  # the planner's dataclasses
    from pinctl.plan.request import PlanRequest

    if request is None:
        request = PlanRequest.from_options(node, **options)
    elif options:
        raise UsageError("give a PlanRequest or planning options, not both")
    return plan_node(node, request)


def fit(plan: Plan, rank: RankPlan | int | None = None, *, fingerprint: bool = False) -> tuple[list[str], list[str]]:
    """Why *plan* does not fit this node, and notes: ``(problems, notes)``; no problems = it fits.

    The cheap checks read sysfs and /proc (hostname, CPUs, nodes, NUMA layout, and
    *rank*'s CPUs against this process's cpuset; *rank* a RankPlan or a local rank
    number, as ``select_rank`` takes one). *fingerprint* also discovers this node and
    compares the plan's fingerprint (hwloc and NVML: a second or more).
    """
    if isinstance(rank, int):
        rank = select_rank(plan, rank, {})[0]
    problems = check_live_node(plan, rank)
    notes: list[str] = []
    if fingerprint:
        from pinctl.plan.make import fingerprint as node_fingerprint

        try:
            live = node_fingerprint(discover())
        except PinctlError as exc:
            notes.append(f"cannot compute this node's fingerprint ({exc}); checked hostname, CPUs and nodes only")
        else:
            if live != plan.fingerprint:
                problems.append(f"plan fingerprint {plan.fingerprint} is not this node's ({live})")
    return problems, notes


def select_rank(
    plan: Plan, local_rank: int | None = None, env: Mapping[str, str] | None = None
) -> tuple[RankPlan, str]:
    """The rank this process is, and where that came from: *local_rank*, else the launcher's
    variables (LOCAL_RANK, SLURM_LOCALID, OMPI_COMM_WORLD_LOCAL_RANK, ...)."""
    index, source = detect_local_rank(os.environ if env is None else env, local_rank, len(plan.ranks))
    rank = plan.rank(index)
    if rank is None:  # a validated plan holds ranks 0..n-1
        raise UsageError(f"the plan has no local rank {index}")
    return rank, source


def bind(
    plan: Plan,
    local_rank: int | None = None,
    *,
    force: bool = False,
    set_env: bool = True,
    warn: Callable[[str], None] | None = None,
    files: KernelFiles | None = None,
) -> RankPlan:
    """Bind the calling process to its rank of *plan*: every thread's CPUs, and the memory policy.

    The rank is *local_rank*, else the launcher's (see :func:`select_rank`); it is
    returned. A plan for another node, or a binding that did not take, raises unless
    *force*; what *force* lets pass goes to *warn* (default: a :class:`PinctlWarning`).
    The memory policy is a per-thread setting: it is set on the calling thread and
    inherited by threads started after this call, so bind before starting workers.
    *set_env* puts the rank's variables (NCCL_IB_HCA, OMP_NUM_THREADS, ...) into
    ``os.environ`` for libraries initialised later in this process.
    """
    rank, _ = select_rank(plan, local_rank)
    foreign = check_live_node(plan, rank, files=files)
    refuse_foreign(foreign, force=force)
    _report(foreign, warn)
    bind_to(Binding.of_rank(rank), force=force, warn=warn, files=files)
    if set_env:
        os.environ.update(rank.env)
    return rank


def bind_to(
    binding: Binding,
    *,
    force: bool = False,
    warn: Callable[[str], None] | None = None,
    files: KernelFiles | None = None,
) -> None:
    """Bind the calling process to *binding* (numactl-style, no plan): every thread's CPUs and this
    thread's memory policy, read back. What did not take raises BindError unless *force* (then *warn*)."""
    untaken = bind_self(binding, force=force)
    if binding.cpus is not None:
        others = pin_threads(os.getpid(), binding.cpus, files=files)
        threads = [f"thread {tid} not re-pinned ({err})" for tid, err in others.failed]
        threads += [f"thread {tid} runs on {format_list(cpus)}" for tid, cpus in others.mismatched]
        if threads and not force:
            raise BindError("binding did not take: " + "; ".join(threads) + " (use --force to run anyway)")
        untaken += threads
    _report([f"binding did not take: {p}" for p in untaken], warn)


def bind_helper(
    worker_id: int | None = None,
    *,
    env: Mapping[str, str] | None = None,
    force: bool = False,
    warn: Callable[[str], None] | None = None,
    files: KernelFiles | None = None,
) -> frozenset[int]:
    """Bind the calling process (a data-loader worker) to its rank's helper CPUs, and return them.

    The CPUs come from ``PINCTL_HELPER_CPUS``, which a rank launched from a ``--helpers`` plan
    inherits (or :func:`bind` puts into ``os.environ``). PyTorch's ``DataLoader(...,
    worker_init_fn=pinctl.bind_helper)`` passes the worker id, which is not needed: every
    worker of a rank shares its helper set and the scheduler spreads them. Only the CPUs are
    bound; the memory policy is left as inherited. A rank with no helper set raises UsageError.
    """
    del worker_id  # the signature of a worker_init_fn
    text = (os.environ if env is None else env).get(HELPER_VARIABLE, "")
    if not text.strip():
        raise UsageError(f"{HELPER_VARIABLE} is not set: plan with --helpers and launch the rank from that plan")
    cpus = parse_list(text, what=HELPER_VARIABLE)
    bind_to(Binding(cpus=cpus), force=force, warn=warn, files=files)
    return cpus


def _report(problems: list[str], warn: Callable[[str], None] | None) -> None:
    for problem in problems:
        if warn is not None:
            warn(problem)
        else:
            import warnings  # only for a caller that gave no warn

            warnings.warn(problem, PinctlWarning, stacklevel=3)
