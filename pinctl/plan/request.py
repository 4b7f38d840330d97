"""What a plan is asked to do: one typed object holding every planning option.

The CLI (``pinctl plan``, ``launch``, ``pin``, ``check``) and the library
(``pinctl.make_plan(node, **options)``) build it the same way, through
:meth:`PlanRequest.from_options`, whose keywords are the plan command's long
options. The planner reads nothing else: no environment, no click parameters.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypedDict, cast

from pinctl.cpuset import decimal, format_list, parse_list
from pinctl.errors import UsageError
from pinctl.model import Node, PciAddress
from pinctl.planfile.types import GPU_MEM_POLICIES, MEM_POLICIES

REQUEST_MEM_POLICIES = (*MEM_POLICIES, *GPU_MEM_POLICIES)

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack is Python 3.11+; annotations only

SMT_MODES = ("all", "one-per-core")
LINK_LAYERS = ("ib", "eth", "any")
SmtMode = Literal["all", "one-per-core"]
LinkLayer = Literal["ib", "eth", "any"]


class PlanOptions(TypedDict, total=False):
    """The plan command's long options as keywords (``pinctl.make_plan(node, **options)``).

    Lists as text (``"0-3,6"``) or values (``[0, 1]``); absent means the command's default.
    """

    gpus: str | Iterable[int] | None
    procs_per_gpu: int
    ranks: int | None
    reserve: str | Iterable[int] | None
    reserve_per_numa: int
    smt: str
    mem_policy: str
    nic_link_layer: str
    nics_per_gpu: int
    local_rails: bool
    isolate_gpus: bool
    helpers: bool
    visible_devices: str | Iterable[int | str] | None


@dataclass(frozen=True)
class PlanRequest:
    """What the user asked for; defaults plan one rank per GPU, bound to its local node.

    ``visible_devices`` is CUDA_VISIBLE_DEVICES as the caller parsed it (indexes or
    UUID strings); the planner never reads the environment itself.
    """

    gpus: tuple[int, ...] | None = None
    procs_per_gpu: int = 1
    ranks: int | None = None
    reserve: frozenset[int] = frozenset()
    reserve_per_numa: int = 0
    smt: SmtMode = "all"
    mem_policy: str = "bind"
    nic_link_layer: LinkLayer = "ib"
    nics_per_gpu: int = 1
    local_rails: bool = False
    isolate_gpus: bool = False
    helpers: bool = False
    visible_devices: tuple[int | str, ...] | None = None

    @classmethod
    def from_options(cls, node: Node, **options: Unpack[PlanOptions]) -> PlanRequest:
        """A request from the plan command's options, as text or values: ``gpus="0-3,6"`` or
        ``gpus=[0, 1]``, ``reserve="0-1"``, ``visible_devices="GPU-8f..,2"``. Checked here."""
        unknown = sorted(set(options) - set(PlanOptions.__annotations__))
        if unknown:
            raise UsageError(f"unknown planning option {unknown[0]!r}")
        for name, value in options.items():
            _check_type(name, value)
        reserve = options.get("reserve")
        visible = options.get("visible_devices")
        request = cls(
            gpus=_gpus(node, options.get("gpus")),
            procs_per_gpu=options.get("procs_per_gpu", 1),
            ranks=options.get("ranks"),
            reserve=parse_list(reserve, what="--reserve CPU list")
            if isinstance(reserve, str)
            else frozenset(reserve or ()),
            reserve_per_numa=options.get("reserve_per_numa", 0),
            smt=cast(SmtMode, options.get("smt", "all")),
            mem_policy=options.get("mem_policy", "bind"),
            nic_link_layer=cast(LinkLayer, options.get("nic_link_layer", "ib")),
            nics_per_gpu=options.get("nics_per_gpu", 1),
            local_rails=bool(options.get("local_rails", False)),
            isolate_gpus=bool(options.get("isolate_gpus", False)),
            helpers=bool(options.get("helpers", False)),
            visible_devices=parse_visible_devices(visible)
            if isinstance(visible, str)
            else None
            if visible is None
            else tuple(visible),
        )
        request.check()
        return request

    def check(self) -> None:
        """Refuse values no plan can honour, naming the option."""
        if self.procs_per_gpu < 1:
            raise UsageError(f"--procs-per-gpu must be at least 1, got {self.procs_per_gpu}")
        if self.ranks is not None and self.ranks < 1:
            raise UsageError(f"--ranks must be at least 1, got {self.ranks}")
        if self.nics_per_gpu < 0:
            raise UsageError(f"--nics-per-gpu must be 0 or more, got {self.nics_per_gpu}")
        if self.reserve_per_numa < 0:
            raise UsageError(f"--reserve-per-numa must be 0 or more, got {self.reserve_per_numa}")
        for name, value, allowed in (
            ("--smt", self.smt, SMT_MODES),
            ("--mem-policy", self.mem_policy, REQUEST_MEM_POLICIES),
            ("--nic-link-layer", self.nic_link_layer, LINK_LAYERS),
        ):
            if value not in allowed:
                raise UsageError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if self.ranks is not None and (self.gpus is not None or self.procs_per_gpu != 1):
            raise UsageError("--ranks plans CPU-only ranks; it cannot be combined with --gpus or --procs-per-gpu")

    def options(self) -> tuple[tuple[str, object], ...]:
        """The request as the plan JSON's informational ``options`` (sorted keys, JSON-ready values)."""
        return (
            ("gpus", None if self.gpus is None else tuple(sorted(self.gpus))),
            ("helpers", self.helpers),
            ("isolate_gpus", self.isolate_gpus),
            ("local_rails", self.local_rails),
            ("mem_policy", self.mem_policy),
            ("nic_link_layer", self.nic_link_layer),
            ("nics_per_gpu", self.nics_per_gpu),
            ("procs_per_gpu", self.procs_per_gpu),
            ("ranks", self.ranks),
            ("reserve", format_list(self.reserve)),
            ("reserve_per_numa", self.reserve_per_numa),
            ("smt", self.smt),
            ("visible_devices", None if self.visible_devices is None else tuple(self.visible_devices)),
        )


_INTS = ("procs_per_gpu", "ranks", "reserve_per_numa", "nics_per_gpu")
_TEXTS = ("smt", "mem_policy", "nic_link_layer")
_LISTS = ("gpus", "reserve", "visible_devices")


def _check_type(name: str, value: object) -> None:
    """A library caller's wrong type is a UsageError naming the option, as the CLI's would be."""
    if value is None and name in ("ranks", *_LISTS):
        return
    if name in _INTS:
        ok = isinstance(value, int) and not isinstance(value, bool)
        want = "an integer"
    elif name in _TEXTS:
        ok, want = isinstance(value, str), "a string"
    elif name in ("isolate_gpus", "local_rails", "helpers"):
        ok, want = isinstance(value, bool), "True or False"
    else:  # a list as text, or a collection (not a one-shot iterator: it is read twice)
        allowed: tuple[type, ...] = (int, str) if name == "visible_devices" else (int,)
        ok = isinstance(value, str) or (
            isinstance(value, Collection)
            and not isinstance(value, bytes)
            and all(isinstance(v, allowed) and not isinstance(v, bool) for v in value)
        )
        what = "indexes or UUIDs" if name == "visible_devices" else "integers"
        want = f'a list as text ("0-3") or a list of {what}'
    if not ok:
        raise UsageError(f"planning option {name}: expected {want}, got {value!r}")


def _gpus(node: Node, gpus: str | Iterable[int] | None) -> tuple[int, ...] | None:
    if gpus is None:
        return None
    if isinstance(gpus, str):
        return select_gpus(node, gpus)
    return tuple(sorted(set(gpus)))


def select_gpus(node: Node, text: str) -> tuple[int, ...] | None:
    """Parse ``--gpus``: ``all``, indexes and ranges (0-3,6) or PCI bus ids (0000:1b:00.0)."""
    if text.strip() == "all":
        return None
    by_addr = {g.pci.address: g.index for g in node.gpus}
    out: set[int] = set()
    for token in text.split(","):
        token = token.strip()
        if not token:
            raise UsageError(f"malformed --gpus list {text!r}: empty element")
        if ":" in token:
            addr = PciAddress.parse(token)
            if addr not in by_addr:
                raise UsageError(f"--gpus: no GPU at PCI address {token}")
            out.add(by_addr[addr])
        else:
            out.update(parse_list(token, what="--gpus list"))
    if not out:
        raise UsageError("--gpus selects no GPU")
    return tuple(sorted(out))


def parse_visible_devices(text: str) -> tuple[int | str, ...]:
    """CUDA_VISIBLE_DEVICES: comma-separated indexes or UUIDs (GPU-..., MIG-...)."""
    out: list[int | str] = []
    for token in text.split(","):
        token = token.strip()
        if token:
            index = decimal(token, limit=9)
            out.append(token if index is None else index)
    return tuple(out)
