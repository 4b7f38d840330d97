"""Invariants of the fleet verdict, over generated shapes: what holds for any fleet, not one fixture."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pinctl.fleet import read
from pinctl.fleet.compare import HOST_SAMPLE, Tally, differences
from pinctl.fleet.read import split
from pinctl.fleet.shape import Shape

KEYS = ["count.gpus", "gpu.0000:1b:00.0.pcie_width", "nic.mlx5_0.rate", "numa.nps", "kernel.thp_defrag"]
VALUES = ["a", "b", "c"]

shapes = st.lists(st.sampled_from(VALUES), min_size=len(KEYS), max_size=len(KEYS)).map(
    lambda values: tuple((k, k, v, "") for k, v in zip(KEYS, values, strict=True))
)
checks = st.sampled_from([(), (("rdma.port-down", "warn", "mlx5_1 port 1", "port is DOWN"),)])


def tally(nodes: list[tuple[str, Shape, tuple]], reference: tuple | None = None) -> Tally:  # type: ignore[type-arg]
    t = Tally(reference)
    for host, shape, problems in nodes:
        t.add(host, shape, problems)
    return t


@given(shapes)
def test_a_shape_does_not_differ_from_itself(shape: Shape) -> None:
    assert differences(shape, shape, 1, 1) == ()


@given(shapes, shapes)
def test_every_differing_fact_is_said_once(a: Shape, b: Shape) -> None:
    diffs = differences(a, b, 1, 2)
    assert sorted(d.key for d in diffs) == sorted(k for (k, _, v, _), (_, _, w, _) in zip(a, b, strict=True) if v != w)


@given(st.lists(st.tuples(shapes, checks), min_size=1, max_size=12), st.randoms(use_true_random=False))
def test_the_verdict_does_not_depend_on_report_order(fleet: list, rnd) -> None:  # type: ignore[no-untyped-def,type-arg]
    nodes = [(f"n{i}", s, c) for i, (s, c) in enumerate(fleet)]
    shuffled = list(nodes)
    rnd.shuffle(shuffled)
    a, b = tally(nodes).verdict(), tally(shuffled).verdict()
    assert a.nodes == b.nodes == len(nodes) == sum(g.nodes for g in a.groups)
    assert [(o.node, o.differences, o.new) for o in a.outliers] == [(o.node, o.differences, o.new) for o in b.outliers]
    assert sorted((g.shape, g.nodes, g.reference) for g in a.groups) == sorted(
        (g.shape, g.nodes, g.reference) for g in b.groups
    )


@given(shapes, shapes, checks, st.integers(2, 30))
def test_one_odd_node_among_twins_is_the_only_one_named(
    twin: Shape,
    odd: Shape,
    problems: tuple,  # type: ignore[type-arg]
    twins: int,
) -> None:
    nodes = [(f"twin{i}", twin, ()) for i in range(twins)] + [("odd", odd, problems)]
    v = tally(nodes).verdict()
    expected = [] if odd == twin and not problems else ["odd"]
    assert [o.node for o in v.outliers] == expected
    if odd != twin:
        assert v.outliers[0].differences and all(
            "fleet" in d.text or "nodes have" in d.text for d in v.outliers[0].differences
        )


@given(shapes, st.lists(shapes, min_size=1, max_size=10))
def test_against_a_reference_exactly_the_unlike_nodes_are_odd(ref: Shape, fleet: list[Shape]) -> None:
    v = tally([(f"n{i}", s, ()) for i, s in enumerate(fleet)], ("ref", ref, ())).verdict()
    assert sorted(o.node for o in v.outliers) == sorted(f"n{i}" for i, s in enumerate(fleet) if s != ref)


@given(shapes, st.integers(0, 40))
def test_with_a_reference_twins_are_counted_not_kept(ref: Shape, twins: int) -> None:
    """Memory follows shapes and odd nodes when the reference is known from the start (--expect)."""
    t = tally([(f"n{i}", ref, ()) for i in range(twins)], ("ref", ref, ()))
    assert sum(len(m.hosts) for m in t.groups.values()) == min(twins, HOST_SAMPLE)
    v = t.verdict()
    assert v.nodes == twins and v.outliers == () and [g.nodes for g in v.groups] == ([twins] if twins else [])


def test_a_node_whose_discovery_failed_is_said_once_with_its_kernel_differences() -> None:
    full: Shape = (
        ("count.gpus", "GPUs", "8", ""),
        ("gpu.x.model", "GPU 0 model", "h100", "GPU 0 (x)"),
        ("kernel.thp_defrag", "THP defrag", "madvise", ""),
    )
    failed: Shape = (
        ("topology", "topology", "unknown (discovery failed)", ""),
        ("kernel.thp_defrag", "THP defrag", "always", ""),
    )
    assert [d.text for d in differences(failed, full, 9, 10)] == [
        "topology unknown (discovery failed), fleet known",
        "THP defrag always, fleet madvise",
    ]


def test_a_device_with_fewer_facts_is_not_called_missing_or_extra() -> None:
    """A GPU whose link the reference could not read differs in that fact only; a new GPU is extra once."""
    ref: Shape = (("gpu.b.model", "GPU 0 model", "h100", "GPU 0 (b)"),)
    node: Shape = (
        ("gpu.b.model", "GPU 0 model", "h100", "GPU 0 (b)"),
        ("gpu.b.pcie_width", "GPU 0 PCIe", "x16", "GPU 0 (b)"),
        ("gpu.c.model", "GPU 1 model", "h100", "GPU 1 (c)"),
        ("gpu.c.pcie_width", "GPU 1 PCIe", "x16", "GPU 1 (c)"),
    )
    assert [d.text for d in differences(node, ref, 1, 2)] == [
        "GPU 0 PCIe x16, fleet unknown",
        "GPU 1 (c) extra, fleet has none",
    ]
    assert [d.text for d in differences(ref, node, 1, 2)] == [
        "GPU 0 PCIe unknown, fleet x16",
        "GPU 1 (c) missing, fleet has it",
    ]


texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
reports = st.builds(
    lambda host, subject, level: {
        "schema": "pinctl.doctor/v2",
        "hostname": host,
        "inventory": {"hardware": None, "kernel": None},
        "findings": [{"check": "x.y", "level": level, "subject": subject, "summary": "{\n}"}],
    },
    texts,
    texts,
    st.sampled_from(["ok", "warn", "fail"]),
)


@given(st.lists(reports, max_size=6), st.booleans())
def test_concatenated_reports_split_back_into_the_same_reports(docs: list, indent: bool) -> None:  # type: ignore[type-arg]
    """srun's indented documents one after another, or JSON Lines: each report comes back whole."""
    stream = "".join(json.dumps(d, indent=2 if indent else None) + "\n" for d in docs)
    got = list(split(io.StringIO(stream), "<stdin>"))
    assert [r.data for r in got] == docs and all(r.error is None for r in got)


@given(st.lists(reports, min_size=1, max_size=4), st.integers(1, 64))
def test_chunk_boundaries_do_not_matter(docs: list, chunk: int) -> None:  # type: ignore[type-arg]
    stream = "\n".join(json.dumps(d, indent=2) for d in docs) + "\n"
    old = read.CHUNK
    try:
        read.CHUNK = chunk
        got = list(split(io.StringIO(stream), "<stdin>"))
    finally:
        read.CHUNK = old
    assert [r.data for r in got] == docs


def test_an_oversized_document_is_named_and_the_next_one_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read, "MAX_REPORT", 400)
    monkeypatch.setattr(read, "CHUNK", 64)
    good = {"schema": "pinctl.doctor/v2", "hostname": "n1", "inventory": {}, "findings": []}
    stream = "{\n" + '  "pad": 1,\n' * 100 + '  "end": 0\n}\n' + json.dumps(good) + "\n"
    got = list(split(io.StringIO(stream), "<stdin>"))
    assert [(r.source, r.error is not None and "over" in r.error) for r in got] == [
        ("<stdin>:1", True),
        ("<stdin>:104", False),
    ]
    assert got[1].data == good
