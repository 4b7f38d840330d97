"""The click-free fast paths: ``launch --plan FILE -- CMD`` and ``pin PID... --cpus LIST``.

Every rank of every job goes through ``launch --plan``, and re-pinning is often run
in a loop over many processes, so both forms are parsed by hand before click (~37 ms
of imports) loads. They import no click, rich, pyhwloc, pynvml, psutil, jsonschema
or dataclasses (tests/test_quality.py pins the import set); ``launch`` is done with
``execve``, so whatever it imports is paid once per rank. Any other form returns
None and goes to the click command (pinctl/cli/launch.py, pinctl/cli/pin.py).

Both are clients of the library: ``launch --plan`` is :func:`pinctl.api.load_plan`,
:func:`pinctl.api.bind`, then exec. The plan's full node fingerprint needs discovery,
so this path checks what sysfs tells at once (pinctl.job.fit); the click path also
compares the fingerprint.
"""

from __future__ import annotations

import os

from pinctl import api
from pinctl.act.launch import LaunchSpec, build_env, exec_command, spec_for_rank
from pinctl.act.numactl import cpus_option, mems_option, nodes_of
from pinctl.act.pin import PinReport, pin_targets
from pinctl.cli.output import fail, out, say, warn
from pinctl.cpuset import decimal
from pinctl.errors import PinctlError, UsageError
from pinctl.job.fit import refuse_foreign
from pinctl.kernel.files import KernelFiles
from pinctl.kernel.proc import process_id
from pinctl.planfile.allowlist import allowed_names
from pinctl.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~5 ms) on the launch fast path
if TYPE_CHECKING:
    from typing import Final


class FastArgs(Record):
    """``launch --plan FILE [--local-rank N] [--allow-env NAME]... [-v] [--dry-run] [--force] -- CMD...``."""

    __slots__ = ("allow_env", "argv", "dry_run", "force", "local_rank", "plan", "verbose")

    def __init__(
        self, plan: str, argv: tuple[str, ...], local_rank: int | None = None, verbose: bool = False,
        dry_run: bool = False, force: bool = False, allow_env: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        self.allow_env: Final = allow_env
        self.plan: Final = plan
        self.argv: Final = argv
        self.local_rank: Final = local_rank
        self.verbose: Final = verbose
        self.dry_run: Final = dry_run
        self.force: Final = force


def parse_fast_args(args: list[str]) -> FastArgs | None:
    """The fast ``launch`` form, or None for any other."""
    plan: str | None = None
    local_rank: int | None = None
    allow_env: list[str] = []
    flags = {"verbose": False, "dry_run": False, "force": False}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            argv = tuple(args[i + 1 :])
            if plan is None or not argv:
                return None
            return FastArgs(plan, argv, local_rank, allow_env=tuple(allow_env), **flags)
        name, eq, inline = arg.partition("=")
        if name in ("--plan", "--local-rank", "--allow-env"):
            if eq:
                value = inline
            elif i + 1 < len(args):
                i += 1
                value = args[i]
            else:
                return None
            if name == "--plan":
                plan = value
            elif name == "--allow-env":
                allow_env.append(value)
            elif (number := decimal(value, limit=4)) is not None:
                local_rank = number
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
        return fail(exc)


def launch_plan_file(a: FastArgs) -> int:
    base_env = dict(os.environ)
    plan = api.load_plan(a.plan, allowed_names(a.allow_env))
    rank, source = api.select_rank(plan, a.local_rank)
    spec = spec_for_rank(rank, plan.fingerprint, a.argv, source)
    if a.dry_run or a.verbose:
        from pinctl.render.launch import describe, summary  # shlex: only when asked to report

        if a.dry_run:
            problems, _ = api.fit(plan, rank)
            refuse_foreign(problems, force=a.force)
            for p in problems:
                warn(f"{p} (--force)")
            out(describe(spec))
            return 0
        say(summary(spec))
    api.bind(plan, rank.local_rank, force=a.force, set_env=False, warn=lambda w: warn(f"{w} (--force)"))
    exec_command(spec.argv, build_env(base_env, spec.env))


def run_spec(spec: LaunchSpec, base_env: dict[str, str], *, verbose: bool, dry_run: bool, force: bool) -> int:
    """Print (``--dry-run``) or apply, verify and exec one LaunchSpec built from options or a computed plan."""
    from pinctl.render.launch import describe, summary  # shlex: only when asked to report

    if dry_run:
        out(describe(spec))
        return 0
    if verbose:
        say(summary(spec))
    api.bind_to(spec.binding, force=force, warn=lambda w: warn(f"{w} (--force)"))
    exec_command(spec.argv, build_env(base_env, spec.env))


# --- pin ---------------------------------------------------------------------------------------


class FastPinArgs(Record):
    """``pin PID... --cpus/-c LIST [--migrate] [--mems NODES] [--force]``."""

    __slots__ = ("cpus", "force", "mems", "migrate", "pids")

    def __init__(
        self, pids: tuple[int, ...], cpus: str, mems: str | None = None, migrate: bool = False, force: bool = False
    ) -> None:
        self.pids: Final = pids
        self.cpus: Final = cpus
        self.mems: Final = mems
        self.migrate: Final = migrate
        self.force: Final = force


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
        elif (pid := process_id(arg)) is not None:
            pids.append(pid)
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
        files = KernelFiles()
        if parsed.mems is not None and not parsed.migrate:
            raise UsageError("--mems only names the nodes for --migrate: another process's memory policy cannot be set")
        if any(p <= 0 for p in parsed.pids):
            raise UsageError("0 is not a process id")
        cpus = cpus_option(parsed.cpus, files)
        mems = mems_option(parsed.mems, files) if parsed.mems is not None else nodes_of(cpus, files)
        targets = [(pid, cpus, mems) for pid in parsed.pids]
        return report_pins(pin_targets(targets, migrate=parsed.migrate, files=files, force=parsed.force))
    except PinctlError as exc:
        return fail(exc)


def report_pins(report: PinReport) -> int:
    """Print the report's lines, then raise what went wrong (a partial failure is never hidden)."""
    out(report.lines)
    error = report.error()
    if error is not None:
        raise error
    return 0
