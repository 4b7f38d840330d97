"""Each GPU vendor's selector and device file, each fabric's NIC selector: on built nodes and real captures."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from nodes import Layout, NicSpec, build_node

from pinctl.api import discover
from pinctl.model import Node
from pinctl.plan.make import make_plan
from pinctl.plan.request import PlanRequest
from pinctl.planfile.types import Plan
from pinctl.render.export import plan_to_slurm

SHARED = Path(__file__).resolve().parents[2] / "shared" / "topologies"
GPUS = ((0, 0, 0), (0, 0, 1), (1, 0, 0), (1, 0, 1))
SELECTORS = ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ZE_AFFINITY_MASK")


def capture(name: str) -> Node:
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"shared topology {name} not available")
    return discover(topology=str(path))


def plan(node: Node, **kw: object) -> Plan:
    return make_plan(node, PlanRequest(**kw))  # type: ignore[arg-type]


def selectors(p: Plan) -> list[dict[str, str]]:
    return [{k: v for k, v in r.env if k in SELECTORS or k.startswith("ZE_")} for r in p.ranks]


def test_nvidia_gets_cuda_visible_devices() -> None:
    p = plan(build_node(Layout(gpus=GPUS)), isolate_gpus=True)
    assert selectors(p)[1] == {"CUDA_VISIBLE_DEVICES": "GPU-00000001-0000"}
    assert "Name=gpu File=/dev/nvidia1 " in plan_to_slurm(p)


def test_amd_gets_rocr_visible_devices_and_render_nodes() -> None:
    p = plan(build_node(Layout(gpus=GPUS, gpu_vendor="amd")), isolate_gpus=True)
    # GPUs 0 and 2 have a unique id (ROCm's spelling: 16 upper-case hex digits); 1 and 3 only a ROCm SMI index
    assert selectors(p) == [
        {"ROCR_VISIBLE_DEVICES": "GPU-000000000000ABC0"},
        {"ROCR_VISIBLE_DEVICES": "1"},
        {"ROCR_VISIBLE_DEVICES": "GPU-000000000000ABC2"},
        {"ROCR_VISIBLE_DEVICES": "3"},
    ]
    slurm = plan_to_slurm(p)
    assert "Name=gpu File=/dev/dri/renderD128 " in slurm and "/dev/nvidia" not in slurm
    assert all(k != "CUDA_VISIBLE_DEVICES" for r in plan(build_node(Layout(gpus=GPUS, gpu_vendor="amd"))).ranks
               for k, _ in r.env)  # fmt: skip


def test_intel_gets_level_zero_mask_in_pci_order() -> None:
    p = plan(build_node(Layout(gpus=GPUS, gpu_vendor="intel")), gpus=(1, 3), isolate_gpus=True)
    assert selectors(p) == [
        {"ZE_AFFINITY_MASK": str(i), "ZE_ENABLE_PCI_ID_DEVICE_ORDER": "1", "ZE_FLAT_DEVICE_HIERARCHY": "COMPOSITE"}
        for i in (1, 3)
    ]
    assert "Name=gpu File=/dev/dri/renderD129 " in plan_to_slurm(p)


def test_without_isolation_no_selector_at_all() -> None:
    for vendor in ("nvidia", "amd", "intel"):
        assert selectors(plan(build_node(Layout(gpus=GPUS, gpu_vendor=vendor)))) == [{}] * 4


def test_efa_gets_fi_efa_iface() -> None:
    efa = NicSpec((0, 0, 0), (("ACTIVE", None),), kind="efa")
    p = plan(build_node(Layout(gpus=GPUS, nics=(efa, replace(efa, place=(1, 0, 0))))))
    env = [dict(r.env) for r in p.ranks]
    assert [e["FI_EFA_IFACE"] for e in env] == ["mlx5_0", "mlx5_0", "mlx5_1", "mlx5_1"]
    assert all("NCCL_IB_HCA" not in e for e in env)


def test_tioga_mi250x_rocr_uuid_and_slingshot_note() -> None:
    p = plan(capture("mpibind-eas-tioga.xml"), isolate_gpus=True)
    assert selectors(p)[0] == {"ROCR_VISIBLE_DEVICES": "GPU-4A7C19DA329A2B8C"}
    assert not any("CUDA" in k for r in p.ranks for k, _ in r.env)
    slurm = plan_to_slurm(p)
    assert "/dev/nvidia" not in slurm
    assert "ls -l /dev/dri/by-path/pci-0000:c1:00.0-render" in slurm  # no render node in the capture
    notes = [w for w in p.warnings if w.startswith("Slingshot NICs")]
    assert notes == [notes[0]] and "hsi0, hsi1, hsi2, hsi3" in notes[0] and "no per-process NIC selector" in notes[0]


def test_corona_ids_are_zero_padded_and_pci_order_kept() -> None:
    p = plan(capture("mpibind-epyc-corona-p2.xml"), isolate_gpus=True)
    # GPU 4 (83:00.0) is ROCm SMI's rsmi6; its id has 15 hex digits in the capture
    assert selectors(p)[4] == {"ROCR_VISIBLE_DEVICES": "GPU-0F62596172E6212B"}


def test_corona_without_ids_says_so_once() -> None:
    p = plan(capture("mpibind-epyc-corona.xml"), isolate_gpus=True)
    assert selectors(p) == [{}] * 4
    assert [w for w in p.warnings if "--isolate-gpus" in w] == [
        "GPUs 0-3: --isolate-gpus sets no ROCR_VISIBLE_DEVICES: the topology gives no unique id or ROCm index"
    ]


def test_g4dn_efa_named_by_its_verbs_device() -> None:
    p = plan(capture("mpibind-g4dnmetal.xml"))
    assert {dict(r.env).get("FI_EFA_IFACE") for r in p.ranks} == {"rdmap197s0"}


def test_fi_efa_iface_never_hides_an_idle_near_efa() -> None:
    """p5-like: four EFAs under each GPU's switch. Naming one must not hide the other three."""
    node = discover(topology=str(Path(__file__).resolve().parents[1] / "fixtures" / "nccl" / "aws-p5-like.xml"))
    p = plan(node)
    assert all("FI_EFA_IFACE" not in dict(r.env) for r in p.ranks)
    assert (
        "GPUs 0-7: 3 more EFAs as near as the ones planned and used by no rank, so FI_EFA_IFACE is not "
        "set (libfabric keeps every EFA visible); --nics-per-gpu 4 names them" in p.warnings
    )
    four = plan(node, nics_per_gpu=4)
    assert all(len(dict(r.env)["FI_EFA_IFACE"].split(",")) == 4 for r in four.ranks)
    assert not any("FI_EFA_IFACE is not set" in w for w in four.warnings)
