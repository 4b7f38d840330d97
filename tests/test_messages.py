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
        "has" if n == 1 else "have")


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


@pytest.mark.parametrize(("value", "says"), [("-1", "'-1' is negative"), ("2-", "range '2-' has no end"),
                                             ("1,,2", "empty element")])
def test_a_bad_list_says_what_is_wrong(value: str, says: str) -> None:
    with pytest.raises(UsageError, match=says) as info:
        parse_list(value, what="--gpus list")
    assert "''" not in str(info.value)


def test_gpus_minus_one_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    xml = Path(__file__).resolve().parents[1] / "fixtures" / "hwloc" / "dgx-h100.xml"
    rc = main(["plan", "--topology", str(xml), "--gpus", "-1"])
    err = capsys.readouterr().err
    assert rc == 2 and err == "pinctl: error: malformed --gpus list '-1': '-1' is negative (numbers start at 0)\n"


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
