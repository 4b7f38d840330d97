"""The click CLI: parses, calls the library (pinctl.api), prints through pinctl.render, exits.

Subcommands live in one module each and are imported only when invoked, so
``pinctl show`` does not pay for the planner and ``pinctl plan`` not for doctor.
:func:`run` is where every error becomes one line and an exit code
(pinctl.cli.output), click's own usage errors included.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import sys
from typing import Any

import click

from pinctl.cli.output import error, fail, note
from pinctl.errors import PinctlError

# name -> "module:attribute" of a click.Command
COMMANDS: dict[str, str] = {
    "show": "pinctl.cli.show:show",
    "snapshot": "pinctl.cli.show:snapshot",
    "plan": "pinctl.cli.plan:plan",
    "launch": "pinctl.cli.launch:launch",
    "pin": "pinctl.cli.pin:pin",
    "check": "pinctl.cli.check:check",
    "doctor": "pinctl.cli.doctor:doctor",
    "fleet": "pinctl.cli.fleet:fleet",
    "watch": "pinctl.cli.watch:watch",
    "noise": "pinctl.cli.noise:noise",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if _available(name)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None
            raise
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command


def _available(name: str) -> bool:
    module_name = COMMANDS[name].partition(":")[0]
    return importlib.util.find_spec(module_name) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Say which discovery engine ran when pyhwloc is absent (also a command's own -v).",
)
@click.version_option(package_name="pinctl")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: bool) -> None:
    """Topology-aware process pinning for GPU nodes."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _group_args(args: list[str]) -> list[str]:
    """The arguments before the command name: the only place ``--debug`` is the group's."""
    for i, arg in enumerate(args):
        if not arg.startswith("-"):
            return args[:i]
    return args


def _verbose(args: list[str]) -> bool:
    """``-v`` for the group or the command (not in the launched command's argv after ``--``)."""
    own = args[: args.index("--")] if "--" in args else args
    return "-v" in own or "--verbose" in own


def run(args: list[str]) -> int:
    """Run the CLI; under ``-v``, say which discovery engine ran when pyhwloc is absent."""
    if not _verbose(args):
        return _run(args)
    from pinctl.discovery import engine

    engine.listener = note
    try:
        return _run(args)
    finally:
        engine.listener = None


def _run(args: list[str]) -> int:
    """Run the CLI and turn pinctl errors into one-line messages and exit codes."""
    debug = "--debug" in _group_args(args)
    try:
        result: Any = cli.main(args=args, prog_name="pinctl", standalone_mode=False)
    except PinctlError as exc:
        if debug:
            raise
        return fail(exc)
    except click.exceptions.Abort:
        return error("aborted", 130)
    except click.exceptions.NoArgsIsHelpError as exc:
        # Bare `pinctl`: the usage is the answer, not an error about it.
        sys.stderr.write(exc.format_message() + "\n")
        return exc.exit_code
    except click.UsageError as exc:
        # One line, like every other error: the usage banner hides the message in scripts' logs.
        hint = f" (see 'pinctl {exc.ctx.info_name} --help')" if exc.ctx and exc.ctx.parent else " (see 'pinctl --help')"
        return error(f"{exc.format_message()}{_did_you_mean(exc)}{hint}", exc.exit_code)
    except click.ClickException as exc:
        return error(exc.format_message(), exc.exit_code)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except BrokenPipeError:
        sys.stderr.close()
        return 141
    return result if isinstance(result, int) else 0


def _did_you_mean(exc: click.UsageError) -> str:
    """`pinctl plna`: name the command meant, as click does for a mistyped option."""
    typed = exc.format_message().removeprefix("No such command '").removesuffix("'.")
    if exc.ctx is None or exc.ctx.parent or typed == exc.format_message():
        return ""
    near = difflib.get_close_matches(typed, cli.list_commands(exc.ctx), n=1)
    return f" Did you mean '{near[0]}'?" if near else ""
