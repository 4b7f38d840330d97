"""Committed sysfs fixture trees are exactly what fixtures/gen_sysfs.py writes (no hand edits, no drift)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def snapshot(top: Path) -> dict[str, tuple[str, bytes | str]]:
    """Every entry under *top*: symlinks by target, files by content, directories by name."""
    out: dict[str, tuple[str, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(top))
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path))
            elif path.is_file():
                out[rel] = ("file", path.read_bytes())
            else:
                out[rel] = ("dir", "")
    return out


def test_sysfs_trees_regenerate_identically(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(REPO / "fixtures" / "gen_sysfs.py"), str(tmp_path)], check=True)
    fresh, committed = snapshot(tmp_path), snapshot(REPO / "fixtures" / "sysfs")
    assert sorted(fresh) == sorted(committed)
    changed = [rel for rel in fresh if fresh[rel] != committed[rel]]
    assert changed == []
