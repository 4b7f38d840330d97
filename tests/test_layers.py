"""The rules of docs/design.md, checked on the source: which room may import which, who may print,
who may name a kernel path, where each third-party library may be used, and how big a module may get."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pinctl"
VOCABULARY = {"errors", "record", "cpuset", "words", "model", "distance", "nodejson"}

# room -> the rooms it may import (its own included)
ALLOWED = {
    "vocabulary": {"vocabulary"},
    "kernel": {"vocabulary", "kernel"},
    "discovery": {"vocabulary", "kernel", "discovery"},
    "planfile": {"vocabulary", "planfile"},  # the plan file's contract: below the planner and launch
    "plan": {"vocabulary", "planfile", "plan"},
    "job": {"vocabulary", "kernel", "planfile", "job"},  # launch-time facts: the environment, the kernel
    "act": {"vocabulary", "kernel", "planfile", "plan", "act"},
    "pinning": {"vocabulary", "kernel", "discovery", "planfile", "plan", "job", "pinning"},  # check's engine
    "doctor": {"vocabulary", "kernel", "discovery", "planfile", "plan", "pinning", "doctor"},
    "fleet": {"vocabulary", "fleet"},
    # the arithmetic of watch and noise; kernel only for the counters' sample types (pinctl.kernel.counters)
    "noise": {"vocabulary", "kernel", "noise"},
    "render": {"vocabulary", "planfile", "plan", "act", "pinning", "doctor", "fleet", "noise", "render"},
    "api": {"vocabulary", "kernel", "discovery", "planfile", "plan", "job", "act", "api"},
    "cli": {"vocabulary", "kernel", "discovery", "planfile", "plan", "job", "act", "pinning", "doctor", "fleet",
            "noise", "render", "api", "cli"},
}  # fmt: skip
# Single modules with one extra edge each (docs/design.md says why).
EXTRA: dict[str, set[str]] = {}
PURE_ROOMS = ("plan", "planfile")  # no os, sys, clock, kernel, discovery or act: same input, same output
# cli/ modules every command may import; a command module importing another command is coupling by convenience.
CLI_SHARED = {
    "pinctl.cli.options",
    "pinctl.cli.output",
    "pinctl.cli.fast",
    "pinctl.cli.argtable",
    "pinctl.cli.targets",
}  # targets: what watch and noise look at, shared by both
THIRD_PARTY = {  # library -> the modules (prefixes) that may import it
    "click": ("pinctl.cli",),
    "rich": ("pinctl.render",),
    "pyhwloc": ("pinctl.discovery.hwloc",),
    "pynvml": ("pinctl.discovery.nvml",),
    "jsonschema": (),
    "psutil": (),
}
# Imports inside a function: module -> {imported: reason}. Anything else goes at the top of the file.
INNER_IMPORTS = {
    "pinctl": {"importlib": "PEP 562 lazy API: import pinctl stays free"},
    "pinctl.api": {
        "warnings": "only for a caller that gave no warn",
        "pinctl.discovery": "xml and dataclasses stay off the launch path",
        "pinctl.plan.make": "the planner's dataclasses stay off the launch path",
        "pinctl.plan.request": "the planner's dataclasses stay off the launch path",
    },
    "pinctl.planfile.load": {"json": "words a JSON error as json does; _json reads every valid file"},
    "pinctl.act.mempolicy": {"ctypes": "only when a memory policy is set or read"},
    "pinctl.act.reaper": {"ctypes": "prctl for --nproc-per-node only, off the launch path"},
    "pinctl.cli.main": {
        "pinctl.cli.fast": "the fast paths load only when chosen",
        "pinctl.cli.app": "click loads only off the fast paths",
    },
    "pinctl.cli.app": {"pinctl.discovery.engine": "discovery loads under -v only, to hear which engine ran"},
    "pinctl.cli.fast": {
        "pinctl.render.launch": "shlex only for --dry-run and -v",
        "pinctl.act.supervise": "children (--nproc-per-node) are off the one-rank launch path",
        "pinctl.job.world": "torchrun's variables, for children only",
    },
    "pinctl.discovery.hwloc.isolated": {
        "pyhwloc": "heavy (~58 ms), loaded when a topology is",
        "pyhwloc.topology": "heavy, in the forked child",
        "pyhwloc.hwloc": "heavy, in the forked child",
        "pinctl.discovery.hwloc.convert": "imports pyhwloc",
    },
    "pinctl.discovery.nvml": {
        "pynvml": "optional, ~34 ms, only inside a query",
        "ctypes": "byref for the fabric query, needed only once pynvml (which loads ctypes) runs",
    },
    "pinctl.render.check": {"rich.console": "rich only on a terminal"},
    "pinctl.render.doctor": {"rich.console": "rich only on a terminal"},
    "pinctl.render.fleet": {"rich.console": "rich only on a terminal", "rich.text": ""},
    "pinctl.render.table": {"rich.console": "rich only on a terminal", "rich.table": "", "rich.text": ""},
}
MAX_LINES = 400
# Who may end the process, besides cli/: module -> why.
EXITS = {
    "pinctl.discovery.hwloc.isolated": "the forked libhwloc child leaves through os._exit",
    "pinctl.act.supervise": "the forked rank supervisor leaves through os._exit",
    "pinctl.act.ranks": "a forked rank whose exec failed leaves through os._exit",
    "pinctl.act.probe": "a forked probe child leaves through os._exit, past the parent's exit path",
}


def modules() -> Iterator[tuple[str, Path, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path, ast.parse(path.read_text())


def imports_of(name: str, path: Path, tree: ast.Module) -> Iterator[tuple[ast.stmt, str, bool]]:
    return imported(name, tree, package=path.name == "__init__.py")


def room(name: str) -> str:
    parts = name.split(".")
    if len(parts) == 1:
        return "api"  # the package itself: the lazy API
    if parts[1] in VOCABULARY:
        return "vocabulary"
    if parts[1] == "__main__":
        return "cli"
    return parts[1]


def imported(name: str, tree: ast.Module, *, package: bool = False) -> Iterator[tuple[ast.stmt, str, bool]]:
    """(statement, module, inside a function) for every import; relative imports and the submodules
    of ``from X import y`` resolved. *package*: *name* is a package (its ``__init__``)."""
    inner = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
             for n in ast.walk(f)}  # fmt: skip
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name, id(node) in inner
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                parts = name.split(".")[: len(name.split(".")) - node.level + (1 if package else 0)]
                module = ".".join([*parts, *([module] if module else [])])
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                is_module = (ROOT / Path(*sub.split("."))).with_suffix(".py").exists() or (
                    ROOT / Path(*sub.split(".")) / "__init__.py"
                ).exists()
                yield node, sub if is_module else module, id(node) in inner


def test_every_room_imports_only_what_it_may() -> None:
    broken = []
    for name, path, tree in modules():
        for node, target, _ in imports_of(name, path, tree):
            if not target.startswith("pinctl.") and target != "pinctl":
                continue
            if target in EXTRA.get(name, ()) or any(target.startswith(e + ".") for e in EXTRA.get(name, ())):
                continue
            if room(target) not in ALLOWED[room(name)]:
                broken.append(f"{name}:{node.lineno} ({room(name)}) imports {target} ({room(target)})")
    assert not broken, "\n".join(broken)


def test_commands_share_only_what_lies_below_them() -> None:
    """cli/doctor.py does not import cli/fleet.py: what two commands share sits below both
    (fleet/read.load_reference, render/prometheus) or in the shared cli modules."""
    coupled = []
    for name, path, tree in modules():
        if room(name) != "cli" or name in CLI_SHARED or name in ("pinctl.cli", "pinctl.cli.main", "pinctl.__main__"):
            continue
        for node, target, _ in imports_of(name, path, tree):
            if target.startswith("pinctl.cli.") and target not in CLI_SHARED:
                coupled.append(f"{name}:{node.lineno} imports {target}")
    assert not coupled, "\n".join(coupled)


def test_the_planner_is_pure() -> None:
    impure = []
    for name, path, tree in modules():
        if room(name) not in PURE_ROOMS:
            continue
        for node, target, _ in imports_of(name, path, tree):
            top = target.split(".")[0]
            if (
                top in ("os", "sys", "subprocess", "socket", "time", "random")
                or room(target) in ("kernel", "discovery")
                or (room(target) == "act" and target not in EXTRA.get(name, ()))
            ):
                impure.append(f"{name}:{node.lineno} imports {target}")
    assert not impure, "\n".join(impure)


STREAMS = ("sys.stdout", "sys.stderr", "sys.__stdout__", "sys.__stderr__")
ENDERS = ("sys.exit", "os._exit", "exit", "quit", "os.abort")


def _writes_to_terminal(tree: ast.Module) -> Iterator[int]:
    """Lines that print, or touch sys.stdout/sys.stderr for anything but ``flush()`` (so an alias
    such as ``err = sys.stderr`` is caught where it is taken)."""
    flushed = {id(n.func.value) for n in ast.walk(tree) if isinstance(n, ast.Call)
               and isinstance(n.func, ast.Attribute) and n.func.attr == "flush"}  # fmt: skip
    for node in ast.walk(tree):
        printing = isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
        stream = isinstance(node, ast.Attribute) and ast.unparse(node) in STREAMS and id(node) not in flushed
        if printing or stream:
            yield node.lineno


def _exits(tree: ast.Module) -> Iterator[int]:
    for node in ast.walk(tree):
        calling = isinstance(node, ast.Call) and ast.unparse(node.func) in ENDERS
        raising = isinstance(node, ast.Raise) and node.exc is not None and "SystemExit" in ast.unparse(node.exc)
        if calling or raising:
            yield node.lineno


def test_only_cli_and_render_write_to_the_terminal() -> None:
    writers = [f"{name}:{line}" for name, _, tree in modules() if room(name) not in ("cli", "render")
               for line in _writes_to_terminal(tree)]  # fmt: skip
    assert not writers, writers


def test_only_cli_ends_the_process() -> None:
    enders = [f"{name}:{line}" for name, _, tree in modules() if room(name) != "cli" and name not in EXITS
              for line in _exits(tree)]  # fmt: skip
    assert not enders, enders


def _strings(tree: ast.Module) -> Iterator[ast.Constant]:
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)
    }  # fmt: skip
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node


def test_only_kernel_names_kernel_paths() -> None:
    named = []
    for name, _, tree in modules():
        if room(name) == "kernel":
            continue
        for s in _strings(tree):
            text = s.value
            if any(text.startswith(p) or f" {p}" in text for p in ("/sys/", "/proc/")) or text in ("/sys", "/proc"):
                named.append(f"{name}:{s.lineno} {text[:60]!r}")
    assert not named, "\n".join(named)


def test_third_party_libraries_stay_in_their_room() -> None:
    strays = []
    for name, path, tree in modules():
        for node, target, _ in imports_of(name, path, tree):
            top = target.split(".")[0]
            if top in THIRD_PARTY and not name.startswith(THIRD_PARTY[top]):
                strays.append(f"{name}:{node.lineno} imports {target}")
    assert not strays, "\n".join(strays)


def test_imports_inside_functions_are_the_listed_ones() -> None:
    unlisted = []
    for name, path, tree in modules():
        for node, target, inner in imports_of(name, path, tree):
            if inner and target not in INNER_IMPORTS.get(name, {}):
                unlisted.append(f"{name}:{node.lineno} imports {target} inside a function")
    assert not unlisted, "\n".join(unlisted)


def test_no_module_is_over_the_limit() -> None:
    long = [f"{name}: {len(path.read_text().splitlines())} lines" for name, path, _ in modules()
            if len(path.read_text().splitlines()) > MAX_LINES]  # fmt: skip
    assert not long, long


def test_design_doc_names_every_package() -> None:
    text = (ROOT / "docs" / "design.md").read_text()
    packages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists() and p.name != "schemas")
    assert packages and all(f"`{p}/`" in text for p in packages), packages


def _added_modules(code: str) -> set[str]:
    """Top-level names of the modules *code* imports beyond the interpreter's own start-up."""
    probe = "import sys; base = set(sys.modules)\n" + code + "\nprint(' '.join(sorted(set(sys.modules) - base)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return {m.split(".")[0] for m in out.split() if not m.startswith("pinctl")}


@pytest.mark.parametrize("module", ["pinctl", "pinctl.api", "pinctl.cli.fast"])
def test_the_launch_path_imports_json_and_signal_only(module: str) -> None:
    """`launch --plan` and `pin --cpus` (pinctl.cli.fast), the API and `import pinctl` load no
    library beyond json and signal (and what those need here): no dataclasses, typing, click, rich, ..."""
    allowed = _added_modules("import json, signal, collections.abc")
    assert _added_modules(f"import {module}") <= allowed


def _launch_path() -> set[str]:
    """pinctl's modules that ``launch --plan`` and ``pin --cpus`` load (a memory policy set)."""
    code = "import sys, pinctl.cli.main, pinctl.cli.fast, pinctl.act.mempolicy; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return {m for m in out.split() if m.startswith("pinctl")}


def test_start_up_tricks_stay_on_the_launch_path() -> None:
    """Record (no dataclasses: 15-20 ms) and ``TYPE_CHECKING = False`` (no typing: ~10 ms) are
    what bench/bench_launch.py needs on the launch path; everywhere else plain dataclasses and
    typing read better (issue 18, item 14)."""
    path = _launch_path()
    tricks = []
    for name, _, tree in modules():
        spelled = any(ast.unparse(n) == "TYPE_CHECKING = False" for n in tree.body)
        records = [n.name for n in tree.body if isinstance(n, ast.ClassDef) and "Record" in map(ast.unparse, n.bases)]
        if (spelled or records) and name not in path:
            tricks.append(f"{name}: {'TYPE_CHECKING = False ' if spelled else ''}{' '.join(records)}")
    assert not tricks, tricks


def test_the_check_sees_what_it_should() -> None:
    """The scanners above catch what they are for (so a passing run means something)."""
    tree = ast.parse('import sys\nprint("x")\nsys.stderr.write("y")\nP = "/sys/class/net"\n'
                     'def f():\n    """/proc/doc"""\n    import rich\n    err = sys.stdout\n    sys.stdout.flush()\n'
                     '    raise SystemExit(2)\n')  # fmt: skip
    assert sorted(_writes_to_terminal(tree)) == [2, 3, 8]
    assert list(_exits(tree)) == [10]
    relative = ast.parse("from . import request\nfrom ..cli import output\n")
    assert [t for _, t, _ in imported("pinctl.plan.make", relative)] == ["pinctl.plan.request", "pinctl.cli.output"]
    assert [t for _, t, _ in imported("pinctl.plan", ast.parse("from . import request\n"), package=True)] == [
        "pinctl.plan.request"
    ]
    assert sorted(s.value for s in _strings(tree)) == ["/sys/class/net", "x", "y"]
    assert [(t, inner) for _, t, inner in imported("pinctl.x", tree)] == [("sys", False), ("rich", True)]
    assert room("pinctl.planfile.types") == "planfile" and room("pinctl.pinning") == "pinning"
    assert room("pinctl.cpuset") == "vocabulary" and room("pinctl") == "api"
