"""The sick GPU node, through NVIDIA's real binding over the stand-in libnvidia-ml.so.1 (issue 19).

Every case runs the pinctl CLI in a child whose NVML is tests/nvmlshim describing the node
(tests/nvml_helpers.py): a GPU lost three ways, a GPU whose queries are lost, a driver that no
longer matches its library, a job given 2 of 8 GPUs, a driver before R510, a MIG GPU seen by
non-root, NVML's own locality and PCIe link. Before issue 19 the first case aborted libhwloc
(exit 3), the mismatch and the half-lost GPU passed doctor, and the old driver gave a traceback.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from nvml_helpers import PINCTL, SHIM_BUS_IDS, findings, levels_of, run_pinctl, shim_node

pytestmark = pytest.mark.usefixtures("nvmlshim")

# This machine's CPUs and NUMA node stand in for the H100 node's (NVML's affinity must name them).
LOCAL = "".join(f"gpu.{i}.numa_node = 0\ngpu.{i}.cpus = 0\n" for i in range(8))
ONE_LOCAL = "gpus = 1\ngpu.0.numa_node = 0\ngpu.0.cpus = 0\n"  # (a gpu.I key makes GPU I exist)

LOST_WAYS = {
    "handle-lost": ("gpu.3.lost = handle", "GPU_IS_LOST", "nvmlDeviceGetHandleByIndex(3)"),
    "handle-unknown": ("gpu.3.handle_error = UNKNOWN", "UNKNOWN", "nvmlDeviceGetHandleByIndex(3)"),
    "handle-denied": ("gpu.3.handle_error = NO_PERMISSION", "NO_PERMISSION", "nvmlDeviceGetHandleByIndex(3)"),
    "queries-lost": ("gpu.3.lost = queries", "GPU_IS_LOST", "nvmlDeviceGetPciInfo(GPU 3)"),
}


@pytest.mark.parametrize("way", LOST_WAYS)
def test_one_lost_gpu_leaves_show_plan_snapshot_and_doctor_working(nvmlshim: Path, tmp_path: Path,
                                                                    way: str) -> None:  # fmt: skip
    line, code, call = LOST_WAYS[way]
    env = shim_node(nvmlshim, f"{line}\n{LOCAL}")

    shown = run_pinctl(["show", "--json"], env, dev_gpus=8)
    assert shown.returncode == 0, shown.stderr
    node = json.loads(shown.stdout)
    assert len(node["gpus"]) == 7  # the seven that answer, every one placed by NVML's affinity
    assert {g["numa_node"] for g in node["gpus"]} == {0}
    assert node["cpus"] and node["numa_nodes"]  # the rest of the node is intact
    assert any("NVML GPU 3" in n and f"{call} -> {code}" in n for n in node["notes"]), node["notes"]

    planned = run_pinctl(["plan", "--json", "--gpus", "0"], env, dev_gpus=8)
    assert planned.returncode == 0, planned.stderr
    assert len(json.loads(planned.stdout)["ranks"]) == 1
    assert "NVML GPU 3" in planned.stderr and code in planned.stderr

    snap = tmp_path / "snap.xml"
    saved = run_pinctl(["snapshot", "-o", str(snap)], env)
    assert saved.returncode == 0, saved.stderr
    assert "<topology" in snap.read_text() and "NVML GPU 3" in saved.stderr and code in saved.stderr

    doctor = run_pinctl(["doctor", "--json"], env, dev_gpus=8)
    assert doctor.returncode == 2, doctor.stderr
    found = findings(doctor)
    assert levels_of(found, "node.discovery") == ["ok"]  # so the PCIe, NUMA, RDMA and IRQ checks ran
    (lost,) = found["gpu.lost"]
    assert (lost["level"], lost["subject"]) == ("fail", "GPU 3") and code in lost["summary"]
    assert lost["evidence"] == [f"{call} -> {code}"]
    if code == "NO_PERMISSION":  # a permission problem gets a permission remedy, not "replace the GPU"
        assert "Xid" not in lost["remedy"] and "/dev/nvidia*" in lost["remedy"] and "cgroup" in lost["remedy"]
    else:
        assert "Xid 79" in lost["remedy"]


def test_a_lost_gpu_the_bus_still_shows_is_named_by_its_address(nvmlshim: Path) -> None:
    env = shim_node(nvmlshim, f"gpu.3.lost = handle\n{LOCAL}")
    doctor = run_pinctl(["doctor", "--json", "--only", "gpu.lost"], env, dev_gpus=8, sys_gpus=SHIM_BUS_IDS)
    (lost,) = findings(doctor)["gpu.lost"]
    assert lost["subject"] == "GPU 3 (0000:5d:00.0)" and lost["level"] == "fail"


def test_a_healthy_node_passes(nvmlshim: Path) -> None:
    env = shim_node(nvmlshim, LOCAL)
    doctor = run_pinctl(["doctor", "--json", "--only", "gpu,procs,pcie"], env, dev_gpus=8, sys_gpus=SHIM_BUS_IDS)
    assert doctor.returncode == 0, doctor.stdout
    found = findings(doctor)
    assert levels_of(found, "gpu.lost") == levels_of(found, "gpu.driver") == ["ok"]
    assert "8 GPUs given to this job answer NVML" in found["gpu.lost"][0]["summary"]


def test_driver_library_mismatch_fails_with_the_fix(nvmlshim: Path) -> None:
    env = shim_node(nvmlshim, "init_error = LIB_RM_VERSION_MISMATCH\n")
    doctor = run_pinctl(["doctor", "--json", "--only", "gpu"], env, dev_gpus=8, sys_gpus=SHIM_BUS_IDS)
    assert doctor.returncode == 2
    (driver,) = findings(doctor)["gpu.driver"]
    assert driver["level"] == "fail" and "8 GPUs" in driver["summary"]
    assert "nvmlInit() -> LIB_RM_VERSION_MISMATCH" in driver["evidence"]
    assert "reboot" in driver["remedy"] and "modprobe nvidia" in driver["remedy"]


def test_no_driver_stays_a_note(nvmlshim: Path) -> None:
    env = shim_node(nvmlshim, "init_error = DRIVER_NOT_LOADED\n")
    doctor = run_pinctl(["doctor", "--json", "--only", "gpu"], env)
    assert doctor.returncode == 0
    found = findings(doctor)
    assert levels_of(found, "gpu.driver") == ["skipped"]
    assert "NVIDIA driver not loaded" in found["gpu.driver"][0]["summary"]


@pytest.mark.parametrize("bound", [None, "nouveau"])
def test_gpus_on_the_bus_without_their_driver_fail(nvmlshim: Path, bound: str | None) -> None:
    # the driver failed to load (a new kernel without its module, secure boot): no CUDA job can start
    env = shim_node(nvmlshim, "init_error = DRIVER_NOT_LOADED\n")
    doctor = run_pinctl(["doctor", "--json", "--only", "gpu"], env, sys_gpus=SHIM_BUS_IDS, sys_driver=bound)
    assert doctor.returncode == 2, doctor.stdout
    (driver,) = findings(doctor)["gpu.driver"]
    assert (driver["level"], driver["summary"]) == ("fail", "NVIDIA driver not loaded: 8 GPUs unusable")
    assert f"/sys/bus/pci/devices/0000:18:00.0/driver: {bound or 'none bound'}" in driver["evidence"]
    assert "modprobe nvidia" in driver["remedy"] and "dmesg" in driver["remedy"]
    passed_through = run_pinctl(["doctor", "--json", "--only", "gpu.driver"], env, sys_gpus=SHIM_BUS_IDS,
                                sys_driver="vfio-pci")  # fmt: skip
    assert levels_of(findings(passed_through), "gpu.driver") == ["skipped"]  # given to VMs on purpose


def test_nvml_that_cannot_count_the_jobs_gpus_fails(nvmlshim: Path) -> None:
    # nvmlInit succeeds, nvmlDeviceGetCount fails: before, every gpu.* check was skipped and doctor said 0
    env = shim_node(nvmlshim, "count_error = UNKNOWN\n")
    doctor = run_pinctl(["doctor", "--json", "--only", "gpu.lost"], env, dev_gpus=8, sys_gpus=SHIM_BUS_IDS)
    assert doctor.returncode == 2, doctor.stdout
    (lost,) = findings(doctor)["gpu.lost"]
    assert (lost["level"], lost["summary"]) == ("fail", "NVML fails on this job's 8 GPUs (UNKNOWN)")
    assert "NVML not available: cannot count GPUs (Unknown Error)" in lost["evidence"] and "Xid" in lost["remedy"]
    unheld = run_pinctl(["doctor", "--json", "--only", "gpu.lost"], env, dev_gpus=())  # no GPU given: not judged
    assert levels_of(findings(unheld), "gpu.lost") == ["skipped"]


def test_a_job_given_two_of_eight_gpus_is_healthy(nvmlshim: Path) -> None:
    env = shim_node(nvmlshim, f"visible = 2,5\n{LOCAL}")
    doctor = run_pinctl(["doctor", "--json", "--only", "gpu"], env, dev_gpus=(2, 5), sys_gpus=SHIM_BUS_IDS)
    assert doctor.returncode == 0, doctor.stdout
    (lost,) = findings(doctor)["gpu.lost"]
    assert lost["level"] == "ok" and "2 GPUs given to this job answer NVML" in lost["summary"]
    assert lost["summary"] == "2 GPUs given to this job answer NVML, 6 not given"
    others = ", ".join(b for b in SHIM_BUS_IDS if b not in ("0000:3a:00.0", "0000:ab:00.0"))
    assert lost["evidence"] == [f"bound to the nvidia driver, not given to this job: {others}"]
    shown = json.loads(run_pinctl(["show", "--json"], env, dev_gpus=(2, 5)).stdout)
    assert [g["pci_bus_id"] for g in shown["gpus"] if g["usable"]] == ["0000:3a:00.0", "0000:ab:00.0"]


def test_a_given_gpu_missing_from_nvml_fails(nvmlshim: Path) -> None:
    # eight device files this job may open, NVML enumerates two: a GPU fell out, not a smaller job
    env = shim_node(nvmlshim, f"visible = 2,5\n{LOCAL}")
    doctor = run_pinctl(["doctor", "--json", "--only", "gpu.lost"], env, dev_gpus=8, sys_gpus=SHIM_BUS_IDS)
    assert doctor.returncode == 2
    (lost,) = findings(doctor)["gpu.lost"]
    assert lost["summary"] == "this job holds 8 GPU device files, NVML sees 2"


@contextmanager
def sleeper() -> Iterator[int]:
    kid = subprocess.Popen(["sleep", "60"])
    try:
        yield kid.pid
    finally:
        kid.kill()
        kid.wait()


def test_a_driver_before_r510_still_lists_processes(nvmlshim: Path) -> None:
    with sleeper() as pid:
        env = shim_node(nvmlshim, f"{ONE_LOCAL}gpu.0.procs = {pid}\n", r470=True)
        checked = run_pinctl(["check", "--gpu-procs", "--json"], env)
        assert "Traceback" not in checked.stderr, checked.stderr
        assert [p["pid"] for p in json.loads(checked.stdout)["processes"]] == [pid]  # through the _v2 query
        pinned = run_pinctl(["pin", "--auto"], env, dev_gpus=1)
        assert pinned.returncode == 0 and "Traceback" not in pinned.stderr, pinned.stderr
        doctor = run_pinctl(["doctor", "--json", "--only", "procs"], env)
        (procs,) = findings(doctor)["procs.mis-pinned"]
        assert "internal error" not in procs["summary"] and procs["level"] == "ok"


MIG = "gpu.0.mig = 1\ngpu.0.mig.0.gi = 1\ngpu.0.mig.0.ci = 0\n"


def test_a_mig_gpu_lists_its_processes_to_non_root_per_instance(nvmlshim: Path) -> None:
    # NVML gives a MIG GPU's whole list only to root; each MIG instance answers for itself
    with sleeper() as pid:
        env = shim_node(nvmlshim, f"{ONE_LOCAL}{MIG}gpu.0.procs = {pid}:1048576:1:0\n")
        for as_nobody in (True, False):
            checked = run_pinctl(["check", "--gpu-procs", "--json"], env, as_nobody=as_nobody)
            doc = json.loads(checked.stdout)
            assert [p["pid"] for p in doc["processes"]] == [pid], checked.stderr
            assert not any("could not list" in n for n in doc["notes"])


def test_a_gpu_that_will_not_list_its_processes_is_not_a_clean_gpu(nvmlshim: Path) -> None:
    refused = "".join(f"fail.nvmlDeviceGet{k}RunningProcesses_v3 = NO_PERMISSION\n" for k in ("Compute", "Graphics"))
    with sleeper() as pid:
        env = shim_node(nvmlshim, f"{ONE_LOCAL}{MIG}gpu.0.procs = {pid}:1048576:1:0\n{refused}")
        checked = run_pinctl(["check", "--gpu-procs", "--json"], env, as_nobody=True)
        assert checked.returncode == 1, checked.stderr
        doc = json.loads(checked.stdout)
        assert doc["ok"] is False and doc["processes"] == []
        assert any("could not list the processes on GPU 0" in n and "NO_PERMISSION" in n for n in doc["notes"])
        doctor = run_pinctl(["doctor", "--json", "--only", "procs"], env, as_nobody=True)
        (procs,) = findings(doctor)["procs.mis-pinned"]
        assert procs["level"] == "warn" and procs["summary"] == "could not list the processes on this GPU"
        assert "as root" in procs["remedy"]
        pinned = run_pinctl(["pin", "--auto"], env, dev_gpus=1, as_nobody=False)
        assert "could not list the processes on GPU 0" in pinned.stderr and "left alone" in pinned.stderr


def test_nvml_judges_a_pcie_link_sysfs_does_not_show(nvmlshim: Path) -> None:
    env = shim_node(nvmlshim, f"gpu.2.pcie_width = 8\n{LOCAL}")
    doctor = run_pinctl(["doctor", "--json", "--only", "pcie"], env)
    gpu_links = [f for f in findings(doctor)["pcie.link-degraded"] if f["subject"].startswith("GPU")]
    assert [(f["level"], f["subject"], f["summary"]) for f in gpu_links] == [
        ("warn", "GPU 2 (0000:3a:00.0)", "link trained at x8 of x16")
    ]
    assert "nvmlDeviceGetCurrPcieLinkGeneration/Width(GPU 2) = Gen5 x8" in gpu_links[0]["evidence"]
    healthy = findings(run_pinctl(["doctor", "--json", "--only", "pcie"], shim_node(nvmlshim, LOCAL)))
    assert not [f for f in healthy["pcie.link-degraded"] if f["level"] == "warn" and "GPU" in f["subject"]]


def test_nvml_affinity_outside_this_node_is_not_believed(nvmlshim: Path) -> None:
    # NVML names NUMA node 7 (absent here) but CPU 0: the GPU goes where its CPUs are
    env = shim_node(nvmlshim, "gpus = 1\ngpu.0.numa_node = 7\ngpu.0.cpus = 0\n")
    (gpu,) = json.loads(run_pinctl(["show", "--json"], env).stdout)["gpus"]
    assert gpu["numa_node"] == 0


def test_gpus_a_device_cgroup_keeps_from_the_job_are_not_lost(nvmlshim: Path) -> None:
    # Slurm's ConstrainDevices: NVML counts all 8, refuses the handles of the 6 not allocated, and the
    # job holds the device files of the 2 it opens: those 6 were not given, nothing is lost
    denied = "".join(f"gpu.{i}.handle_error = NO_PERMISSION\n" for i in (0, 1, 3, 4, 6, 7))
    env = shim_node(nvmlshim, f"{denied}{LOCAL}")
    doctor = run_pinctl(["doctor", "--json", "--only", "gpu.lost"], env, dev_gpus=(2, 5), sys_gpus=SHIM_BUS_IDS)
    assert doctor.returncode == 0, doctor.stdout
    (lost,) = findings(doctor)["gpu.lost"]
    assert lost["summary"] == "2 GPUs given to this job answer NVML, 6 not given"
    # the same refusals with all eight device files held: the GPUs are there and this job may not open them
    doctor = run_pinctl(["doctor", "--json", "--only", "gpu.lost"], env, dev_gpus=8, sys_gpus=SHIM_BUS_IDS)
    assert doctor.returncode == 2 and levels_of(findings(doctor), "gpu.lost") == ["fail"] * 6


def test_show_on_a_terminal_names_the_lost_gpu(nvmlshim: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_terminal_views import in_pty  # the same pseudo-terminal the views are checked in

    env = shim_node(nvmlshim, f"gpu.3.lost = handle\n{LOCAL}")
    for name in ("LD_LIBRARY_PATH", "FAKE_NVML_CONFIG"):
        monkeypatch.setenv(name, env[name])
    text = " ".join(in_pty(100, "show").split())  # notes wrap at spaces on a terminal
    assert ("lost GPU: NVML GPU 3: NVML cannot open it (nvmlDeviceGetHandleByIndex(3) -> GPU_IS_LOST); "
            "`pinctl doctor` says what to do") in text  # fmt: skip
    assert text.count("GPU_IS_LOST") == 1  # NVML's words once, not twice
    assert "GPU6" in text and "GPU7" not in text  # the seven that answer are drawn


SICK = (
    "gpu.0.lost = queries\ngpu.1.fabric = in_progress\ngpu.4.fabric_status = UNKNOWN\n"
    "gpu.1.clock_events = hw_slowdown\n"
    "gpu.2.nvlink.3.errors = 10,2,0,0,0\ngpu.5.ecc_errors = 0,2,0,2\ngpu.6.ecc_errors = 0,0,0,2\n"
    "gpu.7.remapped_rows = 0,1,1,0\ngpu.3.nvlink_down = 3,7\ngpu.2.replay = 50\ngpu.2.vbios = 96.00.11\n"
    "gpu.5.gsp_version = 535.1\n"
)


UNSUPPORTED = "".join(  # a GPU that answers none of the health queries: every gpu.* check skips, briefly
    f"fail.nvmlDevice{f} = NOT_SUPPORTED\n"
    for f in ("GetPersistenceMode", "GetRemappedRows", "GetRetiredPagesPendingStatus", "GetCurrentClocksEventReasons",
              "GetCurrentClocksThrottleReasons", "GetTotalEccErrors", "GetNvLinkErrorCounter", "GetNvLinkState",
              "GetGpuFabricInfoV", "GetGpuFabricInfo", "GetPcieReplayCounter", "GetVbiosVersion",
              "GetGspFirmwareVersion")
)  # fmt: skip


def test_a_node_that_reports_no_health_skips_in_short_lines(nvmlshim: Path) -> None:
    doctor = run_pinctl(
        ["doctor", "--json", "--only", "gpu,gpudirect"], shim_node(nvmlshim, f"{UNSUPPORTED}{LOCAL}"), dev_gpus=8
    )
    found = [f for fs in findings(doctor).values() for f in fs if f["check"] != "gpu.xid"]
    assert doctor.returncode == 0 and {f["level"] for f in found if f["check"] != "gpu.lost"} == {"skipped"}
    assert [f["summary"] for f in found if len(f["summary"]) > 50] == []


def test_a_sick_nodes_findings_each_keep_a_short_line(nvmlshim: Path) -> None:
    # an 80-column doctor table leaves about 47 columns for "subject: summary": the detail is in evidence and fix
    doctor = run_pinctl(
        ["doctor", "--json", "--only", "gpu,gpudirect,rdma"], shim_node(nvmlshim, f"{SICK}{LOCAL}"), dev_gpus=8
    )
    found = [f for fs in findings(doctor).values() for f in fs]
    assert {f["level"] for f in found} >= {"fail", "warn"}
    skip = ("rdma.no-", "gpu.xid")  # (gpu.xid: the test's own /dev holds no /dev/kmsg)
    long = [f["summary"] for f in found if len(f["summary"]) > 50 and not f["check"].startswith(skip)]
    assert not long, long
    (remap,) = [f for f in found if f["check"] == "gpu.memory-retirement"]  # an H100 has no page retirement
    assert remap["evidence"] == [
        "GPU 7: retired pages pending = not reported, row remap pending = yes, row remap failure = no"
    ]
    mismatch = run_pinctl(
        ["doctor", "--json", "--only", "gpu"], shim_node(nvmlshim, "init_error = LIB_RM_VERSION_MISMATCH\n")
    )
    assert all(len(f["summary"]) <= 52 for fs in findings(mismatch).values() for f in fs), mismatch.stdout


@pytest.mark.parametrize("held", [(), (2, 5)])
def test_doctor_and_show_count_the_same_usable_gpus(nvmlshim: Path, held: tuple[int, ...]) -> None:
    # NVML answers for all eight; the job can open the device files of *held* only (docs/partial-nodes.md)
    env = shim_node(nvmlshim, LOCAL)
    shown = json.loads(run_pinctl(["show", "--json"], env, dev_gpus=held).stdout)
    usable = [g["pci_bus_id"] for g in shown["gpus"] if g["usable"]]
    assert usable == [SHIM_BUS_IDS[i] for i in held]
    closed = {g["pci_bus_id"]: g["unusable"] for g in shown["gpus"] if not g["usable"]}
    assert closed["0000:18:00.0"] == "/dev/nvidia0 is absent or cannot be opened"
    doctor = run_pinctl(["doctor", "--json", "--only", "gpu"], env, dev_gpus=held)
    assert doctor.returncode == 1, doctor.stdout  # a warning: NVML answers for GPUs the job cannot open
    found = findings(doctor)
    (shut,) = [f for f in found["gpu.lost"] if f["level"] == "warn"]  # said once, in gpu.lost
    assert shut["summary"] == f"{8 - len(held)} GPUs answer NVML, device file not openable"
    assert f"GPU 0 (0000:18:00.0): {closed['0000:18:00.0']}" in shut["evidence"]  # show's words
    assert len(shut["evidence"]) == 8 - len(held) and "/dev/nvidia*" in shut["remedy"]
    others = [f for f in found["gpu.lost"] if f is not shut]
    if held:
        assert [f["summary"] for f in others] == ["2 GPUs given to this job answer NVML"]
        assert levels_of(found, "gpu.persistence-mode") == ["ok"]
        assert "2 GPUs" in found["gpu.persistence-mode"][0]["summary"]  # the job's GPUs, as show counts them
    else:
        assert others == [] and levels_of(found, "gpu.persistence-mode") == ["skipped"]
        assert "gpu.lost" in found["gpu.persistence-mode"][0]["summary"]


def test_doctor_leaves_out_the_gpus_a_visibility_variable_hides(nvmlshim: Path) -> None:
    env = {**shim_node(nvmlshim, LOCAL), "CUDA_VISIBLE_DEVICES": "0,1"}
    shown = json.loads(run_pinctl(["show", "--json"], env, dev_gpus=8).stdout)
    assert [g["index"] for g in shown["gpus"] if g["usable"]] == [0, 1]
    doctor = run_pinctl(["doctor", "--json", "--only", "gpu"], env, dev_gpus=8)
    assert doctor.returncode == 0, doctor.stdout
    found = findings(doctor)
    (lost,) = found["gpu.lost"]
    assert lost["summary"] == "2 GPUs given to this job answer NVML, 6 left out"
    assert "GPU 2: hidden by CUDA_VISIBLE_DEVICES=0,1" in lost["evidence"]
    assert found["gpu.persistence-mode"][0]["summary"].endswith("2 GPUs")  # the two the job may use


def test_a_job_given_no_gpu_is_told_so_plainly(nvmlshim: Path) -> None:
    shown = run_pinctl(["show", "--json"], shim_node(nvmlshim, LOCAL), dev_gpus=())
    notes = json.loads(shown.stdout)["notes"]
    assert "this job may use none of the node's 8 GPUs; each is marked with the reason" in notes, notes


def test_a_gpu_with_ecc_off_among_peers_with_it_on_is_named(nvmlshim: Path) -> None:
    doctor = run_pinctl(["doctor", "--json", "--only", "gpu.ecc"], shim_node(nvmlshim, f"gpu.4.ecc = 0\n{LOCAL}"))
    (off,) = findings(doctor)["gpu.ecc"]  # before: "no uncorrectable ECC errors on 7 GPUs", GPU 4 unmentioned
    assert (off["level"], off["subject"], off["summary"]) == (
        "warn",
        "GPU 4 (0000:9a:00.0)",
        "ECC off (on for its peers)",
    )
    assert "nvidia-smi -i 4 -e 1" in off["remedy"]
    all_off = "".join(f"gpu.{i}.ecc = 0\n" for i in range(8))  # a node run without ECC throughout: not a sick GPU
    doctor = run_pinctl(["doctor", "--json", "--only", "gpu.ecc"], shim_node(nvmlshim, f"{all_off}{LOCAL}"))
    assert levels_of(findings(doctor), "gpu.ecc") == ["skipped"] and doctor.returncode == 0


def test_fleet_names_the_node_that_runs_another_driver(nvmlshim: Path, tmp_path: Path) -> None:
    # doctor --json carries NVML's driver version (inventory.kernel.nvidia_driver): a node left on the old
    # driver after a rolling upgrade is odd among its peers though each of its own checks passes
    reports = []
    for i, driver in enumerate(("550.90.07", "550.90.07", "535.104.05")):
        doctor = run_pinctl(["doctor", "--json"], shim_node(nvmlshim, f"driver_version = {driver}\n{LOCAL}"))
        assert json.loads(doctor.stdout)["inventory"]["kernel"]["nvidia_driver"] == driver
        (tmp_path / f"node{i}.json").write_text(doctor.stdout)
        reports.append(str(tmp_path / f"node{i}.json"))
    fleet = subprocess.run([*PINCTL, "fleet", *reports], capture_output=True, text=True, check=False, timeout=120)
    assert fleet.returncode == 1, fleet.stdout
    assert "NVIDIA driver 535.104.05, fleet 550.90.07" in fleet.stdout
