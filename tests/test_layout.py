"""Fitting tables to a width (pinctl.render.layout): a value is never split, and what fits stays inside."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pinctl.cpuset import format_list
from pinctl.render.layout import GLUE, fit, fold, min_width, natural_width, pieces, stacked, wrap

cpusets = st.frozensets(st.integers(min_value=0, max_value=300), min_size=1, max_size=60)
words = st.text(alphabet="abcdefghij0123456789:.-/", min_size=1, max_size=14)


@given(cpusets, st.integers(min_value=8, max_value=200))
def test_a_wrapped_cpu_list_breaks_only_after_commas(cpus: frozenset[int], width: int) -> None:
    text = format_list(cpus)
    lines = wrap(text, width)
    assert "".join(lines) == text
    assert all(line.endswith(",") for line in lines[:-1])
    assert all(len(line) <= width for line in lines if len(line.split(",")) > 1 or len(line) <= width)


@given(st.lists(words, min_size=1, max_size=12), st.integers(min_value=1, max_value=80))
def test_wrapping_text_keeps_every_word_whole(ws: list[str], width: int) -> None:
    text = " ".join(ws)
    lines = wrap(text, width)
    assert " ".join(lines).split() == ws
    assert all(len(line) <= max(width, min_width(text)) for line in lines)


def test_glued_words_stay_together_and_print_with_a_space() -> None:
    name = GLUE.join(["NVIDIA", "H100", "80GB", "HBM3"])
    assert wrap(f"{name} 79.2{GLUE}GiB", 10) == ["NVIDIA H100 80GB HBM3", "79.2 GiB"]
    assert pieces("0-3,8 a") == ["0-3,", "8 ", "a"]


cell = st.one_of(words, cpusets.map(format_list))


@given(st.integers(min_value=1, max_value=6).flatmap(
    lambda n: st.tuples(st.just(n), st.lists(st.lists(cell, min_size=n, max_size=n), min_size=1, max_size=5))),
    st.integers(min_value=20, max_value=220))  # fmt: skip
def test_fit_gives_widths_that_hold_every_piece_and_fit_the_width(case: tuple[int, list[list[str]]],
                                                                  width: int) -> None:  # fmt: skip
    n, rows = case
    headers = tuple(f"h{i}" for i in range(n))
    grid = fit(headers, rows, width, per_column=3, fixed=1, optional=("h1",))
    needed = [max(min_width(h), *(min_width(r[i]) for r in rows)) for i, h in enumerate(headers)]
    if grid is None:
        kept = [i for i in range(n) if i != 1]
        assert sum(needed[i] for i in kept) + 3 * len(kept) + 1 > width
        return
    assert sum(grid.widths) + 3 * len(grid.keep) + 1 <= width
    for i, w in zip(grid.keep, grid.widths, strict=True):
        assert w >= needed[i]
        assert all(len(line) <= w for r in rows for line in wrap(r[i], w))
    if n > 1 and 1 not in grid.keep:
        # The optional column goes only when the table could not be drawn unwrapped with it.
        naturals = [max(natural_width(h), *(natural_width(r[i]) for r in rows)) for i, h in enumerate(headers)]
        assert sum(naturals) + 3 * n + 1 > width


def test_a_stacked_row_names_each_field() -> None:
    lines = stacked(("rank", "cpulist", "NIC"), ("3", "0-13,112-125", "-"), 18)
    assert lines[0] == "rank 3" and lines[1].split() == ["cpulist:", "0-13,"] and lines[2].strip() == "112-125"
    assert not any("NIC" in line for line in lines)  # an empty field is left out


def test_fold_leaves_a_pipe_alone_and_indents_continuations() -> None:
    line = "note: rank 0's CPUs 2-13,112-125 are not on NUMA node 0 here"
    assert fold([line], None) == [line]
    assert fold([line], 24) == ["note: rank 0's CPUs", "  2-13,112-125 are not", "  on NUMA node 0 here"]


@given(st.lists(st.one_of(words, cpusets.map(format_list)), min_size=1, max_size=15), st.integers(20, 120))
def test_folded_lines_join_back_to_the_line(ws: list[str], width: int) -> None:
    line = " ".join(ws)
    folded = fold([line], width)
    rebuilt = ""
    for i, x in enumerate(folded):
        part = x[2:] if i else x
        rebuilt += part if not rebuilt or rebuilt.endswith(",") else " " + part
    assert rebuilt == line and all(len(x) <= max(width, min_width(line) + 2) for x in folded)


def test_a_whole_column_is_never_wrapped() -> None:
    """A CPU list is copied into taskset: the table gives up (is stacked) before splitting one."""
    rows = [("0", "0-13,112-125", "mlx5_0")]
    grid = fit(("rank", "cpulist", "NIC"), rows, 34, per_column=3, fixed=1, whole=("cpulist",))
    assert grid is not None and grid.widths[1] == len("0-13,112-125")
    assert fit(("rank", "cpulist", "NIC"), rows, 28, per_column=3, fixed=1, whole=("cpulist",)) is None
    assert fit(("rank", "cpulist", "NIC"), rows, 28, per_column=3, fixed=1) is not None  # it could be wrapped


def test_optional_columns_go_before_any_cell_is_wrapped() -> None:
    rows = [("GPU0", "0000:1b:00.0", "0000:17:01.0 > 0000:16:00.0")]
    grid = fit(("device", "PCI", "bridges"), rows, 40, per_column=3, fixed=1, optional=("bridges",))
    assert grid is not None and grid.keep == (0, 1)
