"""Small things a new user reads: counts agree with their nouns, usage is not an error, bad values and
libhwloc failures say what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pinctl.cli.main import main
from pinctl.cpuset import parse_list
from pinctl.discovery.hwloc.isolated import _reason
from pinctl.errors import TopologyError, UsageError
from pinctl.words import count, every, named, said


@given(st.integers(min_value=0, max_value=10_000))
def test_counts_agree_with_their_noun(n: int) -> None:
    assert count(n, "rank") == (f"{n} rank" if n == 1 else f"{n} ranks")
    assert ("all 1 " not in every(n, "GPU", "has", "have")) and every(n, "GPU", "has", "have").endswith(
        "has" if n == 1 else "have"
    )


@given(st.frozensets(st.integers(min_value=0, max_value=512), min_size=1, max_size=40))
def test_a_listed_noun_agrees_with_its_list(cpus: frozenset[int]) -> None:
    text = said("CPU", cpus, "is", "are")
    one = len(cpus) == 1
    assert text.startswith("CPU " if one else "CPUs ") and text.endswith(" is" if one else " are")
    assert parse_list(named("CPU", cpus).split(" ", 1)[1]) == cpus


def test_bare_pinctl_prints_usage_not_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main([])
    out, err = capsys.readouterr()
    assert rc == 2 and (out + err).lstrip().startswith("Usage: pinctl") and "pinctl: error" not in (out + err)


@pytest.mark.parametrize(
    ("value", "says"), [("-1", "'-1' is negative"), ("2-", "range '2-' has no end"), ("1,,2", "empty element")]
)
def test_a_bad_list_says_what_is_wrong(value: str, says: str) -> None:
    with pytest.raises(UsageError, match=says) as info:
        parse_list(value, what="--gpus list")
    assert "''" not in str(info.value)


def test_gpus_minus_one_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    xml = Path(__file__).resolve().parents[1] / "fixtures" / "hwloc" / "dgx-h100.xml"
    rc = main(["plan", "--topology", str(xml), "--gpus", "-1"])
    err = capsys.readouterr().err
    assert rc == 2 and err == "pinctl: error: malformed --gpus list '-1': '-1' is negative (numbers start at 0)\n"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["-C", "4095"], "--physcpubind: CPU 4095 is not in the allowed cpuset"),
        (["-N", "63"], "--cpunodebind: node 63 is not in the online nodes"),
        (["-m", "62,63"], "--membind: nodes 62-63 are not in the allowed mems"),
    ],
)
def test_launch_options_count_what_they_list(capsys: pytest.CaptureFixture[str], argv: list[str], says: str) -> None:
    rc = main(["launch", *argv, "--", "true"])
    err = capsys.readouterr().err
    assert rc == 2 and says in err and len(err.splitlines()) == 1


def test_an_empty_gpu_in_a_list_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    xml = Path(__file__).resolve().parents[1] / "fixtures" / "hwloc" / "dgx-h100.xml"
    rc = main(["plan", "--topology", str(xml), "--gpus", "0,,1"])
    err = capsys.readouterr().err
    assert rc == 2 and err == "pinctl: error: malformed --gpus list '0,,1': empty element\n"


def test_fleet_usage_shows_its_paths_as_optional(capsys: pytest.CaptureFixture[str]) -> None:
    """fleet reads standard input without a PATH, so its usage must not say PATH is required."""
    assert main(["fleet", "--help"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "Usage: pinctl fleet [OPTIONS] [PATH]..."


@pytest.mark.parametrize(
    ("command", "fmt"),
    [(["doctor", "--only", "node"], "prometheus"), (["doctor", "--only", "node"], "table"), (["plan"], "env")],
)
def test_two_outputs_at_once_are_refused_in_one_sentence(
    capsys: pytest.CaptureFixture[str], command: list[str], fmt: str
) -> None:
    """plan said "--json conflicts with --format env", doctor another sentence: one rule, one wording."""
    rc = main([*command, "--format", fmt, "--json"])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    assert captured.err == f"pinctl: error: --json and --format {fmt} ask for two outputs: give one\n"


def test_errno_zero_is_no_reason() -> None:
    assert _reason(OSError(0, "Success")) == "no reason given"
    assert _reason(ValueError("Success")) == "no reason given"
    assert _reason(ValueError("Invalid argument\nmore")) == "Invalid argument"


def test_libhwlocs_own_reason_is_kept(tmp_path: Path) -> None:
    """A gathered tree without CPU topology: libhwloc says so on its stderr, and that is the reason shown."""
    pytest.importorskip("pyhwloc")
    from pinctl.api import discover

    (tmp_path / "sys" / "devices" / "system" / "cpu").mkdir(parents=True)
    (tmp_path / "proc").mkdir()
    with pytest.raises(TopologyError) as info:
        discover(root=str(tmp_path), nvml=False)
    assert "cpu topology" in str(info.value) and "Success" not in str(info.value)


def test_debug_is_named_where_it_exists() -> None:
    """`--debug` is the group's option (`pinctl --debug show`); `pinctl show --debug` is a usage error."""
    import re

    root = Path(__file__).resolve().parents[1]
    texts = [p.read_text() for p in [*root.glob("docs/*.md"), root / "README.md", *root.glob("pinctl/**/*.py")]]
    misplaced = re.compile(r"pinctl (?:show|plan|doctor|check|launch|pin)[^`\n]*--debug")
    wrong = [m.group(0) for t in texts for m in misplaced.finditer(t)]
    assert wrong == []
    assert main(["show", "--debug"]) == 2


def test_the_group_debug_option_reaches_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    xml = Path(__file__).resolve().parents[1] / "fixtures" / "hwloc" / "dgx-h100.xml"
    assert main(["--debug", "show", "--topology", str(xml)]) == 0
    assert "dgx-h100-01" in capsys.readouterr().out


class _Tty:
    """A stderr that says it is a terminal."""

    def __init__(self) -> None:
        self.text = ""

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        return 2

    def write(self, s: str) -> int:
        self.text += s
        return len(s)


@given(st.frozensets(st.integers(min_value=0, max_value=999), min_size=1, max_size=80), st.integers(30, 120))
def test_notes_on_a_terminal_wrap_without_cutting_a_list(cpus: frozenset[int], width: int) -> None:
    import os
    import sys

    from pinctl.cli import output
    from pinctl.cpuset import format_list

    listed = format_list(cpus)
    tty, saved_err, saved_cols = _Tty(), sys.stderr, os.environ.get("COLUMNS")
    try:
        sys.stderr, os.environ["COLUMNS"] = tty, str(width)  # type: ignore[assignment]
        output.note(f"rank 0's CPUs {listed} are not on NUMA node 0 here")
    finally:
        sys.stderr = saved_err
        if saved_cols is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved_cols
    lines = tty.text.splitlines()
    assert all(len(line) <= width for line in lines)
    rebuilt = ""
    for i, line in enumerate(lines):
        part = line[4:] if i else line
        rebuilt += part if rebuilt.endswith(",") else (" " + part if rebuilt else part)
    assert rebuilt == f"note: rank 0's CPUs {listed} are not on NUMA node 0 here"


def test_a_mistyped_command_names_the_one_meant(capsys: pytest.CaptureFixture[str]) -> None:
    """`pinctl plna` said only "No such command 'plna'.", where a mistyped option gets "Did you mean"."""
    assert main(["plna"]) == 2
    said = capsys.readouterr().err
    assert said == "pinctl: error: No such command 'plna'. Did you mean 'plan'? (see 'pinctl --help')\n"
    assert main(["bogus"]) == 2
    assert capsys.readouterr().err == "pinctl: error: No such command 'bogus'. (see 'pinctl --help')\n"
