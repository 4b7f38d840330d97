"""Entry point: the click-free fast paths first, then the click CLI.

``pinctl launch --plan FILE -- CMD`` is on every job's start path and plain
``pinctl pin PID --cpus LIST`` is run in loops, so both are tried before click
(about 37 ms of imports) loads; see pinctl/cli/fast.py. Each path is imported
only once it is chosen, so ``pinctl show`` pays nothing for the fast paths and
``launch`` nothing for click.
"""

from __future__ import annotations

import sys

from pinctl.cli import streams


def main(argv: list[str] | None = None) -> int:
    """Run pinctl; a closed, full or abandoned standard output is handled as pinctl.cli.streams says."""
    saved = streams.guard()
    try:
        try:
            code = _dispatch(list(sys.argv[1:] if argv is None else argv))
        except streams.ReaderGone:
            streams.silence()
            return streams.EPIPE_EXIT
        return streams.finish(code)
    finally:
        streams.restore(saved)


def _dispatch(args: list[str]) -> int:
    if args[:1] in (["launch"], ["pin"]):
        from pinctl.cli import fast

        rc = fast.try_fast_launch(args[1:]) if args[0] == "launch" else fast.try_fast_pin(args[1:])
        if rc is not None:
            return rc
    from pinctl.cli.app import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
