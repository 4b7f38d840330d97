"""``pinctl plan`` end to end: options, formats, files, errors (discovery replaced by a built node)."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
from nodes import Layout, NicSpec, build_node

import pinctl.cli.plan as cli_plan
from pinctl.cli.app import run
from pinctl.plan.make import make_plan
from pinctl.plan.request import PlanRequest
from pinctl.render.export import plan_to_json

REPO = Path(__file__).resolve().parents[1]
LAYOUT = Layout(
    packages=2,
    l3_per_numa=2,
    cores_per_l3=2,
    smt=2,
    gpus=((0, 0, 0), (0, 0, 1), (1, 0, 0), (1, 0, 1)),
    nics=(NicSpec((0, 0, 0)), NicSpec((1, 0, 0))),
)
NODE = replace(build_node(LAYOUT), source="live")  # what discovery of this machine labels it


@pytest.fixture(autouse=True)
def fake_discovery(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str | None, str | None]]:
    calls: list[tuple[str | None, str | None]] = []

    def discover(topology: str | None, root: str | None) -> object:
        calls.append((topology, root))
        saved = topology or root
        return NODE if saved is None else replace(NODE, source=f"saved:{saved}")  # as discovery labels them

    monkeypatch.setattr(cli_plan, "_discover", discover)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return calls


def test_json_matches_library(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["plan", "--json", "--procs-per-gpu", "2", "--smt", "one-per-core"]) == 0
    out = capsys.readouterr().out
    assert out == plan_to_json(make_plan(NODE, PlanRequest(procs_per_gpu=2, smt="one-per-core")))


def test_default_format_is_json_when_piped(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["plan"]) == 0
    assert json.loads(capsys.readouterr().out)["schema"] == "pinctl.plan/v2"


def test_table_rows_and_warnings_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["plan", "--format", "table", "--gpus", "1,3"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[1].split()[:4] == ["rank", "GPU", "NUMA", "cpulist"]
    assert lines[4] == ""  # title, header, two ranks, then the node's CPUs by class
    assert lines[5] == "Node CPUs" and lines[7].split()[:2] == ["ranks", "16"]
    assert "mlx5_0:1 (PHB)" in lines[2]
    assert "pinctl: warning: LOCAL_RANK" in captured.err and "warning" not in captured.out


def test_env_numactl_slurm(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["plan", "--format", "env"]) == 0
    assert capsys.readouterr().out.startswith("# rank 0")
    assert run(["plan", "--format", "numactl", "--mem-policy", "interleave", "--", "./a.out", "-n", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[0].endswith("-- ./a.out -n 3") and "--interleave=0" in lines[0]
    assert run(["plan", "--format", "slurm"]) == 0
    slurm = capsys.readouterr().out
    assert "--gpu-bind=map_gpu:0,1,2,3" in slurm
    # The comment names the file the launch line reads, not a placeholder beside a real name.
    assert "pinctl plan --json -o plan.json)" in slurm and "launch --plan plan.json --" in slurm


def test_output_file_and_topology_passed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_discovery: list[tuple[str | None, str | None]]
) -> None:
    target = tmp_path / "plan.json"
    assert run(["plan", "--topology", "x.xml", "-o", str(target)]) == 0
    assert capsys.readouterr().out == ""
    assert json.loads(target.read_text())["ranks"][0]["local_rank"] == 0
    assert fake_discovery == [("x.xml", None)]


def test_schema_option(capsys: pytest.CaptureFixture[str], fake_discovery: list[object]) -> None:
    assert run(["plan", "--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert fake_discovery == []  # no discovery needed


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--gpus", "9"], "no GPU 9"),
        (["--gpus", "0000:ee:00.0"], "no GPU at PCI address"),
        (["--procs-per-gpu", "0"], "--procs-per-gpu': 0 is not in the range 1<=x<=64"),
        (["--reserve", "1-x"], "malformed --reserve"),
        (["--ranks", "500"], "usable cores"),
        (["--procs-per-gpu", "3"], "usable cores"),
        (["--json", "--format", "env"], "ask for two outputs"),
        (["--format", "env", "--", "ls"], "only used with --format numactl"),
    ],
)
def test_bad_options_one_line(args: list[str], match: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["plan", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pinctl: error: ") and match in err and err.count("\n") == 1


def test_real_fixture_end_to_end(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    if importlib.util.find_spec("pinctl.discovery") is None:
        pytest.skip("discovery not available")
    from pinctl.discovery import discover

    monkeypatch.setattr(cli_plan, "_discover", lambda t, r: discover(topology=t, root=r, nvml=False))
    fixture = str(REPO / "fixtures" / "hwloc" / "dgx-h100.xml")
    assert run(["plan", "--topology", fixture, "--json"]) == 0
    first = capsys.readouterr().out
    assert run(["plan", "--topology", fixture, "--json"]) == 0
    assert capsys.readouterr().out == first
    schema = json.loads((REPO / "pinctl" / "schemas" / "plan-v2.json").read_text())
    jsonschema.validate(json.loads(first), schema, cls=jsonschema.Draft202012Validator)
