"""CPU/node list syntax: what users type (-C, --reserve) and what sysfs writes."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pinctl.cpuset import format_list, format_mask, parse_list, parse_mask
from pinctl.errors import UsageError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0-3,8", {0, 1, 2, 3, 8}),
        ("0-13,112-125", set(range(14)) | set(range(112, 126))),
        (" 5 ", {5}),
        ("0-7:2", {0, 2, 4, 6}),
        ("", set()),
        ("3,1,2", {1, 2, 3}),
    ],
)
def test_parse_list(text: str, expected: set[int]) -> None:
    assert parse_list(text) == expected


@pytest.mark.parametrize("bad", ["a", "1-", "-3", "3-1", "1,,2", "0-3:0", "5:2", "1.5", "99999999"])
def test_malformed_lists_name_the_problem(bad: str) -> None:
    with pytest.raises(UsageError, match="malformed CPU list"):
        parse_list(bad)


def test_all_needs_a_universe() -> None:
    assert parse_list("all", all_values=[0, 1]) == {0, 1}
    with pytest.raises(UsageError):
        parse_list("all")


def test_format_list() -> None:
    assert format_list([3, 0, 1, 2, 8, 10, 11]) == "0-3,8,10-11"
    assert format_list([]) == ""


def test_masks_kernel_and_slurm_forms() -> None:
    # /sys/.../local_cpus and NCCL affinity: 32-bit words, most significant first
    assert parse_mask("00000000,00ffffff") == set(range(24))
    assert parse_mask("00000001,00000000") == {32}
    assert parse_mask("0x5") == {0, 2}
    assert format_mask({0, 2}) == "0x5"
    with pytest.raises(UsageError):
        parse_mask("zz")


@given(st.frozensets(st.integers(min_value=0, max_value=4096), max_size=200))
def test_list_round_trip(cpus: frozenset[int]) -> None:
    assert parse_list(format_list(cpus)) == cpus


@given(st.frozensets(st.integers(min_value=0, max_value=1023), max_size=100))
def test_mask_round_trip(cpus: frozenset[int]) -> None:
    assert parse_mask(format_mask(cpus)) == cpus


# The syntax numactl (-C), taskset (--cpu-list) and Slurm (map_cpu ranges, --cpu-bind) all accept.
PORTABLE_LIST = re.compile(r"(\d+(-\d+)?)(,\d+(-\d+)?)*")


@given(st.frozensets(st.integers(min_value=0, max_value=512), min_size=1, max_size=100))
def test_lists_use_only_syntax_every_tool_accepts(cpus: frozenset[int]) -> None:
    """No stride form (0-62:2): numactl and hwloc-calc reject it."""
    text = format_list(cpus)
    assert PORTABLE_LIST.fullmatch(text), text
    bounds = [tuple(map(int, part.split("-"))) for part in text.split(",")]
    assert all(b[0] < b[-1] for b in bounds if len(b) == 2)
    assert all(a[-1] + 1 < b[0] for a, b in itertools.pairwise(bounds))


def test_interleaved_numbering_is_listed_plainly() -> None:
    assert format_list(set(range(0, 8, 2))) == "0,2,4,6"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("!0-1", {2, 4, 6}),  # numactl(8): every allowed CPU except these
        ("+0-1", {0, 2}),  # the first two of the allowed ones, counted from 0
        ("+3", {6}),
        ("!+0", {2, 4, 6}),
        ("!all", set()),
        ("+all", {0, 2, 4, 6}),
    ],
)
def test_numactl_invert_and_relative_forms(text: str, expected: set[int]) -> None:
    assert parse_list(text, all_values=[6, 0, 4, 2]) == expected


@pytest.mark.parametrize(
    ("text", "says"), [("+4", r"\+4 is beyond the 4 allowed \(0,2,4,6\)"), ("+!1", "'!' comes before"),
                       ("!", "no list after '!'"), ("!!1", "each once")]
)  # fmt: skip
def test_numactl_forms_out_of_range_or_malformed(text: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        parse_list(text, all_values=[0, 2, 4, 6])
    with pytest.raises(UsageError, match="not allowed here"):
        parse_list("!1")


def test_a_huge_number_is_too_large_not_a_non_number() -> None:
    with pytest.raises(UsageError, match=r"123456789012345678901234 is too large \(at most 65536\)"):
        parse_list("123456789012345678901234")
    with pytest.raises(UsageError, match="'1x' is not a number"):
        parse_list("1x")
