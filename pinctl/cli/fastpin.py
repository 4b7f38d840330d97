"""``pin PID... --cpus LIST [--migrate] [--mems NODES]`` without click, and the pin report both paths print.

Re-pinning is often run in a loop over many processes (or from a monitor), so its
plain form, like ``launch --plan``, skips click (~37 ms of imports). Forms that need a
plan (--rank, --gpu, --auto) go to the click command in pinctl/cli/pin.py.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from pinctl.cpuset import format_list, parse_list
from pinctl.errors import BindError, PinctlError, ProcessError, UsageError
from pinctl.kernel.files import Sysfs

Target = tuple[int, frozenset[int], frozenset[int]]  # pid, CPUs, memory nodes for --migrate


@dataclass(frozen=True)
class FastPinArgs:
    pids: tuple[int, ...]
    cpus: str
    mems: str | None = None
    migrate: bool = False
    force: bool = False


def parse_fast_pin(args: list[str]) -> FastPinArgs | None:
    """PIDs plus --cpus/-c LIST and optionally --migrate, --mems NODES; None for any other form."""
    pids: list[int] = []
    values: dict[str, str] = {}
    migrate = False
    force = False
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, inline = arg.partition("=")
        if name in ("--cpus", "-c", "--mems"):
            if eq:
                values[name.lstrip("-")[:1]] = inline
            elif i + 1 < len(args):
                i += 1
                values[name.lstrip("-")[:1]] = args[i]
            else:
                return None
        elif arg == "--migrate":
            migrate = True
        elif arg == "--force":
            force = True
        elif arg.isdigit():
            pids.append(int(arg))
        else:
            return None
        i += 1
    if "c" not in values or not pids:
        return None
    return FastPinArgs(tuple(pids), values["c"], values.get("m"), migrate, force)


def try_fast_pin(args: list[str]) -> int | None:
    """Run ``pin`` (args after the word) without click; None when the click command must handle the form."""
    parsed = parse_fast_pin(args)
    if parsed is None:
        return None
    try:
        fs = Sysfs()
        if parsed.mems is not None and not parsed.migrate:
            raise UsageError("--mems only names the nodes for --migrate: another process's memory policy cannot be set")
        if any(p <= 0 for p in parsed.pids):
            raise UsageError("0 is not a process id")
        cpus = cpus_option(parsed.cpus, fs)
        mems = mems_option(parsed.mems, fs) if parsed.mems is not None else nodes_of(cpus, fs)
        targets = [(pid, cpus, mems) for pid in parsed.pids]
        return pin_targets(targets, migrate=parsed.migrate, fs=fs, force=parsed.force)
    except PinctlError as exc:
        print(f"pinctl: error: {exc}", file=sys.stderr)
        return exc.exit_code


def cpus_option(text: str, fs: Sysfs) -> frozenset[int]:
    """--cpus LIST: numactl syntax, 'all' = online CPUs; every CPU must be online."""
    online_text = fs.read("/sys/devices/system/cpu/online")
    online = parse_list(online_text, what="online CPU list") if online_text else None
    cpus = parse_list(text, what="--cpus CPU list", all_values=online)
    if not cpus:
        raise UsageError("--cpus: empty CPU list")
    if online is not None and cpus - online:
        raise UsageError(f"--cpus: CPUs {format_list(cpus - online)} are not online ({format_list(online)})")
    return cpus


def mems_option(text: str, fs: Sysfs) -> frozenset[int]:
    from pinctl.kernel.proc import online_nodes

    online = online_nodes(fs)
    nodes = parse_list(text, what="--mems node list", all_values=online)
    if not nodes or nodes - online:
        raise UsageError(
            f"--mems: nodes {format_list(nodes - online) or '(none)'} are not online ({format_list(online)})"
        )
    return nodes


def nodes_of(cpus: frozenset[int], fs: Sysfs) -> frozenset[int]:
    """NUMA nodes holding any of *cpus*: where --migrate moves pages when no --mems is given."""
    from pinctl.kernel.proc import node_cpus, online_nodes

    return frozenset(n for n in online_nodes(fs) if (node_cpus(fs, n) or frozenset()) & cpus)


PF_KTHREAD = 0x00200000  # include/linux/sched.h: the task is a kernel thread


def system_process(pid: int, fs: Sysfs) -> str | None:
    """Why *pid* must not be re-pinned by accident (init, a kernel thread), or None.

    taskset would do it as root; a typo in a PID list should not move init or kworkers.
    """
    if pid == 1:
        return "is init"
    stat = fs.read(f"/proc/{pid}/stat")
    if stat is None or ")" not in stat:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    # after the ')' come state, ppid, pgrp, session, tty_nr, tpgid, flags (proc(5))
    if len(fields) > 6 and fields[6].isdigit() and int(fields[6]) & PF_KTHREAD:
        return "is a kernel thread"
    return None


def pin_targets(targets: Sequence[Target], *, migrate: bool, fs: Sysfs, force: bool = False) -> int:
    """Pin every thread of each target, print one line per process, raise for what was not pinned.

    Init and kernel threads are refused (named in the error) unless *force*.
    """
    from pinctl.act.syscalls import migrate_pages, pin_threads
    from pinctl.kernel.proc import online_nodes, read_status

    failures: list[str] = []
    narrowed: list[str] = []
    for pid, cpus, mems in targets:
        why = None if force else system_process(pid, fs)
        if why is not None:
            failures.append(f"process {pid} {why}: not pinned (--force to pin it anyway)")
            continue
        result = pin_threads(pid, cpus, sysfs=fs)
        if result.missing:
            failures.append(f"process {pid} does not exist")
            continue
        status = read_status(fs, pid)
        name = f" ({status.name})" if status and status.name else ""
        print(f"{pid}{name}: {len(result.pinned)} threads pinned to {format_list(cpus)}")
        if result.failed:
            errors = ", ".join(sorted(set(result.failed.values())))
            failures.append(f"process {pid}{name}: threads {format_list(result.failed)} not pinned ({errors})")
        for tid, got in sorted(result.mismatched.items()):
            narrowed.append(f"process {pid} thread {tid} runs on {format_list(got)}, not {format_list(cpus)}")
        if migrate and not result.failed:
            try:
                left = migrate_pages(pid, online_nodes(fs), mems)
            except ProcessError as exc:
                failures.append(str(exc))
            else:
                print(f"{pid}{name}: pages migrated to node {format_list(mems)}; {left} could not be moved")
    sys.stdout.flush()
    if failures:
        raise ProcessError("not all pinned: " + "; ".join(failures))
    if narrowed:
        raise BindError("binding narrowed by the target's cpuset: " + "; ".join(narrowed[:10]))
    return 0
