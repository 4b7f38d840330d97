"""The library API as docs/api.md writes it: on fixtures, on this machine, and in a worker that binds itself."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from act_helpers import ALL_CPUS, PYTHON, TWO_CPUS, pinctl, plan_dict, rank, write_plan

import pinctl as api
from pinctl.cli.app import cli
from pinctl.plan.request import PlanOptions

ROOT = Path(__file__).resolve().parents[1]
DGX = ROOT / "fixtures" / "hwloc" / "dgx-h100.xml"


def test_import_pinctl_loads_no_heavy_library() -> None:
    code = "import sys, pinctl; print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    loaded = set(subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    assert not loaded & {"click", "rich", "pyhwloc", "pynvml"}


def test_plan_to_dict_is_what_the_plan_command_prints() -> None:
    node = api.discover(topology=str(DGX))
    plan = api.make_plan(node, nics_per_gpu=1)
    printed = pinctl("plan", "--json", "--topology", str(DGX), "--nics-per-gpu", "1")
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout) == plan.to_dict()
    assert api.Plan.from_dict(plan.to_dict()) == plan
    assert len(plan.ranks) == len(node.gpus) == 8 and plan.ranks[0].nics[0].name == "mlx5_0"


def test_options_as_text_or_values_mean_the_same() -> None:
    node = api.discover(topology=str(DGX))
    assert api.make_plan(node, gpus="0-1", reserve="0") == api.make_plan(node, gpus=[0, 1], reserve=[0])
    with pytest.raises(api.UsageError, match="no GPU 9"):
        api.make_plan(node, gpus=[9])


def test_make_plan_keywords_are_the_plan_commands_long_options() -> None:
    command = cli.get_command(None, "plan")  # type: ignore[arg-type]
    assert command is not None
    options = {p.name for p in command.params if p.name not in ("topology", "root", "fmt", "as_json", "output",
                                                                    "schema", "command")}  # fmt: skip
    assert set(PlanOptions.__annotations__) - {"visible_devices"} == options  # CUDA_VISIBLE_DEVICES on the CLI
    with pytest.raises(api.UsageError, match="unknown planning option 'nics_per_gup'"):
        api.make_plan(api.discover(topology=str(DGX)), nics_per_gup=2)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"gpus": 5}, "gpus: expected a list"),
        ({"procs_per_gpu": "2"}, "procs_per_gpu: expected an integer"),
        ({"isolate_gpus": 1}, "isolate_gpus: expected True or False"),
        ({"reserve": (c for c in [0])}, "reserve: expected a list"),
        ({"smt": None}, "smt: expected a string"),
    ],
)
def test_wrong_option_types_are_usage_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(api.UsageError, match=message):
        api.make_plan(api.discover(topology=str(DGX)), **options)  # type: ignore[arg-type]


def test_every_error_is_a_pinctl_error(tmp_path: Path) -> None:
    with pytest.raises(api.PinctlError, match=r"cannot read topology file .*absent\.xml: No such file"):
        api.discover(topology=str(tmp_path / "absent.xml"))
    evil = plan_dict()
    evil["ranks"][0]["env"]["LD_PRELOAD"] = "/tmp/evil.so"
    with pytest.raises(api.PlanError, match=r"LD_PRELOAD.*not allowed"):
        api.load_plan(write_plan(tmp_path / "p.json", evil))
    with pytest.raises(api.UsageError, match="out of range"):
        api.bind(api.Plan.from_dict(plan_dict()), local_rank=7)


def test_discover_and_plan_this_machine() -> None:
    node = api.discover()
    assert node.source == "live" and node.allowed_cpus
    plan = api.make_plan(node, ranks=len(node.cores))
    assert [r.local_rank for r in plan.ranks] == list(range(len(node.cores)))
    assert frozenset().union(*(r.cpus for r in plan.ranks)) <= node.allowed_cpus


def test_fit_takes_a_rank_as_a_number_or_a_rank_plan() -> None:
    """docs/api.md: ``fit(plan, rank)``, *rank* a RankPlan or a local rank number, not a traceback."""
    plan = api.make_plan(api.discover(), ranks=1)
    assert api.fit(plan, 0) == api.fit(plan, plan.ranks[0]) == ([], [])
    with pytest.raises(api.UsageError, match="out of range"):
        api.fit(plan, 3)


def _child(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "SLURM_LOCALID", "OMP_NUM_THREADS")}
    full.update(env or {})
    return subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=full, timeout=60)


BIND = """
import json, os, sys, threading, time
import pinctl
from pinctl.act.mempolicy import get_mempolicy

stop = threading.Event()
early = threading.Thread(target=stop.wait, daemon=True)  # a thread that exists before bind
early.start()
plan = pinctl.load_plan(sys.argv[1] if len(sys.argv) > 1 else {path!r})
import warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    bound = pinctl.bind(plan)
cpus = {{t: open(f"/proc/self/task/{{t}}/status").read().split("Cpus_allowed_list:")[1].split()[0]
        for t in os.listdir("/proc/self/task")}}
print(json.dumps({{"rank": bound.local_rank, "threads": cpus, "policy": get_mempolicy()[0],
                  "omp": os.environ.get("OMP_NUM_THREADS"),
                  "warnings": [str(w.message) for w in caught if w.category is pinctl.PinctlWarning]}}))
stop.set()
"""


@pytest.mark.skipif(not TWO_CPUS, reason="needs two CPUs")
def test_bind_pins_every_thread_and_the_memory_policy(tmp_path: Path) -> None:
    path = write_plan(tmp_path / "p.json", plan_dict([rank(0, [ALL_CPUS[0]]), rank(1, [ALL_CPUS[1]])]))
    res = _child(BIND.format(path=path), {"LOCAL_RANK": "1"})
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["rank"] == 1  # from LOCAL_RANK
    assert len(out["threads"]) >= 2 and set(out["threads"].values()) == {str(ALL_CPUS[1])}
    assert out["policy"] == "bind" and out["omp"] == "1" and out["warnings"] == []


def test_bind_refuses_a_foreign_plan_unless_forced(tmp_path: Path) -> None:
    path = write_plan(tmp_path / "p.json", plan_dict(hostname="gpu-node-17"))
    refused = _child(BIND.format(path=path), {"LOCAL_RANK": "0"})
    assert refused.returncode != 0 and "PlanError" in refused.stderr and "gpu-node-17" in refused.stderr
    forced = _child(BIND.format(path=path).replace("pinctl.bind(plan)", "pinctl.bind(plan, force=True)"),
                    {"LOCAL_RANK": "0"})  # fmt: skip
    assert forced.returncode == 0, forced.stderr
    assert any("gpu-node-17" in w for w in json.loads(forced.stdout)["warnings"])


def test_the_worker_example_in_the_docs_runs(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    example = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "__main__" in b)
    script = tmp_path / "workers.py"  # a file: spawned workers import their function from it
    script.write_text(example)
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    # Each worker prints its own line; two workers' writes may interleave on the shared pipe, so
    # the lines are found by their shape, not split at newlines.
    found = sorted(int(n) for n in re.findall(r"rank (\d+): cpus \[", res.stdout))
    node = api.discover()
    expected = len(node.gpus) or 2
    assert found == list(range(expected)), res.stdout


def test_api_doc_names_the_rank_variables_in_the_order_the_code_reads_them() -> None:
    """docs/api.md's select_rank paragraph lists RANK_VARS in their order, and the worker example
    sets the device torch counts (visible_index), not the node's GPU index."""
    import re

    from pinctl.job.localrank import RANK_VARS

    text = (ROOT / "docs" / "api.md").read_text()
    section = text.split("### `pinctl.select_rank", 1)[1].split("###", 1)[0]
    names = [name for name, _, _ in RANK_VARS]
    named = [w for w in re.findall(r"\b[A-Z][A-Z0-9_]+\b", section) if w in names]
    assert list(dict.fromkeys(named)) == names
    assert "set_device(rank.gpu.index)" not in text and "set_device(rank.gpu.visible_index)" in text
