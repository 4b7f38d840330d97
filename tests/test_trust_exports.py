"""Config files pinctl exports carry only values of their grammar (issue 20): a host name from a
--topology file that holds newlines is refused, not written into a systemd drop-in, a slurm.conf
line or an irqbalance file; ``launch --dry-run`` shows values as a shell reads them, one line each."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pinctl.render.housekeeping import is_hostname

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "fixtures" / "hwloc" / "dgx-h100.xml"
INJECTED = "x\n[Manager]\nDefaultEnvironment=LD_PRELOAD=/tmp/evil.so"


def pinctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pinctl", *args], capture_output=True, text=True, timeout=60,
                          cwd=REPO)  # fmt: skip


def topology_named(tmp_path: Path, hostname: str) -> str:
    """The DGX H100 fixture with another HostName, as a user could hand one to --topology."""
    text = FIXTURE.read_text()
    escaped = hostname.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace("\n", "&#10;")
    assert 'name="HostName" value="dgx-h100-01"' in text
    path = tmp_path / "topology.xml"
    path.write_text(text.replace('name="HostName" value="dgx-h100-01"', f'name="HostName" value="{escaped}"'))
    return str(path)


@pytest.mark.parametrize("fmt", ["systemd", "slurm", "irqbalance"])
@pytest.mark.parametrize("hostname", [INJECTED, "node 1", "node-1.", "-node", "a" * 64, "nöde", "x\rNodeName=y"])
def test_a_hostname_outside_its_grammar_is_refused_in_one_line(tmp_path: Path, fmt: str, hostname: str) -> None:
    topology = topology_named(tmp_path, hostname)
    result = pinctl("plan", "--topology", topology, "--reserve-per-numa", "1", "--format", fmt)
    assert result.returncode == 3, result.stdout
    errors = [line for line in result.stderr.splitlines() if not line.startswith("pinctl: warning:")]
    assert len(errors) == 1 and "is not a host name (RFC 1123" in errors[0], result.stderr
    assert result.stdout == ""
    folder = tmp_path / "dropins"
    if fmt == "systemd":
        written = pinctl("plan", "--topology", topology, "--reserve-per-numa", "1", "--format", fmt, "-o", str(folder))
        assert written.returncode == 3
        assert not folder.exists()


@pytest.mark.parametrize("fmt", ["systemd", "slurm", "irqbalance"])
def test_a_good_hostname_is_written_and_every_line_keeps_its_grammar(tmp_path: Path, fmt: str) -> None:
    topology = topology_named(tmp_path, "gpu-node-07.cluster.example")
    result = pinctl("plan", "--topology", topology, "--reserve-per-numa", "1", "--format", fmt)
    assert result.returncode == 0, result.stderr
    for line in result.stdout.splitlines():
        if fmt == "systemd":
            assert re.fullmatch(r"(#.*|\[(Slice|Scope|Manager)\]|(AllowedCPUs|CPUAffinity)=[0-9,-]+|)", line), line
        elif fmt == "irqbalance":
            assert re.fullmatch(r"(#.*|IRQBALANCE_BANNED_CPULIST=[0-9,-]+|)", line), line
    if fmt == "slurm":
        assert "NodeName=gpu-node-07.cluster.example CpuSpecList=" in result.stdout
    else:
        assert "# pinctl plan for gpu-node-07.cluster.example (fingerprint " in result.stdout


def test_hostname_grammar() -> None:
    assert is_hostname("a") and is_hostname("node-01.example.org") and is_hostname("1node")
    assert is_hostname(".".join(["a" * 63] * 3))
    for bad in ("", "a..b", "a_b", "a" * 64, "a.-b", "b-.c", ".".join(["a" * 63] * 4 + ["b"]), "a\n"):
        assert not is_hostname(bad), bad


def test_prometheus_still_escapes_a_hostname_it_reports(tmp_path: Path) -> None:
    topology = topology_named(tmp_path, 'odd"\nnode')
    result = pinctl("doctor", "--topology", topology, "--no-nvml", "--format", "prometheus")
    assert result.returncode in (0, 1, 2), result.stderr
    for line in result.stdout.splitlines():
        assert line.startswith("#") or re.fullmatch(r"[a-z_]+(\{.*\})? [-0-9.e+NaInf]+", line), line
    assert "\n" not in "".join(re.findall(r'"(?:[^"\\]|\\.)*"', result.stdout))
    assert 'host="odd\\"\\nnode"' in result.stdout


def test_dry_run_shows_a_newline_in_a_value_on_one_line(tmp_path: Path) -> None:
    plan = json.loads(pinctl("plan", "--topology", str(FIXTURE), "--json").stdout)
    value = "mlx5_0:1\nLD_PRELOAD=/tmp/evil.so"
    plan["ranks"][0]["env"]["NCCL_IB_HCA"] = value
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    result = pinctl("launch", "--plan", str(path), "--local-rank", "0", "--force", "--dry-run", "--", "true")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert not [line for line in lines if line.startswith("LD_PRELOAD=")]
    shown = next(line for line in lines if line.startswith("env: NCCL_IB_HCA="))
    word = shown.removeprefix("env: NCCL_IB_HCA=")
    assert word == "$'mlx5_0:1\\nLD_PRELOAD=/tmp/evil.so'"
    back = subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True, text=True, check=True).stdout
    assert back == value
    assert "env: OMP_NUM_THREADS=" in result.stdout  # plain values stay plain


def topology_with(tmp_path: Path, old: str, new: str) -> str:
    """The DGX H100 fixture with one attribute value replaced (XML-escaped), as a user could hand it to --topology."""
    text = FIXTURE.read_text()
    assert old in text
    escaped = new.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace("\n", "&#10;")
    path = tmp_path / "topology.xml"
    path.write_text(text.replace(old, old.split('"')[0] + f'"{escaped}"', 1))
    return str(path)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('name="mlx5_0"', "mlx5_0\n[Manager]\nDefaultEnvironment=LD_PRELOAD=/tmp/evil.so"),
        ('name="mlx5_0"', "mlx5_0,mlx5_9"),  # a second HCA smuggled into NCCL_IB_HCA
        ('name="mlx5_0"', "mlx5_0:2"),  # a port in UCX_NET_DEVICES
        ('name="ibp24s0"', "ib p24"),
        ('name="nvme0n1"', "nvme0n1\nName=gpu File=/dev/sda"),
    ],
)
@pytest.mark.parametrize("fmt", ["env", "table", "json"])
def test_a_device_name_outside_its_grammar_is_refused_in_one_line(tmp_path: Path, old: str, new: str, fmt: str) -> None:
    """r20: device names from a --topology file went as they were into the table and the env values."""
    topology = topology_with(tmp_path, old, new)
    result = pinctl("plan", "--topology", topology, "--format", fmt)
    assert result.returncode == 3, result.stdout
    errors = [line for line in result.stderr.splitlines() if not line.startswith("pinctl: warning:")]
    assert len(errors) == 1 and "is not one a machine has" in errors[0], result.stderr
    assert result.stdout == ""


def test_plain_device_names_still_plan(tmp_path: Path) -> None:
    topology = topology_with(tmp_path, 'name="mlx5_0"', "mlx5_bond.0-a")
    result = pinctl("plan", "--topology", topology, "--format", "env")
    assert result.returncode == 0, result.stderr
    assert "mlx5_bond.0-a" in result.stdout
