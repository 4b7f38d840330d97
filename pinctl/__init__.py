"""pinctl: topology-aware process pinning for GPU nodes, as a library.

    import pinctl
    node = pinctl.discover()                        # this machine; or discover(topology=PATH) / discover(root=DIR)
    plan = pinctl.make_plan(node, nics_per_gpu=1)   # keywords = the plan command's long options
    plan.to_dict()                                  # exactly what `pinctl plan --json` prints
    plan = pinctl.load_plan("plan.json")            # validated as `launch --plan` validates
    rank = pinctl.bind(plan)                        # bind this process (every thread) to its rank

Every error is a :class:`PinctlError`. docs/api.md is the reference. The API lives
in :mod:`pinctl.api` and loads on first use, so ``import pinctl`` (which every
``pinctl.*`` import runs) costs nothing and imports no click, rich, pyhwloc or pynvml.
"""

from __future__ import annotations

from pinctl.errors import BindError, PinctlError, PinctlWarning, PlanError, ProcessError, TopologyError, UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the launch path
if TYPE_CHECKING:
    from pinctl.api import bind, bind_helper, bind_to, discover, fit, load_plan, make_plan, select_rank
    from pinctl.model import Node
    from pinctl.planfile.types import Plan, RankPlan

__version__ = "0.1.0"
__all__ = [
    "BindError",
    "Node",
    "PinctlError",
    "PinctlWarning",
    "Plan",
    "PlanError",
    "ProcessError",
    "RankPlan",
    "TopologyError",
    "UsageError",
    "bind",
    "bind_helper",
    "bind_to",
    "discover",
    "fit",
    "load_plan",
    "make_plan",
    "select_rank",
]

# name -> module that defines it; loaded on first attribute access (PEP 562).
_LAZY = {
    "bind": "pinctl.api",
    "bind_helper": "pinctl.api",
    "bind_to": "pinctl.api",
    "discover": "pinctl.api",
    "fit": "pinctl.api",
    "load_plan": "pinctl.api",
    "make_plan": "pinctl.api",
    "select_rank": "pinctl.api",
    "Node": "pinctl.model",
    "Plan": "pinctl.planfile.types",
    "RankPlan": "pinctl.planfile.types",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pinctl' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
