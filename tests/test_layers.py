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
VOCABULARY = {"errors", "record", "cpuset", "model", "distance", "nodejson"}

# room -> the rooms it may import (its own included)
ALLOWED = {
    "vocabulary": {"vocabulary"},
    "kernel": {"vocabulary", "kernel"},
    "discovery": {"vocabulary", "kernel", "discovery"},
    "plan": {"vocabulary", "plan"},
    "act": {"vocabulary", "kernel", "plan", "act"},
    "doctor": {"vocabulary", "kernel", "discovery", "plan", "doctor"},
    "render": {"vocabulary", "plan", "act", "doctor", "render"},
    "api": {"vocabulary", "kernel", "discovery", "plan", "act", "api"},
    "cli": {"vocabulary", "kernel", "discovery", "plan", "act", "doctor", "render", "api", "cli"},
}
# Single modules with one extra edge each (docs/design.md says why).
EXTRA = {
    "pinctl.plan.fit": {"pinctl.kernel"},  # is this plan for this node? asks the kernel
}
PURE_PLANNER_EXCEPTIONS = {"pinctl.plan.load", "pinctl.plan.fit"}  # they read a file, or the kernel
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
        "pinctl.discovery": "xml and dataclasses stay off the launch path",
        "pinctl.plan.make": "the planner's dataclasses stay off the launch path",
        "pinctl.plan.request": "the planner's dataclasses stay off the launch path",
    },
    "pinctl.act.mempolicy": {"ctypes": "only when a memory policy is set or read"},
    "pinctl.cli.main": {"pinctl.cli.fast": "the fast paths load only when chosen",
                        "pinctl.cli.app": "click loads only off the fast paths"},
    "pinctl.cli.fast": {"pinctl.render.launch": "shlex only for --dry-run and -v"},
    "pinctl.discovery.hwloc.isolated": {
        "pyhwloc": "heavy (~58 ms), loaded when a topology is",
        "pyhwloc.topology": "heavy, in the forked child",
        "pyhwloc.hwloc": "heavy, in the forked child",
        "pinctl.discovery.hwloc.convert": "imports pyhwloc",
    },
    "pinctl.discovery.nvml": {"pynvml": "optional, ~34 ms, only inside a query"},
    "pinctl.render.check": {"rich.console": "rich only on a terminal", "rich.markup": "", "rich.table": ""},
    "pinctl.render.doctor": {"rich.console": "rich only on a terminal", "rich.table": ""},
    "pinctl.render.table": {"rich.console": "rich only on a terminal", "rich.table": "", "rich.text": ""},
}
MAX_LINES = 400


def modules() -> Iterator[tuple[str, Path, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path, ast.parse(path.read_text())


def room(name: str) -> str:
    parts = name.split(".")
    if len(parts) == 1:
        return "api"  # the package itself: the lazy API
    if parts[1] in VOCABULARY:
        return "vocabulary"
    if parts[1] == "__main__":
        return "cli"
    return parts[1]


def imported(name: str, tree: ast.Module) -> Iterator[tuple[ast.stmt, str, bool]]:
    """(statement, module, inside a function) for every import, submodules of ``from X import y`` resolved."""
    inner = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
             for n in ast.walk(f)}  # fmt: skip
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name, id(node) in inner
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                is_module = (ROOT / Path(*sub.split("."))).with_suffix(".py").exists() or (
                    ROOT / Path(*sub.split(".")) / "__init__.py"
                ).exists()
                yield node, sub if is_module else node.module, id(node) in inner


def test_every_room_imports_only_what_it_may() -> None:
    broken = []
    for name, _, tree in modules():
        for node, target, _ in imported(name, tree):
            if not target.startswith("pinctl.") and target != "pinctl":
                continue
            if target in EXTRA.get(name, ()) or any(target.startswith(e + ".") for e in EXTRA.get(name, ())):
                continue
            if room(target) not in ALLOWED[room(name)]:
                broken.append(f"{name}:{node.lineno} ({room(name)}) imports {target} ({room(target)})")
    assert not broken, "\n".join(broken)


def test_the_planner_is_pure() -> None:
    impure = []
    for name, _, tree in modules():
        if room(name) != "plan" or name in PURE_PLANNER_EXCEPTIONS:
            continue
        for node, target, _ in imported(name, tree):
            top = target.split(".")[0]
            if top in ("os", "sys", "subprocess", "socket", "time", "random") or room(target) in (
                "kernel", "discovery"
            ) or (room(target) == "act" and target not in EXTRA.get(name, ())):
                impure.append(f"{name}:{node.lineno} imports {target}")
    assert not impure, "\n".join(impure)


def _writes_to_terminal(tree: ast.Module) -> Iterator[int]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name) and f.id == "print":
            yield node.lineno
        elif isinstance(f, ast.Attribute) and f.attr in ("write", "writelines", "echo", "secho"):
            owner = ast.unparse(f.value)
            if owner in ("sys.stdout", "sys.stderr", "click"):
                yield node.lineno


def test_only_cli_and_render_write_to_the_terminal() -> None:
    writers = [f"{name}:{line}" for name, _, tree in modules() if room(name) not in ("cli", "render")
               for line in _writes_to_terminal(tree)]  # fmt: skip
    assert not writers, writers


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
    for name, _, tree in modules():
        for node, target, _ in imported(name, tree):
            top = target.split(".")[0]
            if top in THIRD_PARTY and not name.startswith(THIRD_PARTY[top]):
                strays.append(f"{name}:{node.lineno} imports {target}")
    assert not strays, "\n".join(strays)


def test_imports_inside_functions_are_the_listed_ones() -> None:
    unlisted = []
    for name, _, tree in modules():
        for node, target, inner in imported(name, tree):
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


def test_the_check_sees_what_it_should() -> None:
    """The scanners above catch what they are for (so a passing run means something)."""
    tree = ast.parse('import sys\nprint("x")\nsys.stderr.write("y")\nP = "/sys/class/net"\n'
                     'def f():\n    """/proc/doc"""\n    import rich\n')  # fmt: skip
    assert sorted(_writes_to_terminal(tree)) == [2, 3]
    assert sorted(s.value for s in _strings(tree)) == ["/sys/class/net", "x", "y"]
    assert [(t, inner) for _, t, inner in imported("pinctl.x", tree)] == [("sys", False), ("rich", True)]
    assert room("pinctl.plan.types") == "plan" and room("pinctl.cpuset") == "vocabulary" and room("pinctl") == "api"
