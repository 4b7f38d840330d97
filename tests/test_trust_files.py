"""Files pinctl writes on a shared node (issue 20): planted links, FIFOs, foreign folders, failed writes.

Each case runs pinctl in a subprocess, as root would run it; the hostile second user is a real
account made with useradd for the module (only root can), so what it plants is its own. Nothing
here relies on fs.protected_symlinks: pinctl must not follow a planted link even where the kernel
would (this machine has the setting at 0, as some clusters do).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pinctl.act.files import write_file, write_tree
from pinctl.errors import UsageError

REPO = Path(__file__).resolve().parents[1]
TOPOLOGY = str(REPO / "fixtures" / "hwloc" / "dgx-h100.xml")
SYSTEMD = ["plan", "--topology", TOPOLOGY, "--reserve-per-numa", "1", "--format", "systemd"]


def pinctl(
    *args: str, timeout: float = 60, limit_file_kb: int | None = None, umask: int | None = None
) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        if umask is not None:
            os.umask(umask)
        if limit_file_kb is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_kb * 1024, limit_file_kb * 1024))

    return subprocess.run([sys.executable, "-m", "pinctl", *args], capture_output=True, text=True, timeout=timeout,
                          preexec_fn=limit, cwd=REPO)  # fmt: skip


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if not line.startswith("pinctl: warning:")]
    assert len(lines) == 1 and lines[0].startswith("pinctl: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".pinctl-"))


# --- a second user ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def other_user() -> Iterator[str]:
    """A real second account, made for these tests and removed after them."""
    if os.geteuid() != 0:
        pytest.skip("a second user needs useradd, which needs root")
    if shutil.which("useradd") is None or shutil.which("userdel") is None:
        pytest.skip("no useradd/userdel on this machine")
    name = f"pt20u{os.getpid() % 100000}"
    made = subprocess.run(["useradd", "-M", "-s", "/bin/false", name], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"useradd failed: {made.stderr.strip()}")
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], capture_output=True)


@pytest.fixture
def shared() -> Iterator[Path]:
    """A world-writable sticky folder, as /tmp is (the test's own tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="pinctl-shared-", dir="/tmp"))
    path.chmod(0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def as_user(user: str, *argv: str) -> None:
    subprocess.run(list(argv), check=True, user=user, capture_output=True, timeout=30)


def test_a_link_planted_by_another_user_is_not_followed(other_user: str, shared: Path, tmp_path: Path) -> None:
    secret = tmp_path / "shadow"
    secret.write_text("root only\n")
    secret.chmod(0o600)
    as_user(other_user, "ln", "-s", str(secret), str(shared / "plan.json"))
    result = pinctl("plan", "--topology", TOPOLOGY, "--json", "-o", str(shared / "plan.json"))
    assert result.returncode == 2
    assert "symbolic link" in one_line(result)
    assert secret.read_text() == "root only\n"
    assert (shared / "plan.json").is_symlink()
    assert leftovers(shared) == []


def test_a_fifo_planted_by_another_user_is_refused_not_waited_on(other_user: str, shared: Path) -> None:
    as_user(other_user, "mkfifo", str(shared / "plan.json"))
    result = pinctl("plan", "--topology", TOPOLOGY, "--json", "-o", str(shared / "plan.json"), timeout=30)
    assert result.returncode == 2
    assert "FIFO" in one_line(result)
    assert stat.S_ISFIFO((shared / "plan.json").lstat().st_mode)


def test_a_folder_of_another_user_is_refused(other_user: str, shared: Path) -> None:
    folder = shared / "dropins"
    as_user(other_user, "mkdir", "-m", "0755", str(folder))
    result = pinctl(*SYSTEMD, "-o", str(folder))
    assert result.returncode == 2
    assert "belongs to another user" in one_line(result)
    assert list(folder.iterdir()) == []


def test_a_link_planted_in_a_world_writable_folder_is_never_written_through(
    other_user: str, shared: Path, tmp_path: Path
) -> None:
    folder = shared / "dropins"
    folder.mkdir()
    folder.chmod(0o777)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    as_user(other_user, "ln", "-s", str(elsewhere), str(folder / "system.conf.d"))
    result = pinctl(*SYSTEMD, "-o", str(folder))
    assert result.returncode == 2
    assert "writable by others" in one_line(result)
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("form", ["json", "systemd"])
def test_a_folder_link_planted_by_another_user_is_not_followed(
    other_user: str, shared: Path, tmp_path: Path, form: str
) -> None:
    """/tmp/plans -> a root-only folder: root's -o /tmp/plans/... must not land there (r20)."""
    secret = tmp_path / "root-only"
    secret.mkdir(mode=0o700)
    (secret / "plan.json").write_text("root only\n")
    as_user(other_user, "ln", "-s", str(secret), str(shared / "plans"))
    if form == "json":
        result = pinctl("plan", "--topology", TOPOLOGY, "--json", "-o", str(shared / "plans" / "plan.json"))
    else:
        result = pinctl(*SYSTEMD, "-o", str(shared / "plans" / "dropins"))
    assert result.returncode == 2
    assert "symbolic link another user" in one_line(result)
    assert sorted(p.name for p in secret.iterdir()) == ["plan.json"]
    assert (secret / "plan.json").read_text() == "root only\n"


@pytest.mark.parametrize("above", ["other user's", "world-writable"])
def test_a_folder_under_one_another_user_may_change_is_refused(other_user: str, shared: Path, above: str) -> None:
    """r20: its owner could move -o DIR away and put drop-ins of its own there before `cp -r DIR/. /etc/systemd/`."""
    parent = shared / "parent"
    if above == "world-writable":
        parent.mkdir()
        parent.chmod(0o777)
    else:
        as_user(other_user, "mkdir", "-m", "0755", str(parent))
    result = pinctl(*SYSTEMD, "-o", str(parent / "dropins"))
    assert result.returncode == 2
    assert "a folder above it" in one_line(result)
    assert list(parent.iterdir()) == []  # nothing made there


def test_the_callers_own_folder_links_are_still_followed(shared: Path, tmp_path: Path) -> None:
    """The kernel's protected_symlinks rule, not a ban: the caller's own links (and relative ones) work."""
    real = tmp_path / "real"
    real.mkdir()
    (shared / "mine").symlink_to(real)
    result = pinctl("plan", "--topology", TOPOLOGY, "--json", "-o", str(shared / "mine" / "plan.json"))
    assert result.returncode == 0, result.stderr
    assert (real / "plan.json").is_file()
    (tmp_path / "rel").symlink_to("real")
    result = pinctl(*SYSTEMD, "-o", str(tmp_path / "rel" / ".." / "real" / "dropins"))
    assert result.returncode == 0, result.stderr
    assert (real / "dropins" / "system.conf.d").is_dir()


# --- the caller's own folder and files ----------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_systemd_folder_is_made_with_fixed_modes_and_rewritten(tmp_path: Path, umask: int) -> None:
    folder = tmp_path / "dropins"
    for _ in range(2):  # a folder pinctl made and filled is its own to rewrite
        result = pinctl(*SYSTEMD, "-o", str(folder), umask=umask)
        assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert files == [
        "system.conf.d/50-pinctl-housekeeping.conf",
        "system/init.scope.d/50-pinctl-housekeeping.conf",
        "system/system.slice.d/50-pinctl-housekeeping.conf",
        "system/user.slice.d/50-pinctl-housekeeping.conf",
    ]
    for p in folder.rglob("*"):  # installed as they are: modes do not follow the umask
        assert stat.S_IMODE(p.stat().st_mode) == (0o755 if p.is_dir() else 0o644), p


@pytest.mark.parametrize(
    "plant",
    [
        "link-folder",  # system.conf.d -> another folder
        "link-file",  # a drop-in name -> another file
        "extra-file",  # an ExecStartPre in some service's drop-in, which cp -r would install
    ],
)
def test_a_folder_holding_anything_pinctl_does_not_write_is_refused(tmp_path: Path, plant: str) -> None:
    folder = tmp_path / "dropins"
    assert pinctl(*SYSTEMD, "-o", str(folder)).returncode == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "kept.conf"
    target.write_text("[Manager]\n")
    if plant == "link-folder":
        shutil.rmtree(folder / "system.conf.d")
        (folder / "system.conf.d").symlink_to(elsewhere)
    elif plant == "link-file":
        dropin = folder / "system" / "init.scope.d" / "50-pinctl-housekeeping.conf"
        dropin.unlink()
        dropin.symlink_to(target)
    else:
        extra = folder / "system" / "sshd.service.d"
        extra.mkdir()
        (extra / "10-x.conf").write_text("[Service]\nExecStartPre=/tmp/x\n")
    result = pinctl(*SYSTEMD, "-o", str(folder))
    assert result.returncode == 2
    assert "which pinctl does not write" in one_line(result)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["kept.conf"]
    assert target.read_text() == "[Manager]\n"


def test_a_link_as_the_folder_itself_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    result = pinctl(*SYSTEMD, "-o", str(tmp_path / "link"))
    assert result.returncode == 2
    assert "symbolic link" in one_line(result)
    assert list(real.iterdir()) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    assert pinctl("plan", "--topology", TOPOLOGY, "--json", "-o", str(plan)).returncode == 0
    good = plan.read_bytes()
    assert len(good) > 4096
    # ulimit -f 4: the new plan (a larger one, more ranks) cannot be written whole (EFBIG, not SIGXFSZ)
    result = pinctl("plan", "--topology", TOPOLOGY, "--json", "--procs-per-gpu", "2", "-o", str(plan),
                    limit_file_kb=4)  # fmt: skip
    assert result.returncode == 2
    assert "File too large" in one_line(result)
    assert plan.read_bytes() == good
    assert leftovers(tmp_path) == []
    check = pinctl("launch", "--plan", str(plan), "--local-rank", "0", "--dry-run", "--force", "--", "true")
    assert check.returncode == 0, check.stderr


def test_snapshot_goes_through_the_same_writer(tmp_path: Path) -> None:
    (tmp_path / "snap.xml").symlink_to(tmp_path / "victim")
    result = pinctl("snapshot", "-o", str(tmp_path / "snap.xml"))
    assert "Traceback" not in result.stderr
    if result.returncode == 3:
        pytest.skip(f"no live topology here: {result.stderr.strip()}")
    assert result.returncode == 2
    assert "symbolic link" in one_line(result)
    assert not (tmp_path / "victim").exists()


def test_writer_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    for name, word in (("fifo", "FIFO"), ("dir", "folder")):
        with pytest.raises(UsageError, match=word):
            write_file(str(tmp_path / name), "x")
    with pytest.raises(UsageError, match="cannot write"):
        write_file(str(tmp_path / "missing" / "x"), "x")
    (tmp_path / "ok").write_text("old\n")
    (tmp_path / "ok").chmod(0o600)
    write_file(str(tmp_path / "ok"), "text\n")
    assert (tmp_path / "ok").read_text() == "text\n"
    assert stat.S_IMODE((tmp_path / "ok").stat().st_mode) == 0o644
    with pytest.raises(UsageError, match="does not write"):
        write_tree(str(tmp_path), [("a/b.conf", "x")])
