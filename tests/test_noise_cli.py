"""`pinctl watch` and `pinctl noise` as a user runs them: bad input is one line and an exit code, the
terminal view is redrawn in place, the Prometheus text parses, the JSON validates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_terminal_views import in_pty

REPO = Path(__file__).resolve().parents[1]


def pinctl(*args: str) -> subprocess.CompletedProcess[str]:
    """pinctl in a Slurm job of its own: ranks other work on this box launched are not found."""
    env = {**os.environ, "SLURM_JOB_ID": f"pinctl-test-{os.getpid()}"}
    return subprocess.run([sys.executable, "-m", "pinctl", *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (("watch", "--cpus", "4096"), "--cpus 4096: no such online CPU 4096", 2),
        (("watch", "--cpus", "x"), "--cpus", 2),
        (("watch", "999999"), "'999999' is not a running process", 2),
        (("watch", "--cpus", "0", "1"), "give PIDs or --cpus, not both", 2),
        (("watch",), "nothing to watch", 2),
        (("noise", "--cpus", "4096"), "no such online CPU 4096", 2),
        (("watch", "--cpus", "0", "--plan", "/nonexistent/plan.json"), "plan.json", 4),  # a plan error
    ],
)
def test_bad_input_is_one_line_and_its_exit_code(args: tuple[str, ...], message: str, code: int) -> None:
    proc = pinctl(*args)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_watch_redraws_its_table_in_place_on_a_terminal() -> None:
    text = in_pty(100, "watch", "--cpus", "0-1", "--count", "2", "--interval", "0.5")
    assert "interval 1" in text and text.index("interval 2") > text.index("interval 1")
    assert "0-1" in text and "foreign" in text and "offenders" in text


def test_watch_plain_lines_in_a_pipe_and_prometheus_and_json() -> None:
    plain = pinctl("watch", "--cpus", "0", "--count", "1", "--interval", "0.5")
    assert plain.returncode == 0 and plain.stdout.startswith("interval 1 CPUs 0 cpus=0 foreign=")
    prom = pinctl("watch", "--cpus", "0-1", "--count", "1", "--interval", "0.5", "--format", "prometheus")
    names = {s.name for fam in text_string_to_metric_families(prom.stdout) for s in fam.samples}
    assert {"pinctl_watch_foreign_cpu_percent", "pinctl_watch_irq_per_second", "pinctl_watch_bound_crossed"} <= names
    # one exposition, never a stream of them (each metric's HELP/TYPE once); more intervals is a usage error
    once = pinctl("watch", "--cpus", "0", "--interval", "0.3", "--format", "prometheus", "--no-nvml")
    assert once.returncode == 0 and once.stdout.count("# TYPE pinctl_watch_foreign_cpu_percent ") == 1
    many = pinctl("watch", "--cpus", "0", "--count", "2", "--format", "prometheus")
    assert many.returncode == 2 and "use --count 1" in many.stderr and many.stderr.count("\n") == 1
    lines = pinctl("watch", "--cpus", "1", "--count", "2", "--interval", "0.5", "--json").stdout.splitlines()
    schema = json.loads((REPO / "pinctl" / "schemas" / "watch-v1.json").read_text())
    assert len(lines) == 2
    for line in lines:
        jsonschema.validate(json.loads(line), schema)


def test_noise_json_validates_and_prometheus_parses() -> None:
    proc = pinctl("noise", "--seconds", "0.5", "--json")
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, json.loads((REPO / "pinctl" / "schemas" / "noise-v1.json").read_text()))
    assert doc["method"] == "probe" and {c["cpu"] for c in doc["cpus"]} >= {0, 1}
    assert all(0 <= c["lost_pct"] <= 100 and c["quantum_ns"] > 0 for c in doc["cpus"])
    prom = pinctl("noise", "--seconds", "0.3", "--cpus", "0", "--format", "prometheus", "--max-lost", "100")
    assert prom.returncode == 0
    names = {s.name for fam in text_string_to_metric_families(prom.stdout) for s in fam.samples}
    assert "pinctl_noise_lost_percent" in names and "pinctl_noise_p99_detour_microseconds" in names


def test_noise_bound_exits_1() -> None:
    proc = pinctl("noise", "--seconds", "0.3", "--cpus", "0", "--max-lost", "0")
    # this box is shared: some time is always lost, so a bound of 0 is crossed
    assert proc.returncode == 1 and "crossed: CPU 0: lost" in proc.stdout


def test_watch_names_gpu_clock_slowdowns_from_nvml(nvmlshim: Path, tmp_path: Path) -> None:
    conf = tmp_path / "nvml.conf"
    conf.write_text("gpus = 4\ngpu.2.clock_events = 0x48\n"
                    "gpu.3.fail.nvmlDeviceGetCurrentClocksEventReasons = NOT_SUPPORTED\n"
                    "gpu.3.fail.nvmlDeviceGetCurrentClocksThrottleReasons = NOT_SUPPORTED\n")  # fmt: skip
    env = {**os.environ, "LD_LIBRARY_PATH": str(nvmlshim), "FAKE_NVML_CONFIG": str(conf)}
    run = [sys.executable, "-m", "pinctl", "watch", "--cpus", "0", "--count", "1", "--interval", "0.3"]
    doc = json.loads(subprocess.run([*run, "--json"], capture_output=True, text=True, env=env, check=True).stdout)
    assert doc["gpus"] == [
        {"index": 0, "slowdowns": []},
        {"index": 1, "slowdowns": []},
        {"index": 2, "slowdowns": ["HW slowdown", "HW thermal slowdown"]},
        {"index": 3, "slowdowns": None},
    ]
    plain = subprocess.run(run, capture_output=True, text=True, env=env, check=True).stdout
    assert "GPU 2 clocks held down: HW slowdown, HW thermal slowdown" in plain
    none = subprocess.run([*run, "--json"], capture_output=True, text=True, check=True,
                          env={**env, "LD_LIBRARY_PATH": str(tmp_path)})  # fmt: skip
    assert (
        json.loads(none.stdout)["gpus"] == [] and "GPU clock slowdowns unknown" in json.loads(none.stdout)["notes"][0]
    )


def test_a_plan_names_the_cpu_classes(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(pinctl("plan", "--ranks", "1", "--reserve", "0", "--json").stdout)
    doc = json.loads(pinctl("watch", "--plan", str(plan), "--count", "1", "--interval", "0.3", "--json").stdout)
    assert [(t["name"], t["kind"], t["cpulist"]) for t in doc["targets"]] == [("housekeeping", "class", "0")]
    assert any(n.startswith("no rank of this plan") for n in doc["notes"])  # not silently the classes alone
    noise = json.loads(pinctl("noise", "--plan", str(plan), "--seconds", "0.3", "--json").stdout)
    classes = {c["cpu"]: c["class"] for c in noise["cpus"]}
    assert classes[0] == "housekeeping" and set(classes.values()) == {"housekeeping", "rank 0"}


def test_noise_table_on_a_terminal() -> None:
    text = in_pty(100, "noise", "--cpus", "0-1", "--seconds", "0.3")
    assert "noise over 0.3 s (method: probe)" in text and "lost" in text and "\nmethod: " in text
    assert "noisiest: CPU" in text or "quiet: no CPU lost" in text


def test_a_one_interval_health_check_names_who_crossed_the_bound() -> None:
    """`--count 1` has no next interval to name offenders in: it scans from the start, so the
    interval that crosses --max-foreign says who (offenders a list, not null)."""
    proc = pinctl("watch", "--cpus", "0-1", "--count", "1", "--interval", "0.5", "--json", "--no-nvml")
    (target,) = json.loads(proc.stdout)["targets"]
    assert target["offenders"] is not None, target


def test_a_watched_process_that_ends_is_said_and_watch_stops() -> None:
    brief = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.8)"])
    try:
        proc = pinctl("watch", str(brief.pid), "--count", "20", "--interval", "0.5", "--json", "--no-nvml")
    finally:
        brief.wait()
    docs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0 and len(docs) < 20, proc.stderr
    assert f"process {brief.pid} has ended: its target's figures are its CPUs' alone" in docs[-1]["notes"]
    assert "every watched process has ended: stopping" in docs[-1]["notes"]


@pytest.mark.parametrize(
    ("foreign", "said"),
    [(100.0, "offenders: (named from the next interval)"), (2.0, "offenders: (named once notable)"), (0.5, None)],
)
def test_a_watch_line_without_a_scan_says_when_offenders_come(foreign: float, said: str | None) -> None:
    """At 100% foreign the first interval said "(named once foreign time is notable)": it is notable;
    the scan it started names them in the next interval."""
    from pinctl.render.noise import watch_line

    target = {"name": "CPUs 0", "cpulist": "0", "foreign_cpu_pct": foreign, "offenders": None}
    target |= {"steal_pct": 0, "irq_per_s": 0, "involuntary_switches_per_s": None}
    line = watch_line({"interval": 1}, target)
    assert "foreign time is notable" not in line
    assert (said in line) if said else ("named" not in line)
