"""Plan files and doctor reports that nobody vouches for (issue 20): surrogates, huge numbers, odd keys,
deep nesting, FIFOs. Each is refused or skipped in one line, never a traceback or a hang."""

from __future__ import annotations

import copy
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from pinctl.errors import PlanError
from pinctl.fleet.read import read_paths
from pinctl.planfile.load import parse_plan_text
from pinctl.planfile.types import Plan

REPO = Path(__file__).resolve().parents[1]
TOPOLOGY = str(REPO / "fixtures" / "hwloc" / "dgx-h100.xml")


def pinctl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pinctl", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)  # fmt: skip


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if not line.startswith("pinctl: warning:")]
    assert len(lines) == 1 and lines[0].startswith("pinctl: error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def plan_dict(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = pinctl("plan", "--topology", TOPOLOGY, "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


PLACES = {
    "env value": lambda d: d["ranks"][0]["env"].__setitem__("NCCL_IB_HCA", "mlx5_0\ud800"),
    "hostname": lambda d: d["node"].__setitem__("hostname", "\udfff"),
    "warning": lambda d: d["warnings"].append("a\ud800"),
    "option": lambda d: d["options"].__setitem__("x", ["\ud800"]),
    "option key": lambda d: d["options"].__setitem__("\ud800", 1),
    "gpu uuid": lambda d: d["ranks"][1]["gpu"].__setitem__("uuid", "GPU-\udc80"),
}


@pytest.mark.parametrize("place", sorted(PLACES))
def test_a_lone_surrogate_anywhere_is_refused_at_load_and_nothing_is_bound(
    plan_dict: dict[str, Any], tmp_path: Path, place: str
) -> None:
    data = copy.deepcopy(plan_dict)
    PLACES[place](data)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))  # ensure_ascii: the file holds the escape, as a hostile one would
    assert "\\ud" in path.read_text() or "\\udf" in path.read_text() or "\\udc" in path.read_text()
    marker = tmp_path / "ran"
    for extra in (["--local-rank", "0"], ["--nproc-per-node", "2"]):  # one or the other (r18: not both)
        result = pinctl("launch", "--plan", str(path), "--force", *extra, "--",
                        "touch", str(marker))  # fmt: skip
        assert result.returncode == 4, result.stderr
        assert "lone surrogate" in one_line(result)
        assert not marker.exists()


def test_from_dict_refuses_a_variable_name_that_is_not_a_string(plan_dict: dict[str, Any]) -> None:
    data = copy.deepcopy(plan_dict)
    data["ranks"][0]["env"][5] = "x"
    with pytest.raises(PlanError, match="variable name 5 is not a string") as e:
        Plan.from_dict(data)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("number", ["1e999999", "-1e999999", "1.5e309"])
def test_a_number_too_large_for_a_double_is_refused_as_infinity_is(plan_dict: dict[str, Any], number: str) -> None:
    data = copy.deepcopy(plan_dict)
    data["options"]["x"] = 12345
    text = json.dumps(data).replace("12345", number)
    with pytest.raises(PlanError, match="out of range"):
        parse_plan_text(text)
    data["options"]["x"] = float("inf")  # the same value handed to the library directly
    with pytest.raises(PlanError, match="not a finite number"):
        Plan.from_dict(data)


def test_launch_refuses_an_infinite_option_in_one_line(plan_dict: dict[str, Any], tmp_path: Path) -> None:
    data = copy.deepcopy(plan_dict)
    data["options"]["x"] = 12345
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data).replace("12345", "1e999999"))
    result = pinctl("launch", "--plan", str(path), "--local-rank", "0", "--force", "--", "true")
    assert result.returncode == 4
    assert "out of range" in one_line(result)


@pytest.mark.parametrize(
    ("where", "field"),
    [(("nics", 0), "name"), (("nics", 0), "netdev"), (("nics", 0), "kind"), (("nics", 0), "distance"),
     (("storage", 0), "name"), (("gpu",), "uuid"), (("gpu",), "pci_bus_id")],
)  # fmt: skip
def test_a_plan_file_name_holds_no_line_break(plan_dict: dict[str, Any], where: tuple[Any, ...], field: str) -> None:
    """r20: these went as they were into views (`plan` table, launch -v); a newline made a line of its own."""
    data = copy.deepcopy(plan_dict)
    target = data["ranks"][0]
    for key in where:
        target = target[key]
    target[field] = "mlx5_0\nLD_PRELOAD=/tmp/evil.so"
    with pytest.raises(PlanError, match=r"holds '\\n': a name has no space or control character"):
        Plan.from_dict(data)
    target[field] = "x" + "\u2028"  # a line separator is no name either
    with pytest.raises(PlanError, match="a name has no space"):
        Plan.from_dict(data)


# --- doctor reports ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> str:
    result = pinctl("doctor", "--topology", TOPOLOGY, "--no-nvml", "--json")
    assert result.returncode in (0, 1, 2), result.stderr
    return result.stdout


def test_fleet_names_and_skips_a_deep_report_and_a_fifo(report: str, tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "a.json").write_text(report)
    (folder / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    os.mkfifo(folder / "pipe.json")
    result = pinctl("fleet", "--json", str(folder), timeout=30)
    assert "Traceback" not in result.stderr
    assert result.returncode == 0, result.stderr
    skipped = {s["source"]: s["reason"] for s in json.loads(result.stdout)["skipped"]}
    assert skipped == {
        str(folder / "deep.json"): "nested too deep: not a doctor report",
        str(folder / "pipe.json"): "not a regular file (a FIFO, socket or device)",
    }
    # the same report on standard input, between two good ones
    stream = report + '{"a":' * 100_000 + "1" + "}" * 100_000 + "\n" + report
    piped = subprocess.run([sys.executable, "-m", "pinctl", "fleet", "--json"], input=stream, capture_output=True,
                           text=True, timeout=30, cwd=REPO)  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    verdict = json.loads(piped.stdout)
    assert [s["reason"] for s in verdict["skipped"]] == ["nested too deep: not a doctor report"]


def test_fleet_names_a_folder_it_may_not_list(report: str) -> None:
    """r20: os.walk left an unreadable subfolder out without a word; its reports were silently missing."""
    if os.geteuid() != 0:
        pytest.skip("reading as another user needs root (seteuid)")
    top = Path(tempfile.mkdtemp(prefix="pinctl-fleet-", dir="/tmp"))
    try:
        top.chmod(0o755)
        (top / "a.json").write_text(report)
        (top / "a.json").chmod(0o644)
        (top / "locked").mkdir(mode=0o700)
        (top / "locked" / "b.json").write_text(report)
        os.seteuid(65534)  # nobody: may list top, not locked
        try:
            found = list(read_paths([str(top)], io.StringIO()))
        finally:
            os.seteuid(0)
        assert [r.source for r in found if r.data is not None] == [str(top / "a.json")]
        assert [(r.source, r.error) for r in found if r.data is None] == [
            (str(top / "locked"), "unreadable folder: Permission denied")
        ]
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_doctor_expect_names_a_deep_reference_in_one_line(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("{" + '"a":{' * 100_000 + "}" * 100_001)
    result = pinctl("doctor", "--topology", TOPOLOGY, "--no-nvml", "--expect", str(deep))
    assert result.returncode == 2
    assert one_line(result).endswith("nested too deep: not a doctor report")
