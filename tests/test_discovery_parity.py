"""Parity: the built-in reader and libhwloc (pyhwloc) give equal Nodes, and equal plans.

For every hwloc XML fixture, every hwloc capture in ../shared/topologies (XML files and the
gathered trees in its tar.bz2 files, unpacked), every gathered tree in fixtures/ (and
fixtures/gen_grace.py's), and this machine. Nodes are compared field by field and a difference is shown by its path
(``node.gpus[3].pci.numa_node: hwloc=0 builtin=None``). Accepted differences are listed in
docs/design.md ("Two discovery engines"); there are none on these inputs. A source both
engines refuse must be refused by both. Skipped where pyhwloc is not usable (the second CI
run, without pyhwloc, still runs tests/test_discover_builtin.py).
"""

from __future__ import annotations

import dataclasses
import re
import tarfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pinctl import api
from pinctl.discovery import discover
from pinctl.discovery.builtin import load_builtin
from pinctl.errors import PinctlError, TopologyError
from pinctl.model import Node

try:
    from pinctl.discovery.hwloc import isolated

    isolated.ensure_pyhwloc()
except TopologyError as e:  # pragma: no cover - the run without pyhwloc
    pytest.skip(f"parity needs pyhwloc to compare against ({e})", allow_module_level=True)

from pinctl.discovery.hwloc import load_hwloc

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "topologies"
XMLS = sorted((ROOT / "fixtures" / "hwloc").glob("*.xml")) + sorted((ROOT / "fixtures" / "grace").glob("*.xml"))
SHARED_XMLS = sorted(p for p in SHARED.glob("*.xml") if not p.name.endswith(".nccl.xml")) if SHARED.is_dir() else []
TARS = sorted(SHARED.glob("*.tar.bz2")) if SHARED.is_dir() else []
TREES = sorted(p.parent.parent.parent for p in (ROOT / "fixtures").glob("**/sys/devices/system"))


def differences(a: Any, b: Any, path: str = "node") -> list[str]:
    """Every field where *a* (hwloc) and *b* (built-in) differ, by its path."""
    if dataclasses.is_dataclass(a) and not isinstance(a, type) and type(a) is type(b):
        out: list[str] = []
        for f in dataclasses.fields(a):
            out += differences(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
        return out
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{path}[{i}]")]
    if a != b:
        return [f"{path}: hwloc={_short(a)} builtin={_short(b)}"]
    return []


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 200 else text[:200] + "..."


def _both(load: Any) -> tuple[Any, Any]:
    """(hwloc's result, the built-in one's), each a Node or the refusal's type."""
    out = []
    for engine in ("hwloc", "builtin"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("PINCTL_DISCOVERY", engine)
            try:
                out.append(load())
            except PinctlError as e:
                out.append(type(e))
    return out[0], out[1]


def assert_same(a: Any, b: Any) -> None:
    diff = differences(a, b)
    assert not diff, "the two engines differ:\n" + "\n".join(diff[:40])


def assert_same_plans(a: Any, b: Any) -> None:
    if isinstance(a, type):
        return
    plans = []
    for node in (a, b):
        try:
            plans.append(api.make_plan(node))
        except PinctlError as e:
            plans.append(str(e))
    assert_same(plans[0], plans[1])


@pytest.mark.parametrize("path", XMLS + SHARED_XMLS, ids=lambda p: p.name)
def test_hwloc_xml_same_node(path: Path) -> None:
    raw = (load_hwloc(xml_path=str(path)), load_builtin(xml_path=str(path))) if "hwloc1" not in path.name else None
    if raw is not None:
        assert_same(*raw)
    a, b = _both(lambda: discover(topology=str(path)))
    assert_same(a, b)
    assert_same_plans(a, b)


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each gathered capture in ../shared/topologies, unpacked once."""
    out = {}
    for tar in TARS:
        dest = tmp_path_factory.mktemp(tar.name.split(".")[0])
        with tarfile.open(tar) as t:
            if hasattr(tarfile, "tar_filter"):
                t.extractall(dest, filter="tar")  # symlinks inside the tree, as sysfs has them
            else:  # pragma: no cover - Python before 3.10.12 / 3.11.4
                t.extractall(dest)
        tops = [p for p in dest.iterdir() if (p / "sys").is_dir()]
        out[tar.name] = tops[0] if tops else dest
    return out


@pytest.mark.parametrize("name", [t.name for t in TARS])
def test_gathered_capture_same_node(name: str, unpacked: dict[str, Path]) -> None:
    tree = str(unpacked[name])
    assert_same(load_hwloc(fsroot=tree), load_builtin(fsroot=tree))
    a, b = _both(lambda: discover(root=tree, env={}))
    assert not isinstance(a, type), f"libhwloc could not read {name}"
    assert_same(a, b)
    assert_same_plans(a, b)


@pytest.mark.parametrize("tree", TREES, ids=lambda p: str(p.relative_to(ROOT / "fixtures")))
def test_fixture_tree_same_node(tree: Path) -> None:
    a, b = _both(lambda: discover(root=str(tree), env={}))
    assert_same(a, b)
    assert_same_plans(a, b)


# OS devices only libhwloc's GPU plugins make on a live system (docs/design.md, accepted differences).
_PLUGIN_OSDEV = re.compile(r"^(nvml|cuda|opencl|rsmi|ze)\d")


def _without_plugin_osdevs(node: Node) -> Node:
    gpus = tuple(replace(g, os_names=tuple(n for n in g.os_names if not _PLUGIN_OSDEV.match(n))) for g in node.gpus)
    return replace(node, gpus=gpus)


@pytest.mark.parametrize("name", ["gh200", "gb200-tray"])
def test_grace_trees_same_node(name: str, grace_trees: Path) -> None:
    """fixtures/gen_grace.py's gathered trees (GPU memory nodes, empty MIG nodes, C2C)."""
    tree = str(grace_trees / name)
    a, b = _both(lambda: discover(root=tree, env={}))
    assert not isinstance(a, type), f"libhwloc could not read {name}"
    assert_same(a, b)
    assert_same_plans(a, b)


def test_this_machine_same_node() -> None:
    a, b = _both(lambda: discover(env={}))  # NVML where a driver is: names and UUIDs come from it on both
    assert not isinstance(a, type) and not isinstance(b, type)
    assert_same(_without_plugin_osdevs(a), b)
    assert_same_plans(a, b)
