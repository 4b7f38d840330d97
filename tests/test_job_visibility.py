"""The visibility variables as each runtime reads them, and the invariant that matters: every GPU
variable pinctl writes names a GPU the launched process can see, and LOCAL_RANK i gets the i-th."""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pinctl import api
from pinctl.discovery import discover
from pinctl.discovery.access import JobAccess, apply_access
from pinctl.model import Gpu, MigDevice, Node, PciAddress, PciInfo

DGX = str(Path(__file__).resolve().parents[1] / "fixtures" / "hwloc" / "dgx-h100.xml")


@cache
def dgx() -> Node:
    return discover(topology=DGX)


def job(env: dict[str, str], node: Node | None = None, **facts: object) -> Node:
    return apply_access(node or dgx(), JobAccess(env=tuple(env.items()), **facts))  # type: ignore[arg-type]


def usable(node: Node) -> list[tuple[int, int | None]]:
    return [(g.index, g.visible_index) for g in node.usable_gpus]


def test_cuda_visible_devices_stops_at_the_first_entry_that_names_no_gpu() -> None:
    assert usable(job({"CUDA_VISIBLE_DEVICES": "3,1,9,2"})) == [(3, 0), (1, 1)]
    assert usable(job({"CUDA_VISIBLE_DEVICES": "-1"})) == []
    assert usable(job({"CUDA_VISIBLE_DEVICES": ""})) == []
    uuid = dgx().gpus[6].uuid
    assert uuid is not None
    assert usable(job({"CUDA_VISIBLE_DEVICES": uuid[:12] + ",0"})) == [(6, 0), (0, 1)]  # a unique UUID prefix
    hidden = job({"CUDA_VISIBLE_DEVICES": "3,1"}).gpus[0].unusable
    assert hidden == "hidden by CUDA_VISIBLE_DEVICES=3,1"


def test_container_variable_all_none_and_indexes() -> None:
    assert len(usable(job({"NVIDIA_VISIBLE_DEVICES": "all"}))) == 8
    assert usable(job({"NVIDIA_VISIBLE_DEVICES": "void"})) == []
    # The container's indexes are the host's; CUDA_VISIBLE_DEVICES then counts the container's GPUs.
    assert usable(job({"NVIDIA_VISIBLE_DEVICES": "6,2", "CUDA_VISIBLE_DEVICES": "1"})) == [(6, 0)]


def test_device_files_and_nvml_must_agree() -> None:
    node = dgx()
    named = replace(node, gpus=tuple(replace(g, os_names=(f"nvidia{g.index}",)) for g in node.gpus))
    files = frozenset({"nvidia1", "nvidia4", "nvidiactl"})
    out = job({}, named, device_files=files, nvml=frozenset(g.pci.address for g in node.gpus[:4]))
    assert usable(out) == [(1, 0)]  # nvidia4 opens but NVML does not list GPU 4
    assert out.gpus[0].unusable == "/dev/nvidia0 is absent or cannot be opened"
    assert out.gpus[4].unusable is not None and "NVML does not list it" in out.gpus[4].unusable


def test_slurm_step_gpus_with_and_without_constrain_devices() -> None:
    node = dgx()
    named = replace(node, gpus=tuple(replace(g, os_names=(f"nvidia{g.index}",)) for g in node.gpus))
    # ConstrainDevices=yes: CUDA_VISIBLE_DEVICES counts the step's GPUs from 0, and so would a new one.
    constrained = job({"SLURM_STEP_GPUS": "2,5", "CUDA_VISIBLE_DEVICES": "0,1"}, named)
    assert usable(constrained) == [(2, 0), (5, 1)]
    assert [g.runtime_index for g in constrained.usable_gpus] == [0, 1]
    # Without it, Slurm writes the same global numbers into both, and CUDA still opens all eight.
    free = job({"SLURM_STEP_GPUS": "2,5", "CUDA_VISIBLE_DEVICES": "2,5"}, named)
    assert usable(free) == [(2, 0), (5, 1)]
    assert [g.runtime_index for g in free.usable_gpus] == [2, 5]
    assert usable(job({"SLURM_JOB_GPUS": "7"}, named)) == [(7, 0)]
    assert job({"SLURM_JOB_GPUS": "7"}, named).gpus[0].unusable == "not in SLURM_JOB_GPUS=7"


def test_rocm_and_level_zero_selectors() -> None:
    amd = tuple(Gpu(i, PciInfo(PciAddress(0, 0xC1 + i, 0, 0)), vendor="amd", uuid=f"0x{i + 0xA0:x}",
                    os_names=(f"rsmi{3 - i}",)) for i in range(4))  # fmt: skip
    node = replace(dgx(), gpus=amd)
    # ROCm's order is rsmi's: rsmi0 is GPU 3. ROCR takes indexes or GPU-<unique id>; HIP counts what ROCR left.
    assert usable(job({"ROCR_VISIBLE_DEVICES": "0,GPU-00000000000000A0"}, node)) == [(3, 0), (0, 1)]
    assert usable(job({"ROCR_VISIBLE_DEVICES": "0,1,2", "HIP_VISIBLE_DEVICES": "2"}, node)) == [(1, 0)]
    plan = api.make_plan(job({"ROCR_VISIBLE_DEVICES": "1"}, replace(node, gpus=tuple(
        replace(g, uuid=None) for g in amd))), isolate_gpus=True)  # fmt: skip
    assert [dict(r.env)["ROCR_VISIBLE_DEVICES"] for r in plan.ranks] == ["1"]  # rsmi1 = GPU 2
    intel = tuple(Gpu(i, PciInfo(PciAddress(0, 0x30 + i, 0, 0)), vendor="intel") for i in range(4))
    node = replace(dgx(), gpus=intel)
    assert usable(job({"ZE_AFFINITY_MASK": "2.0,2.1,0"}, node)) == [(2, 0), (0, 1)]


def test_mig_mode_without_instances_is_not_usable() -> None:
    gpus = list(dgx().gpus)
    gpus[0] = replace(gpus[0], unusable="in MIG mode with no MIG instance this job can see")
    gpus[1] = replace(gpus[1], mig=(MigDevice("MIG-a"), MigDevice("MIG-b")))
    out = job({"CUDA_VISIBLE_DEVICES": "MIG-b"}, replace(dgx(), gpus=tuple(gpus)))
    assert usable(out) == [(1, 0)] and [m.uuid for m in out.gpus[1].mig] == ["MIG-b"]
    assert "MIG mode" in (out.gpus[0].unusable or "")


@st.composite
def jobs(draw: st.DrawFn) -> tuple[dict[str, str], list[int], list[int], bool]:
    """A container given some GPUs (by index or UUID), a CUDA_VISIBLE_DEVICES over them, UUIDs known or not."""
    given_gpus = sorted(draw(st.sets(st.integers(0, 7), min_size=1)))
    by_uuid = draw(st.booleans())
    uuids = [g.uuid or "" for g in dgx().gpus]
    env = {"NVIDIA_VISIBLE_DEVICES": ",".join(uuids[i] if by_uuid else str(i) for i in given_gpus)}
    order = given_gpus
    if draw(st.booleans()):
        picks = draw(st.lists(st.integers(0, len(given_gpus) - 1), min_size=1, unique=True))
        env["CUDA_VISIBLE_DEVICES"] = ",".join(
            uuids[given_gpus[p]] if draw(st.booleans()) else str(p) for p in picks)  # fmt: skip
        order = [given_gpus[p] for p in picks]
    return env, given_gpus, order, draw(st.booleans())


@settings(max_examples=60, deadline=None)
@given(jobs())
def test_every_written_selector_names_a_gpu_the_process_sees(drawn: tuple[dict[str, str], list[int], list[int],
                                                                          bool]) -> None:  # fmt: skip
    env, container, order, keep_uuids = drawn
    node = job(env)
    if not keep_uuids:
        node = replace(node, gpus=tuple(replace(g, uuid=None) for g in node.gpus))
    assert [g.index for g in node.usable_gpus] == order
    plan = api.make_plan(node, isolate_gpus=True)
    assert [r.gpu.index for r in plan.ranks if r.gpu] == order  # LOCAL_RANK i is CUDA's device i
    for rank in plan.ranks:
        assert rank.gpu is not None and rank.gpu.visible_index == rank.local_rank
        value = dict(rank.env)["CUDA_VISIBLE_DEVICES"]
        if keep_uuids:
            assert value == dgx().gpus[rank.gpu.index].uuid
        else:  # a new CUDA_VISIBLE_DEVICES counts the container's GPUs (PCI order), not the node's
            assert container[int(value)] == rank.gpu.index


def test_amd_render_nodes_decide_in_a_container() -> None:
    amd = tuple(Gpu(i, PciInfo(PciAddress(0, 0xC1 + i, 0, 0)), vendor="amd", uuid=f"0x{i + 0xA0:x}",
                    os_names=(f"renderD{128 + i}",)) for i in range(4))  # fmt: skip
    node = job({}, replace(dgx(), gpus=amd), device_files=frozenset({"renderD129", "renderD131"}))
    assert usable(node) == [(1, 0), (3, 1)]
    assert node.gpus[0].unusable == "/dev/dri/renderD128 is absent or cannot be opened"
    plan = api.make_plan(replace(node, gpus=tuple(replace(g, uuid=None, os_names=(*g.os_names, f"rsmi{g.index}"))
                                                  for g in node.gpus)), isolate_gpus=True)  # fmt: skip
    assert [dict(r.env)["ROCR_VISIBLE_DEVICES"] for r in plan.ranks] == ["0", "1"]  # the container's count


@st.composite
def cgroups(draw: st.DrawFn) -> tuple[frozenset[int], frozenset[int]]:
    cpus = dgx().cpus
    allowed = draw(st.sets(st.sampled_from(sorted(cpus)), min_size=8, max_size=64))
    return frozenset(allowed), frozenset(draw(st.sets(st.sampled_from([0, 1]), min_size=1)))


@settings(max_examples=40, deadline=None)
@given(cgroups(), st.sampled_from(["bind", "preferred", "interleave"]))
def test_ranks_stay_inside_the_cgroup(limits: tuple[frozenset[int], frozenset[int]], policy: str) -> None:
    cpus, mems = limits
    node = job({"CUDA_VISIBLE_DEVICES": "0,5"}, cpus=cpus, mems=mems)
    plan = api.make_plan(node, mem_policy=policy)
    assert [r.gpu.index for r in plan.ranks if r.gpu] == [0, 5]
    for rank in plan.ranks:
        assert rank.cpus and rank.cpus <= cpus
        assert rank.mems and rank.mems <= mems


VISIBILITY_VARS = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES",
                   "ZE_AFFINITY_MASK", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS")  # fmt: skip
GARBAGE = st.lists(st.sampled_from([*"0123456789²٣,.:- abcdef", "GPU-", "MIG-", "all", "void"]),
                   max_size=12).map("".join)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(VISIBILITY_VARS), GARBAGE, max_size=4))
def test_any_visibility_text_gives_usable_gpus_in_a_runtime_order(env: dict[str, str]) -> None:
    """Whatever the variables say (digits in other scripts, half UUIDs, junk), the job's GPUs are a
    subset of the node's, each once, counted 0..n-1 as the runtime counts them; never an exception."""
    out = job(env)
    seen = [g.index for g in out.usable_gpus]
    assert len(seen) == len(set(seen)) and set(seen) <= {g.index for g in dgx().gpus}
    assert [g.visible_index for g in out.usable_gpus] == list(range(len(seen)))
