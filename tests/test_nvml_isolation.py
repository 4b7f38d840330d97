"""Only one module touches NVML (nvitop's rule): pinctl/discovery/nvml.py.

A second importer would bring back its own init/shutdown and error handling,
and with it a second way to crash or to word "no driver".
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pinctl"
THE_ONE = "discovery/nvml.py"


def _imports_pynvml(source: str) -> bool:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "pynvml" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "pynvml":
            return True
    return "import pynvml" in source or 'import_module("pynvml")' in source


def test_only_discovery_nvml_imports_pynvml() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 10  # the package is really there
    importers = [p.relative_to(PACKAGE).as_posix() for p in sources if _imports_pynvml(p.read_text())]
    assert importers == [THE_ONE]


def test_the_check_sees_every_form_of_import() -> None:
    for code in (
        "import pynvml",
        "import pynvml as nv",
        "import os, pynvml",
        "from pynvml import nvmlInit",
        "def f():\n    import pynvml\n",
        'importlib.import_module("pynvml")',
    ):
        assert _imports_pynvml(code), code
    assert not _imports_pynvml('"""no pynvml, psutil or click here"""\nimport os\n')
