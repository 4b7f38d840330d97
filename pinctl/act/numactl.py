"""numactl(8), both ways: its options turned into checked CPU and node sets and a :class:`Binding`,
and a Binding spelled as numactl options (the one spelling launch and ``plan --format numactl`` share).

``launch -C/-N/-m/--preferred/-i/-l`` and ``pin --cpus/--mems`` take numactl's list
syntax (ranges, commas, ``all``). Lists are checked against what this process may
use (/proc/self/status) or what is online, as numactl and taskset do; the CPUs of
``-N`` come from the node cpulists in sysfs, so no hwloc is needed.
"""

from __future__ import annotations

from pinctl.cpuset import format_list, parse_list
from pinctl.errors import UsageError
from pinctl.kernel.cgroup import cpuset
from pinctl.kernel.cpus import online_cpus
from pinctl.kernel.files import KernelFiles
from pinctl.kernel.numa import node_cpus, online_nodes
from pinctl.kernel.proc import read_status
from pinctl.plan.binding import Binding
from pinctl.record import Record
from pinctl.words import said

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the pin fast path
if TYPE_CHECKING:
    from typing import Final


class Overrides(Record):
    """numactl-style options as typed; empty means "take it from the plan"."""

    __slots__ = ("cpunodebind", "interleave", "localalloc", "membind", "physcpubind", "preferred")

    def __init__(
        self,
        physcpubind: str | None = None,
        cpunodebind: str | None = None,
        membind: str | None = None,
        preferred: str | None = None,
        interleave: str | None = None,
        localalloc: bool = False,
    ) -> None:
        self.physcpubind: Final = physcpubind
        self.cpunodebind: Final = cpunodebind
        self.membind: Final = membind
        self.preferred: Final = preferred
        self.interleave: Final = interleave
        self.localalloc: Final = localalloc

    @property
    def given(self) -> bool:
        return (
            any(
                v is not None
                for v in (self.physcpubind, self.cpunodebind, self.membind, self.preferred, self.interleave)
            )
            or self.localalloc
        )


def apply_overrides(base: Binding, ov: Overrides, *, files: KernelFiles | None = None) -> Binding:
    """Replace the CPU and/or memory part of *base* with the numactl-style options, checked.

    CPUs must lie in this process's cgroup cpuset (the job step's or container's; the
    affinity a launcher gave is no limit, binding replaces it) and memory nodes in its
    allowed mems; ``all`` means all allowed. Lists outside are refused, as numactl does.
    """
    if not ov.given:
        return base
    fs = files or KernelFiles()
    me = read_status(fs, "self")
    limit = cpuset(fs)
    allowed_cpus = limit.cpus if limit is not None else (me.cpus_allowed if me else frozenset())
    allowed_mems = me.mems_allowed if me else online_nodes(fs)
    cpus = base.cpus
    if ov.physcpubind is not None and ov.cpunodebind is not None:
        raise UsageError("give --physcpubind/-C or --cpunodebind/-N, not both")
    if ov.physcpubind is not None:
        cpus = parse_list(ov.physcpubind, what="--physcpubind CPU list", all_values=allowed_cpus)
        outside = cpus - allowed_cpus
        if outside:
            cpuset_text = format_list(allowed_cpus)
            raise UsageError(
                f"--physcpubind: {said('CPU', outside, 'is', 'are')} not in the allowed cpuset {cpuset_text}"
            )
        if not cpus:
            raise UsageError("--physcpubind: empty CPU list")
    if ov.cpunodebind is not None:
        nodes = _nodes(ov.cpunodebind, "--cpunodebind", online_nodes(fs), "online nodes")
        node_set: set[int] = set()
        for n in sorted(nodes):
            node_set |= node_cpus(fs, n) or frozenset()
        cpus = frozenset(node_set) & allowed_cpus
        if not cpus:
            raise UsageError(f"--cpunodebind: {said('node', nodes, 'has', 'have')} no CPU in the allowed cpuset")
    memory = [
        name
        for name, given in (
            ("--membind", ov.membind is not None),
            ("--preferred", ov.preferred is not None),
            ("--interleave", ov.interleave is not None),
            ("--localalloc", ov.localalloc),
        )
        if given
    ]
    if len(memory) > 1:
        raise UsageError(f"give one memory policy, not {' and '.join(memory)}")
    policy, mems = base.mem_policy, base.mems
    if ov.membind is not None:
        policy, mems = "bind", _nodes(ov.membind, "--membind", allowed_mems, "allowed mems")
    elif ov.interleave is not None:
        policy, mems = "interleave", _nodes(ov.interleave, "--interleave", allowed_mems, "allowed mems")
    elif ov.preferred is not None:
        policy, mems = "preferred", _nodes(ov.preferred, "--preferred", allowed_mems, "allowed mems")
        if len(mems) != 1:
            raise UsageError("--preferred takes one node")
    elif ov.localalloc:
        policy, mems = "local", frozenset()
    return Binding(cpus=cpus, mem_policy=policy, mems=mems)


def _nodes(text: str, option: str, allowed: frozenset[int], allowed_name: str) -> frozenset[int]:
    nodes = parse_list(text, what=f"{option} node list", all_values=allowed)
    if not nodes:
        raise UsageError(f"{option}: empty node list")
    outside = nodes - allowed
    if outside:
        where = f"the {allowed_name} {format_list(allowed)}"
        raise UsageError(f"{option}: {said('node', outside, 'is', 'are')} not in {where}")
    return nodes


def cpus_option(text: str, files: KernelFiles) -> frozenset[int]:
    """``pin --cpus LIST``: numactl syntax, ``all`` = online CPUs; every CPU must be online."""
    online = online_cpus(files)
    cpus = parse_list(text, what="--cpus CPU list", all_values=online)
    if not cpus:
        raise UsageError("--cpus: empty CPU list")
    if online is not None and cpus - online:
        raise UsageError(f"--cpus: {said('CPU', cpus - online, 'is', 'are')} not online ({format_list(online)})")
    return cpus


def mems_option(text: str, files: KernelFiles) -> frozenset[int]:
    """``pin --mems NODES``: online nodes, ``all`` = every online node."""
    online = online_nodes(files)
    nodes = parse_list(text, what="--mems node list", all_values=online)
    if not nodes:
        raise UsageError("--mems: empty node list")
    if nodes - online:
        raise UsageError(f"--mems: {said('node', nodes - online, 'is', 'are')} not online ({format_list(online)})")
    return nodes


def nodes_of(cpus: frozenset[int], files: KernelFiles) -> frozenset[int]:
    """NUMA nodes holding any of *cpus*: where --migrate moves pages when no --mems is given."""
    return frozenset(n for n in online_nodes(files) if (node_cpus(files, n) or frozenset()) & cpus)


def numactl_args(binding: Binding) -> list[str]:
    """The numactl options that bind the same way (several preferred nodes need --preferred-many)."""
    args: list[str] = []
    if binding.cpus is not None:
        args.append(f"--physcpubind={format_list(binding.cpus)}")
    nodes = format_list(binding.mems)
    if binding.mem_policy == "bind":
        args.append(f"--membind={nodes}")
    elif binding.mem_policy == "preferred":
        args.append(f"--preferred={nodes}" if len(binding.mems) == 1 else f"--preferred-many={nodes}")
    elif binding.mem_policy == "interleave":
        args.append(f"--interleave={nodes}")
    elif binding.mem_policy == "local":
        args.append("--localalloc")
    return args
