"""Entry point: dispatch to the click CLI, except on the ``launch`` fast path.

``pinctl launch --plan FILE -- CMD`` is on every job's start path, so it is
handled before click (about 37 ms of imports) is loaded; see pinctl/cli/fast.py.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["launch"]:
        try:
            from pinctl.cli.fast import try_fast_launch
        except ImportError:  # fast path not built yet: fall through to click
            pass
        else:
            rc = try_fast_launch(args[1:])
            if rc is not None:
                return rc
    elif args[:1] == ["pin"]:  # plain `pin PID... --cpus LIST` re-pins without click too (pinctl/cli/fastpin.py)
        from pinctl.cli.fastpin import try_fast_pin

        rc = try_fast_pin(args[1:])
        if rc is not None:
            return rc
    from pinctl.cli.app import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
