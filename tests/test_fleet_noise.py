"""``pinctl fleet`` over watch and noise reports: the node with a planted noisy rank is the one named.

Each node's watch stream is real ``watch --json`` output of pinctl's own arithmetic on a generated
/proc tree (fixtures/gen_noise.py): two samples, a rank's own threads, and on the planted node a
neighbour that takes 40% of the rank's CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from fleet_helpers import REPO, run_cli
from noise_helpers import SECOND, node_with_busy_neighbour, two_samples

from pinctl.noise.figures import Target, compute
from pinctl.noise.report import Bounds, noise_doc, watch_doc

FLEET_SCHEMA = json.loads((REPO / "pinctl" / "schemas" / "fleet-v1.json").read_text())
NOISE_SCHEMA = json.loads((REPO / "pinctl" / "schemas" / "noise-v1.json").read_text())
WATCH_SCHEMA = json.loads((REPO / "pinctl" / "schemas" / "watch-v1.json").read_text())


def watch_stream(tmp: Path, host: str, neighbour_ticks: int) -> str:
    """Three intervals of ``watch --json`` for a rank (pid 700, CPU 0) that ran 50 of 100 ticks."""
    before, after = node_with_busy_neighbour(0), node_with_busy_neighbour(0)
    after.thread(700).run_ns = SECOND // 2
    after.thread(500).processor = 0
    after.thread(500).run_ns = neighbour_ticks * SECOND // 100
    after.cpu[0] = [50 + neighbour_ticks, 0, 0, 50 - neighbour_ticks, 0, 0, 0, 0]
    a, b = two_samples(tmp, before, after, pids=(700,))
    figs = [compute(a, b, Target("rank 0 (pid 700)", "rank", frozenset({0}), (700,), local_rank=0), 100)]
    docs = [watch_doc(host, n, float(n), figs, {}, bounds=Bounds()) for n in (1, 2, 3)]
    for d in docs:
        jsonschema.validate(d, WATCH_SCHEMA)
    return "".join(json.dumps(d) + "\n" for d in docs)


def write_fleet(tmp_path: Path, planted: str | None) -> Path:
    folder = tmp_path / "reports"
    folder.mkdir()
    for i in range(6):
        host = f"node-{i:02d}"
        tree = tmp_path / host
        tree.mkdir()
        (folder / f"{host}.jsonl").write_text(watch_stream(tree, host, 40 if host == planted else 1))
    return folder


def test_fleet_names_the_node_with_a_noisy_rank(tmp_path: Path) -> None:
    folder = write_fleet(tmp_path, "node-04")
    rc, out, err = run_cli("fleet", "--json", str(folder))
    v = json.loads(out)
    jsonschema.validate(v, FLEET_SCHEMA)
    lost = v["time_lost"]
    assert rc == 1, err
    assert lost["standing_out"] == ["node-04"] and lost["nodes"] == 6
    top = lost["slowest"][0]
    assert (top["node"], top["kind"], top["lost_pct"], top["reports"]) == ("node-04", "watch", 40.0, 3)
    assert top["subject"] == "rank 0 (pid 700) on CPUs 0"
    rc, text, _ = run_cli("fleet", str(folder))
    assert rc == 1 and "slowest node: node-04" in text


def test_a_quiet_fleet_names_no_node(tmp_path: Path) -> None:
    rc, out, _ = run_cli("fleet", "--json", str(write_fleet(tmp_path, None)))
    v = json.loads(out)
    assert rc == 0 and v["time_lost"]["standing_out"] == [] and v["outliers"] == []


def test_noise_reports_name_the_noisy_node_and_skip_housekeeping_cpus(tmp_path: Path) -> None:
    def cpu(n: int, lost: float, cls: str | None = None) -> dict[str, object]:
        return {"cpu": n, "class": cls, "lost_pct": lost, "max_detour_us": 12.0, "p99_detour_us": 4.0,
                "detours": 10, "quantum_ns": 100, "error": None, "foreign_cpu_pct": lost, "offenders": [],
                "irq_per_s": 250.0, "irq_sources": [], "softirq_per_s": {}, "steal_pct": 0.0}  # fmt: skip

    reports = []
    for i in range(4):
        cpus = [cpu(0, 30.0, "housekeeping"), cpu(1, 0.4, "rank 0"), cpu(2, 25.0 if i == 2 else 0.3, "rank 1")]
        doc = noise_doc(f"gpu-{i}", "probe", None, 5.0, cpus, bounds=Bounds())
        jsonschema.validate(doc, NOISE_SCHEMA)
        reports.append(json.dumps(doc, indent=2))
    rc, out, _ = run_cli("fleet", "--json", stdin="\n".join(reports) + "\n")
    lost = json.loads(out)["time_lost"]
    assert rc == 1 and lost["standing_out"] == ["gpu-2"]
    assert lost["slowest"][0]["subject"] == "CPU 2"  # housekeeping CPU 0's 30% is where noise belongs


def test_watch_and_noise_figures_are_each_judged_against_their_own_kind(tmp_path: Path) -> None:
    """Four nodes, each with a watch stream (a rank losing 10% to a neighbour, alike on all) and a
    quiet noise run (0.3%): no node stands out; one median over both kinds flagged all four."""
    folder = tmp_path / "reports"
    folder.mkdir()
    for i in range(4):
        host = f"node-{i}"
        (tmp_path / host).mkdir()
        (folder / f"{host}.jsonl").write_text(watch_stream(tmp_path / host, host, 10))
        cpus = [{"cpu": 0, "class": None, "lost_pct": 0.3, "max_detour_us": 12.0, "p99_detour_us": 4.0,
                 "detours": 10, "quantum_ns": 100, "error": None, "foreign_cpu_pct": 0.3, "offenders": [],
                 "irq_per_s": 250.0, "irq_sources": [], "softirq_per_s": {}, "steal_pct": 0.0}]  # fmt: skip
        noise = noise_doc(host, "probe", None, 5.0, cpus, bounds=Bounds())
        (folder / f"{host}-noise.json").write_text(json.dumps(noise))
    rc, out, _ = run_cli("fleet", "--json", str(folder))
    lost = json.loads(out)["time_lost"]
    jsonschema.validate(json.loads(out), FLEET_SCHEMA)
    assert (rc, lost["standing_out"]) == (0, [])
    assert lost["median_by_kind"] == {"noise": 0.3, "watch": 10.0}
    rc, text, _ = run_cli("fleet", str(folder))
    assert "median 0.3% (noise), 10% (watch)" in text


def test_a_cpu_set_watched_is_named_once(tmp_path: Path) -> None:
    doc = {"schema": "pinctl.watch/v1", "hostname": "vm", "interval": 1, "time": 0.0, "seconds": 1.0,
           "targets": [{"name": "CPUs 1", "kind": "cpus", "cpulist": "1", "foreign_cpu_pct": 99.0}],
           "gpus": [], "crossed": [], "ok": True, "notes": [], "denied": []}  # fmt: skip
    _, text, _ = run_cli("fleet", stdin=json.dumps(doc) + "\n")
    assert "worst 99% on CPUs 1)" in text, text
