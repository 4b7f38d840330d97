"""A generated fleet (fixtures/gen_fleet.py) and each node's ``pinctl doctor --root --json`` report.

Built once per test session: generating the trees and running doctor on each takes seconds.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

from pinctl.cli.app import run

REPO = Path(__file__).resolve().parents[1]
HEALTHY = 5


def generate(outdir: Path, healthy: int = HEALTHY) -> list[Path]:
    subprocess.run(
        [sys.executable, str(REPO / "fixtures" / "gen_fleet.py"), str(outdir), str(healthy)],
        check=True,
        capture_output=True,
    )
    return sorted(p for p in outdir.iterdir() if p.is_dir())


def run_cli(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """``pinctl ARGS`` in this process, with its stdout, stderr and (optionally) standard input."""
    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    try:
        if stdin is not None:
            sys.stdin = io.StringIO(stdin)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = run(list(args))
    finally:
        sys.stdin = old_stdin
    return rc, out.getvalue(), err.getvalue()


def doctor_reports(trees: list[Path], outdir: Path) -> dict[str, Path]:
    """tree name -> the file holding its doctor --json report."""
    outdir.mkdir(parents=True, exist_ok=True)
    reports = {}
    for tree in trees:
        rc, out, err = run_cli("doctor", "--root", str(tree), "--json")
        assert rc in (0, 1, 2) and out.startswith("{"), err
        path = outdir / f"{tree.name}.json"
        path.write_text(out)
        reports[tree.name] = path
    return reports
