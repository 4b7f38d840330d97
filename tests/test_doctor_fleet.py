"""``pinctl doctor`` for fleets: the report's hostname and inventory (schema-checked), ``--expect``
as a health check that drains a node unlike its reference, and ``--format prometheus``."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import jsonschema
import pytest
from fleet_helpers import REPO, run_cli
from prometheus_client.parser import text_string_to_metric_families

SCHEMA = json.loads((REPO / "pinctl" / "schemas" / "doctor-v2.json").read_text())


def load(path: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_every_report_matches_the_schema_and_names_its_own_node(fleet_reports: dict[str, Path]) -> None:
    for name, path in fleet_reports.items():
        report = load(path)
        jsonschema.validate(report, SCHEMA)
        assert report["hostname"] == name != socket.gethostname()


def test_the_inventory_holds_the_shape_a_fleet_compares(fleet_reports: dict[str, Path]) -> None:
    hw = load(fleet_reports["node-001"])["inventory"]["hardware"]
    assert [(g["pci_bus_id"], g["model"], g["pcie_gen"], g["pcie_width"], g["numa_node"]) for g in hw["gpus"]] == [
        ("0000:1b:00.0", "10de:2330", 5, 16, 0),
        ("0000:43:00.0", "10de:2330", 5, 16, 0),
        ("0000:9d:00.0", "10de:2330", 5, 16, 1),
        ("0000:c3:00.0", "10de:2330", 5, 16, 1),
    ]
    assert {(n["name"], n["kind"], n["link_layer"], n["rate_gbps"], n["state"]) for n in hw["nics"]} == {
        (f"mlx5_{i}", "infiniband", "InfiniBand", 400.0, "ACTIVE") for i in range(4)
    }
    assert (hw["packages"], hw["cpus"], hw["smt"], hw["numa"]["per_package"]) == (2, 64, 2, 1)
    assert [(n["cpus"], n["memory_gib"]) for n in hw["numa"]["nodes"]] == [(32, 510), (32, 510)]
    assert hw["numa"]["distances"] == [[10, 32], [32, 10]]
    assert [(d["model"], d["numa_node"], d["pcie_width"]) for d in hw["nvme"]] == [("SAMSUNG MZWLR3T8HBLS-00007", 1, 4)]
    nps2 = load(fleet_reports["node-nps2"])["inventory"]["hardware"]["numa"]
    assert nps2["per_package"] == 2 and len(nps2["nodes"]) == 4
    kernel = load(fleet_reports["node-thp"])["inventory"]["kernel"]
    assert (kernel["thp_defrag"], kernel["numa_balancing"], kernel["governors"]) == ("always", "0", ["performance"])


def test_hostname_comes_from_etc_hostname_without_proc(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "hostname").write_text("gpu-b17\n")
    (tmp_path / "proc").mkdir()
    rc, out, _ = run_cli("doctor", "--root", str(tmp_path), "--json", "--only", "kernel")
    report = json.loads(out)
    assert rc == report["exit_code"] and report["hostname"] == "gpu-b17" and report["inventory"]["hardware"] is None


@pytest.fixture(scope="module")
def trees(fleet_reports: dict[str, Path]) -> Path:
    return next(iter(fleet_reports.values())).parents[1] / "trees"


def test_expect_passes_a_twin_and_fails_a_node_that_lost_a_gpu(fleet_reports: dict[str, Path], trees: Path) -> None:
    reference = str(fleet_reports["node-001"])
    rc, out, _ = run_cli("doctor", "--root", str(trees / "node-002"), "--expect", reference, "--json")
    findings = [f for f in json.loads(out)["findings"] if f["check"] == "fleet.expected-shape"]
    assert [(f["level"], f["summary"]) for f in findings] == [("ok", "same shape as node-001")]
    assert rc == json.loads(out)["exit_code"] < 2
    rc, out, _ = run_cli("doctor", "--root", str(trees / "node-gpu-lost"), "--expect", reference)
    assert rc == 2
    assert "FAIL    fleet.expected-shape" in out and "3 GPUs, node-001 has 4" in out
    assert "GPU 3 (0000:c3:00.0) missing, reference has it" in out


def test_expect_counts_agree_and_say_what_is_missing(fleet_reports: dict[str, Path], trees: Path) -> None:
    """'1 package', not '1 packages'; a missing GPU's evidence says 'absent', never 'None'."""
    from pinctl.fleet.compare import shape_differences
    from pinctl.fleet.shape import facts, summary

    reference = load(fleet_reports["node-001"])
    one = json.loads(json.dumps(reference))
    hw = one["inventory"]["hardware"]
    hw["packages"], hw["gpus"], hw["numa"]["nodes"] = 1, hw["gpus"][:1], hw["numa"]["nodes"][:1]
    texts = [d.text for d in shape_differences(facts(one), facts(reference), "node-001")]
    assert "1 package, node-001 has 2" in texts and "1 NUMA node, node-001 has 2" in texts
    assert "1 GPU, node-001 has 4" in texts
    assert "1 GPU (" in summary(facts(one)) and "1 package," in summary(facts(one))
    _, out, _ = run_cli("doctor", "--root", str(trees / "node-gpu-lost"), "--expect", str(fleet_reports["node-001"]),
                        "--json")  # fmt: skip
    evidence = [f["evidence"] for f in json.loads(out)["findings"] if f["subject"].startswith("device.GPU 3")]
    assert evidence == [["this node: absent", "node-001: present"]]
    assert "None" not in out


def test_expect_of_an_unreadable_reference_is_a_usage_error(tmp_path: Path, trees: Path) -> None:
    (tmp_path / "ref.json").write_text('{"schema": "pinctl.doctor/v1"}')
    rc, out, err = run_cli("doctor", "--root", str(trees / "node-001"), "--expect", str(tmp_path / "ref.json"))
    assert rc == 2 and out == "" and err.startswith("pinctl: error: --expect") and "no inventory" in err


@pytest.mark.parametrize("command", ["doctor", "fleet"])
def test_expect_of_a_noise_or_plan_report_is_refused(tmp_path: Path, command: str) -> None:
    """A noise report was taken as the reference (ten FAILs "reference unknown", this node "discovery
    failed"); a plan file was refused as "expected doctor/v2 (or watch/v1 or noise/v1)"."""
    rc, noise, _ = run_cli("noise", "--seconds", "0.2", "--json")
    (tmp_path / "noise.json").write_text(noise)
    (tmp_path / "plan.json").write_text('{"schema": "pinctl.plan/v2"}')
    for name, schema in (("noise.json", "pinctl.noise/v1"), ("plan.json", "pinctl.plan/v2")):
        args = ["--only", "node"] if command == "doctor" else [str(tmp_path / "noise.json")]
        rc, out, err = run_cli(command, "--expect", str(tmp_path / name), *args)
        assert rc == 2 and out == "" and err.count("\n") == 1, err
        assert f"schema '{schema}': expected pinctl.doctor/v2 (a reference is a pinctl doctor --json report)" in err
        assert "noise/v1)" not in err


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample, parsed by prometheus_client's own text parser."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_prometheus_textfile_parses_and_carries_checks_and_shape(trees: Path) -> None:
    rc, out, _ = run_cli("doctor", "--root", str(trees / "node-gpu-lost"), "--format", "prometheus")
    samples = _samples(out)
    host = ("host", "node-gpu-lost")
    assert samples[("pinctl_node_gpus", (host,))] == 3
    assert samples[("pinctl_doctor_exit_code", (host,))] == rc
    rc, out, _ = run_cli("doctor", "--root", str(trees / "node-hca-hdr"), "--format", "prometheus")
    samples = _samples(out)
    labels = (("host", "node-hca-hdr"), ("kind", "infiniband"), ("nic", "mlx5_2"))
    assert samples[("pinctl_nic_rate_gbps", labels)] == 200
    rc, out, _ = run_cli("doctor", "--root", str(trees / "node-gpu-x8"), "--format", "prometheus")
    samples = _samples(out)
    assert samples[("pinctl_gpu_pcie_width", (("gpu", "1"), ("host", "node-gpu-x8"), ("pci", "0000:43:00.0")))] == 8
    degraded = [k for k in samples if k[0] == "pinctl_doctor_check" and ("check", "pcie.link-degraded") in k[1]]
    assert [dict(k[1])["level"] for k in degraded] == ["warn"]
    families = {f.name: f.type for f in text_string_to_metric_families(out)}
    assert set(families.values()) == {"gauge"} and "pinctl_doctor_findings" in families


def test_prometheus_label_values_are_escaped() -> None:
    from pinctl.render.prometheus import textfile

    report = {
        "hostname": 'a"b\\c',
        "findings": [{"check": "x.y", "level": "warn", "subject": "line\nbreak"}],
        "summary": {"ok": 0, "warn": 1, "fail": 0, "skipped": 0},
        "exit_code": 1,
        "inventory": {},
    }
    samples = _samples(textfile(report))
    assert (
        samples[
            (
                "pinctl_doctor_check",
                (("check", "x.y"), ("host", 'a"b\\c'), ("level", "warn"), ("subject", "line\nbreak")),
            )
        ]
        == 1
    )


def test_a_topology_file_alone_names_its_own_machine_not_this_one() -> None:
    rc, out, _ = run_cli(
        "doctor", "--topology", str(REPO / "fixtures" / "hwloc" / "dgx-h100.xml"), "--json", "--only", "node"
    )
    report = json.loads(out)
    assert rc == report["exit_code"] and report["hostname"] == "dgx-h100-01" != socket.gethostname()
    assert len(report["inventory"]["hardware"]["gpus"]) == 8


def test_show_and_plan_name_a_gathered_tree_by_its_own_hostname(trees: Path) -> None:
    """show and plan on a gathered tree say whose it is, as doctor's report does, not 'unknown'."""
    rc, out, _ = run_cli("plan", "--root", str(trees / "node-thp"), "--format", "json")
    assert rc == 0 and json.loads(out)["node"]["hostname"] == "node-thp"
    rc, out, _ = run_cli("show", "--root", str(trees / "node-thp"), "--json")
    assert rc == 0 and json.loads(out)["hostname"] == "node-thp"


def test_a_gathered_tree_places_gpus_as_it_places_nics(trees: Path) -> None:
    """Issue 18: one placement rule for every PCI device of a tree. Each GPU of node-001 shares a
    PCIe switch with its HCA (fixtures/gen_fleet.py); hwloc, given no bridges in /sys/bus/pci,
    hung the GPUs off the machine root (PHB, bridges "-", CPU affinity 0-63)."""
    rc, out, _ = run_cli("show", "--root", str(trees / "node-001"), "--json")
    assert rc == 0
    data = json.loads(out)
    dist = data["distances"]
    row = dict(zip(dist["columns"], dist["matrix"][dist["rows"].index("GPU0")], strict=True))
    assert (row["mlx5_0"], row["mlx5_1"], row["mlx5_2"]) == ("PIX", "NODE", "SYS")
    numa_cpus = {n["os_index"]: n["cpus"] for n in data["numa_nodes"]}
    nics = {n["pci"]["switches"][0]: n for n in data["nics"]}
    for gpu in data["gpus"]:
        pci = gpu["pci"]
        assert pci["bridges"] and pci["switches"], gpu["index"]
        nic = nics[pci["switches"][0]]  # the HCA under the same switch
        assert pci["host_bridge"] == nic["pci"]["host_bridge"] and pci["bridges"][1:] == nic["pci"]["bridges"][1:]
        assert pci["local_cpus"] == numa_cpus[gpu["numa_node"]] == nic["pci"]["local_cpus"]
    assert not any("attached to the machine root" in note for note in data["notes"])
