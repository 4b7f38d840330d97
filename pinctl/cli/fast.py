"""The ``launch --plan FILE -- CMD`` fast path, parsed by hand before click is imported.

Every rank of every job goes through this line, so it imports only the plan-file
validator, the syscalls and sysfs reads: no click, rich, pyhwloc, pynvml, psutil or
jsonschema (tests/test_launch.py checks with a subprocess). Its job is done with
``execve``, so whatever is imported is paid once per rank on the start path.
Any other form of ``launch`` returns None and goes to the click command.

Fingerprint: the plan's full node fingerprint needs discovery (hwloc, NVML); this
path checks instead the hostname, that the plan's CPUs and nodes exist here and
that the rank's CPUs and nodes are allowed (planfile.check_live_node). The
click path (``launch --plan FILE`` with any other option) also compares the
fingerprint.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from pinctl.errors import PinctlError, UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms) on the launch fast path
if TYPE_CHECKING:
    from typing import TextIO

    from pinctl.act.launch import LaunchSpec


@dataclass(frozen=True)
class FastArgs:
    plan: str
    argv: tuple[str, ...]
    local_rank: int | None = None
    verbose: bool = False
    dry_run: bool = False
    force: bool = False


def parse_fast_args(args: list[str]) -> FastArgs | None:
    """``--plan FILE [--local-rank N] [-v] [--dry-run] [--force] -- CMD...``, or None for any other form."""
    plan: str | None = None
    local_rank: int | None = None
    flags = {"verbose": False, "dry_run": False, "force": False}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            argv = tuple(args[i + 1 :])
            if plan is None or not argv:
                return None
            return FastArgs(plan, argv, local_rank, **flags)
        name, eq, inline = arg.partition("=")
        if name in ("--plan", "--local-rank"):
            if eq:
                value = inline
            elif i + 1 < len(args):
                i += 1
                value = args[i]
            else:
                return None
            if name == "--plan":
                plan = value
            elif value.isdigit():
                local_rank = int(value)
            else:
                return None
        elif arg in ("-v", "--verbose"):
            flags["verbose"] = True
        elif arg == "--dry-run":
            flags["dry_run"] = True
        elif arg == "--force":
            flags["force"] = True
        else:
            return None
        i += 1
    return None


def try_fast_launch(args: list[str]) -> int | None:
    """Run ``launch`` (args after the word) on the fast path; None when click must handle the form."""
    parsed = parse_fast_args(args)
    if parsed is None:
        return None
    try:
        return launch_plan_file(parsed)
    except PinctlError as exc:
        print(f"pinctl: error: {exc}", file=sys.stderr)
        return exc.exit_code


def launch_plan_file(a: FastArgs) -> int:
    from pinctl.plan.localrank import detect_local_rank
    from pinctl.plan.validate import check_live_node, load_plan_file, refuse_foreign

    plan = load_plan_file(a.plan)
    rank_index, source = detect_local_rank(os.environ, a.local_rank, len(plan.ranks))
    rank = plan.rank(rank_index)
    if rank is None:  # validated plans hold ranks 0..n-1
        raise UsageError(f"the plan has no local rank {rank_index}")
    problems = check_live_node(plan, rank)
    refuse_foreign(problems, force=a.force)
    for p in problems:
        print(f"pinctl: warning: {p} (--force)", file=sys.stderr)
    from pinctl.act.launch import spec_for_rank

    spec = spec_for_rank(rank, a.argv, source)
    return run_spec(spec, dict(os.environ), verbose=a.verbose, dry_run=a.dry_run, force=a.force)


def run_spec(
    spec: LaunchSpec,
    base_env: dict[str, str],
    *,
    verbose: bool,
    dry_run: bool,
    force: bool,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Print (``--dry-run``) or apply, verify and exec one LaunchSpec; shared by the fast and click paths."""
    from pinctl.act.launch import build_env, describe, summary
    from pinctl.act.syscalls import bind_self, exec_command

    out = out or sys.stdout
    err = err or sys.stderr
    if dry_run:
        for line in describe(spec):
            print(line, file=out)
        return 0
    if verbose:
        print(f"pinctl: {summary(spec)}", file=err)
    for problem in bind_self(spec.binding, force=force):
        print(f"pinctl: warning: binding did not take: {problem} (--force)", file=err)
    exec_command(spec.argv, build_env(base_env, spec.env))
