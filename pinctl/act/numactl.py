"""numactl-style options (-C, -N, -m, --preferred, -i, -l) turned into a checked :class:`Binding`.

Lists use numactl's syntax (ranges, commas, ``all``) and are checked against the
caller's allowed cpuset and memory nodes (/proc/self/status), as numactl does; the
CPUs of ``-N`` come from the node cpulists in sysfs, so no hwloc is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

from pinctl.act.syscalls import Binding
from pinctl.cpuset import format_list, parse_list
from pinctl.errors import UsageError
from pinctl.kernel.files import Sysfs
from pinctl.kernel.proc import node_cpus, online_nodes, read_status


@dataclass(frozen=True)
class Overrides:
    """numactl-style options as typed; empty means "take it from the plan"."""

    physcpubind: str | None = None
    cpunodebind: str | None = None
    membind: str | None = None
    preferred: str | None = None
    interleave: str | None = None
    localalloc: bool = False

    @property
    def given(self) -> bool:
        return (
            any(
                v is not None
                for v in (self.physcpubind, self.cpunodebind, self.membind, self.preferred, self.interleave)
            )
            or self.localalloc
        )


def apply_overrides(base: Binding, ov: Overrides, *, sysfs: Sysfs | None = None) -> Binding:
    """Replace the CPU and/or memory part of *base* with the numactl-style options, checked.

    CPUs must lie in this process's allowed cpuset and memory nodes in its allowed
    mems, like numactl (which reports "invalid" lists); ``all`` means all allowed.
    """
    if not ov.given:
        return base
    fs = sysfs or Sysfs()
    me = read_status(fs, "self")
    allowed_cpus = me.cpus_allowed if me else frozenset()
    allowed_mems = me.mems_allowed if me else online_nodes(fs)
    cpus = base.cpus
    if ov.physcpubind is not None and ov.cpunodebind is not None:
        raise UsageError("give --physcpubind/-C or --cpunodebind/-N, not both")
    if ov.physcpubind is not None:
        cpus = parse_list(ov.physcpubind, what="--physcpubind CPU list", all_values=allowed_cpus)
        outside = cpus - allowed_cpus
        if outside:
            raise UsageError(
                f"--physcpubind: CPUs {format_list(outside)} are not in the allowed cpuset {format_list(allowed_cpus)}"
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
            raise UsageError(f"--cpunodebind: nodes {format_list(nodes)} have no CPU in the allowed cpuset")
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
        raise UsageError(f"{option}: nodes {format_list(outside)} are not in the {allowed_name} {format_list(allowed)}")
    return nodes
