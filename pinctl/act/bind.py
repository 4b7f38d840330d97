"""Binding the calling process: CPU affinity first, then the memory policy, then a check that both took.

Both survive ``execve`` and are inherited by children, so ``launch`` binds itself
and then becomes the command. A binding the user asked for that did not take
(a cpuset narrowed it, the kernel refused the policy) is an error unless forced.
"""

from __future__ import annotations

import os

from pinctl.act.mempolicy import get_mempolicy, set_mempolicy
from pinctl.cpuset import format_list
from pinctl.errors import BindError
from pinctl.plan.binding import Binding


def apply_binding(binding: Binding) -> None:
    """Bind the calling thread (before exec or spawn): affinity first, then the memory policy."""
    if binding.cpus is not None:
        try:
            os.sched_setaffinity(0, binding.cpus)
        except OSError as exc:
            raise BindError(f"cannot bind to CPUs {format_list(binding.cpus)}: {exc.strerror}") from None
    set_mempolicy(binding.mem_policy, binding.mems)


def verify_binding(binding: Binding) -> list[str]:
    """Re-read affinity and policy; one line per difference from what was asked (empty = it took)."""
    problems: list[str] = []
    if binding.cpus is not None:
        got = frozenset(os.sched_getaffinity(0))
        if got != binding.cpus:
            problems.append(f"CPU affinity is {format_list(got)}, asked for {format_list(binding.cpus)}")
    if binding.mem_policy != "none":
        mode, nodes = get_mempolicy()
        want_nodes = binding.mems if binding.mem_policy != "local" else frozenset()
        if mode != binding.mem_policy or nodes != want_nodes:
            got_text = mode + (f":{format_list(nodes)}" if nodes else "")
            want_text = binding.mem_policy + (f":{format_list(want_nodes)}" if want_nodes else "")
            problems.append(f"memory policy is {got_text}, asked for {want_text}")
    return problems


def bind_self(binding: Binding, *, force: bool = False) -> list[str]:
    """Apply and verify; a binding that did not take raises BindError unless *force* (then returned)."""
    apply_binding(binding)
    problems = verify_binding(binding)
    if problems and not force:
        raise BindError("binding did not take: " + "; ".join(problems) + " (use --force to run anyway)")
    return problems
