"""``pinctl fleet`` over a generated fleet: exactly the planted nodes are named, each with its difference.

The trees come from fixtures/gen_fleet.py (healthy twins plus one deviation per planted node),
each judged by ``pinctl doctor --root --json`` as a node would judge itself.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import jsonschema
import pytest
from fleet_helpers import HEALTHY, REPO, run_cli

from pinctl.cli.fleet import tally
from pinctl.fleet.read import read_paths
from pinctl.render.fleet import draw

# planted node -> (a difference it must show, or None: none at all; the doctor checks it alone warns or fails)
EXPECTED = {
    "node-gpu-lost": ("3 GPUs, 6 of 16 nodes have 4", None),
    "node-hca-hdr": ("mlx5_2 200 Gb/s, fleet 400 Gb/s", None),
    "node-gpu-x8": ("GPU 1 PCIe x8, fleet x16", "pcie.link-degraded"),
    "node-nps2": ("NPS2, fleet NPS1", None),
    # GPU 1 loses the HCA under its own switch: its nearest usable NIC is now NODE away
    "node-port-down": ("mlx5_1 port DOWN, fleet ACTIVE", "rdma.port-down,rdma.no-gdr-path"),
    "node-balancing": ("numa_balancing 1, fleet 0", "kernel.numa-balancing"),
    "node-thp": ("THP defrag always, fleet madvise", "kernel.thp-defrag"),
    "node-powersave": ("governor performance,powersave, fleet performance", "kernel.cpufreq-governor"),
    "node-offline": ("offline CPUs 1, fleet 0", "kernel.offline-cpus"),
    "node-irq-remote": (None, "irq.remote-numa"),  # same shape: odd by its check alone
    "node-isolcpus": ("isolcpus 2-7, fleet unset", None),
}


def verdict(*args: str, stdin: str | None = None) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    rc, out, err = run_cli("fleet", "--json", *args, stdin=stdin)
    return rc, json.loads(out), err


def test_the_planted_nodes_and_only_they_are_named(fleet_reports: dict[str, Path]) -> None:
    folder = next(iter(fleet_reports.values())).parent
    rc, v, _ = verdict(str(folder))
    assert rc == 1
    jsonschema.validate(v, json.loads((REPO / "pinctl" / "schemas" / "fleet-v1.json").read_text()))
    assert v["nodes"] == HEALTHY + len(EXPECTED)
    odd = {o["node"]: o for o in v["outliers"]}
    assert set(odd) == set(EXPECTED)
    for node, (sentence, check) in EXPECTED.items():
        texts = [d["text"] for d in odd[node]["differences"]]
        assert sentence in texts if sentence else texts == [], (node, texts)
        new = {c["check"] for c in odd[node]["checks"] if c["new"]}
        assert new == (set(check.split(",")) if check else set()), (node, new)
    reference = [g for g in v["groups"] if g["reference"]]
    assert len(reference) == 1 and reference[0]["nodes"] == HEALTHY + 1  # node-irq-remote has the healthy shape


def test_a_lost_gpu_is_named_by_its_bus_not_by_shifted_indexes(fleet_reports: dict[str, Path]) -> None:
    folder = next(iter(fleet_reports.values())).parent
    _, v, _ = verdict(str(folder))
    lost = next(o for o in v["outliers"] if o["node"] == "node-gpu-lost")
    assert [d["text"] for d in lost["differences"]] == [
        "3 GPUs, 6 of 16 nodes have 4",
        "GPU 3 (0000:c3:00.0) missing, fleet has it",
    ]


def test_a_healthy_fleet_has_no_odd_node(fleet_reports: dict[str, Path], tmp_path: Path) -> None:
    for name, path in fleet_reports.items():
        if name not in EXPECTED:
            shutil.copy(path, tmp_path / path.name)
    rc, v, _ = verdict(str(tmp_path))
    assert (rc, v["nodes"], v["outliers"], len(v["groups"]), v["duplicates"]) == (0, HEALTHY, [], 1, [])


def test_a_node_reported_twice_is_named(fleet_reports: dict[str, Path]) -> None:
    """Two reports of node-thp (an srun retry, a copied file) make it count twice: say so."""
    stream = "".join(p.read_text() for p in fleet_reports.values()) + fleet_reports["node-thp"].read_text()
    rc, v, _ = verdict(stdin=stream)
    assert rc == 1 and v["nodes"] == len(fleet_reports) + 1 and v["duplicates"] == ["node-thp"]
    rc, out, _ = run_cli("fleet", stdin=stream)
    assert "same host name in more than one report: node-thp " in out


def test_srun_output_on_stdin_is_read_report_by_report(fleet_reports: dict[str, Path]) -> None:
    """What `srun pinctl doctor --json` prints: indented documents one after another."""
    stream = "".join(p.read_text() for p in fleet_reports.values())
    rc, v, _ = verdict(stdin=stream)
    assert rc == 1 and v["nodes"] == len(fleet_reports)
    assert {o["node"] for o in v["outliers"]} == set(EXPECTED)


def test_json_lines_are_read_too(fleet_reports: dict[str, Path]) -> None:
    lines = "".join(json.dumps(json.loads(p.read_text())) + "\n" for p in fleet_reports.values())
    rc, v, _ = verdict("-", stdin=lines)
    assert rc == 1 and v["nodes"] == len(fleet_reports) and {o["node"] for o in v["outliers"]} == set(EXPECTED)


def test_expect_compares_with_the_reference_node(fleet_reports: dict[str, Path]) -> None:
    """Against node-nps2 as the reference, every other node differs in its NPS mode."""
    folder = next(iter(fleet_reports.values())).parent
    rc, v, _ = verdict("--expect", str(fleet_reports["node-nps2"]), str(folder))
    assert rc == 1 and v["reference"] == "node-nps2"
    odd = {o["node"]: o for o in v["outliers"]}
    assert set(odd) == set(fleet_reports) - {"node-nps2"}
    assert "NPS1, reference NPS2" in [d["text"] for d in odd["node-001"]["differences"]]
    assert "2 NUMA nodes, node-nps2 has 4" in [d["text"] for d in odd["node-001"]["differences"]]


def test_unreadable_truncated_and_foreign_reports_are_named_and_skipped(
    fleet_reports: dict[str, Path], tmp_path: Path
) -> None:
    healthy = [p for n, p in fleet_reports.items() if n not in EXPECTED]
    for p in healthy:
        shutil.copy(p, tmp_path / p.name)
    text = healthy[0].read_text()
    (tmp_path / "truncated.json").write_text(text[: len(text) // 2])
    (tmp_path / "foreign.json").write_text(json.dumps({"schema": "pinctl.plan/v1", "ranks": []}))
    (tmp_path / "old.json").write_text(json.dumps({"schema": "pinctl.doctor/v1", "findings": []}))
    (tmp_path / "garbage.json").write_text("{ not json at all\n")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00junk")
    rc, v, err = verdict(str(tmp_path), str(tmp_path / "missing.json"))
    assert rc == 0 and v["nodes"] == HEALTHY and v["outliers"] == []
    reasons = {Path(s["source"]).name.partition(":")[0]: s["reason"] for s in v["skipped"]}
    assert set(reasons) == {"truncated.json", "foreign.json", "old.json", "garbage.json", "binary.json", "missing.json"}
    assert reasons["truncated.json"].startswith("truncated")
    assert "pinctl.plan/v1" in reasons["foreign.json"] and "no inventory" in reasons["old.json"]
    assert reasons["missing.json"] == "no such file or folder"
    for name in reasons:
        assert f"pinctl: warning: skipped {tmp_path / name}" in err


def test_a_truncated_report_in_a_stream_does_not_lose_the_next(fleet_reports: dict[str, Path]) -> None:
    texts = [p.read_text() for n, p in sorted(fleet_reports.items()) if n not in EXPECTED]
    stream = texts[0][:200] + "\n" + "".join(texts[1:])
    rc, v, err = verdict(stdin=stream)
    assert rc == 0 and "<stdin>:1" in err and v["nodes"] == len(texts) - 1 and len(v["skipped"]) == 1
    assert v["skipped"][0]["source"] == "<stdin>:1" and "truncated" in v["skipped"][0]["reason"]


def test_nothing_readable_exits_2(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("nope")
    rc, out, err = run_cli("fleet", str(tmp_path))
    assert rc == 2 and out == ""
    assert err.splitlines()[-1] == "pinctl: error: no report could be read (1 source skipped)"
    rc, out, err = run_cli("fleet", "-", stdin="")
    assert rc == 2 and err == "pinctl: error: no report could be read (the input held none)\n"


def test_plain_view_names_odd_nodes_with_their_differences(fleet_reports: dict[str, Path]) -> None:
    folder = next(iter(fleet_reports.values())).parent
    rc, out, _ = run_cli("fleet", str(folder))
    assert rc == 1 and out.startswith(f"{HEALTHY + len(EXPECTED)} nodes, ")
    lines = out.splitlines()
    i = lines.index("node-hca-hdr")
    assert lines[i + 1].strip() == "mlx5_2 200 Gb/s, fleet 400 Gb/s"


def test_expect_of_a_bad_reference_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "ref.json").write_text("[]")
    rc, _, err = run_cli("fleet", "--expect", str(tmp_path / "ref.json"), str(tmp_path))
    assert rc == 2 and err.startswith("pinctl: error: --expect") and err.count("\n") == 1


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_the_rich_tables(fleet_reports: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "200")
    t = tally(read_paths([str(next(iter(fleet_reports.values())).parent)], io.StringIO()))
    buf = FakeTTY()
    draw(t.verdict(), buf)
    text = buf.getvalue()
    assert "\x1b[" in text and "odd nodes" in text and "node-hca-hdr" in text
    assert "mlx5_2 200 Gb/s, fleet 400 Gb/s" in text


def test_no_path_on_a_terminal_is_refused_rather_than_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", FakeTTY())
    rc, out, err = run_cli("fleet")
    assert rc == 2 and out == "" and err.startswith("pinctl: error: no PATH given")


@pytest.mark.parametrize("columns", [60, 80])
def test_a_narrow_terminal_keeps_host_names_and_bus_ids_whole(
    fleet_reports: dict[str, Path], monkeypatch: pytest.MonkeyPatch, columns: int
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", str(columns))
    t = tally(read_paths([str(next(iter(fleet_reports.values())).parent)], io.StringIO()))
    buf = FakeTTY()
    draw(t.verdict(), buf)
    screen = re.sub(r"\x1b\[[0-9;]*m", "", buf.getvalue())
    assert max(len(line) for line in screen.splitlines()) <= columns
    words = {w.strip(",│┃ ") for line in screen.splitlines() for w in line.split()}
    for node in EXPECTED:
        assert node in words, f"{node} cut or missing at {columns} columns"
    assert "0000:c3:00.0" in screen  # the lost GPU's bus id, whole
