"""Loading a topology with libhwloc (through pyhwloc) without letting it hurt pinctl.

Three dangers are handled here and only here:

* a topology file that crashes libhwloc (libhwloc 3.0 segfaults on some XML):
  the load and the conversion run in a forked child that pickles the finished
  :class:`~pinctl.model.Node` back through a pipe, so a crash becomes a
  one-line TopologyError. Fork happens after pyhwloc is imported, so the child
  pays no import cost. Where fork is unavailable the load runs in-process.
* ``import pyhwloc`` sets ``HWLOC_PLUGINS_PATH`` in ``os.environ``; launched
  commands must not inherit it, so the environment is restored after import and
  the HWLOC_* variables a load needs are set only in the child (or, in-process,
  only for the duration of the load).
* HWLOC_* variables in the user's environment that would make libhwloc read
  another source (HWLOC_XMLFILE, HWLOC_FSROOT, ...) are removed for every load,
  so ``--topology`` and ``--root`` mean what they say.
* libhwloc's NVML and CUDA plugins, which pyhwloc bundles: hwloc's NVML plugin
  aborts the load when one GPU's handle cannot be had (GPU_IS_LOST, UNKNOWN,
  NO_PERMISSION), and the CUDA plugin creates a context on every GPU. pinctl asks
  NVML itself (:mod:`pinctl.discovery.nvml`), so a live discovery loads with both
  left out (``HWLOC_PLUGINS_BLACKLIST`` keeps the plugin files from being opened,
  ``HWLOC_COMPONENTS=-nvml,...`` covers a libhwloc built with them inside). Only
  ``snapshot`` asks hwloc's NVML first (its XML keeps GPU names and NVLink), and
  loads again without it when it crashes.
"""

from __future__ import annotations

import faulthandler
import os
import pickle
import select
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal, TypeVar, cast

from pinctl.errors import TopologyError

T = TypeVar("T")  # no PEP 695 generics: Python 3.10 imports this module

if TYPE_CHECKING:
    from pyhwloc.topology import Topology

    from pinctl.model import Node

# Seconds a load may take before the child is killed (live discovery with NVML
# on a large node takes a few seconds; a hung driver must not hang pinctl).
LOAD_TIMEOUT_S = 120.0

# Variables that point libhwloc at another source; removed for every load.
_SCRUB = (
    "HWLOC_XMLFILE",
    "HWLOC_SYNTHETIC",
    "HWLOC_FSROOT",
    "HWLOC_COMPONENTS",
    "HWLOC_PLUGINS_BLACKLIST",
    "HWLOC_CPUID_PATH",
    "HWLOC_THISSYSTEM",
    "HWLOC_DUMPED_HWDATA_DIR",
)

SourceKind = Literal["live", "xml", "fsroot"]


@dataclass(frozen=True)
class Source:
    """What to load: the live system, an XML text (already checked) or a gathered tree."""

    kind: SourceKind
    what: str  # names the source in error messages: a path, or "the live system"
    label: str  # Node.source
    xml_text: str | None = None
    fsroot: str | None = None
    notes: tuple[str, ...] = ()


_plugins_path: str | None = None
_imported = False


def ensure_pyhwloc() -> str | None:
    """Import pyhwloc (and the converter that needs it) once, undoing its change to os.environ.

    Returns the bundled plugin directory pyhwloc wanted in HWLOC_PLUGINS_PATH
    (libhwloc finds its PCI and NVML components there), or None.
    """
    global _plugins_path, _imported
    if _imported:
        return _plugins_path
    was_imported = "pyhwloc" in sys.modules
    before = os.environ.get("HWLOC_PLUGINS_PATH")
    try:
        import pyhwloc

        import pinctl.discovery.hwloc.convert  # noqa: F401  (imports pyhwloc submodules)
    except Exception as e:  # ImportError, OSError (libhwloc missing), RuntimeError (API version)
        raise TopologyError(f"pyhwloc is not usable: {e}") from None
    finally:
        after = os.environ.get("HWLOC_PLUGINS_PATH")
        if not was_imported:
            _restore_var("HWLOC_PLUGINS_PATH", before)
    bundled = os.path.join(os.path.dirname(pyhwloc.__file__), "_lib", "lib", "hwloc")
    if was_imported and after == bundled:
        # An earlier import leaked it; nobody sets it to pyhwloc's own folder by hand.
        os.environ.pop("HWLOC_PLUGINS_PATH", None)
    _plugins_path = bundled if os.path.isdir(bundled) else after
    _imported = True
    return _plugins_path


def _restore_var(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


# GPU runtimes libhwloc may query (hwloc 3.0 names: components, and plugins as hwloc_<name>.so).
_GPU_RUNTIMES = ("nvml", "cuda", "opencl", "rsmi", "levelzero")


def load_env(src: Source, plugins: str | None, *, hwloc_nvml: bool = False) -> dict[str, str | None]:
    """The HWLOC_* settings for one load (None removes a variable).

    A live load leaves out libhwloc's GPU-runtime components (NVML, CUDA, ...), unless
    *hwloc_nvml* lets its NVML one in (``snapshot``, whose XML is read without pinctl's NVML).
    """
    env: dict[str, str | None] = dict.fromkeys(_SCRUB)
    if plugins:
        env["HWLOC_PLUGINS_PATH"] = plugins
    if src.kind == "live":
        left_out = [r for r in _GPU_RUNTIMES if not (hwloc_nvml and r == "nvml")]
        env["HWLOC_PLUGINS_BLACKLIST"] = ",".join(f"hwloc_{r}" for r in left_out)
        env["HWLOC_COMPONENTS"] = ",".join(f"-{r}" for r in left_out)
    # GPU memory exposed as NUMA nodes (POWER9 + V100, Grace Hopper) stays visible.
    env["HWLOC_KEEP_NVIDIA_GPU_NUMA_NODES"] = "1"
    if src.kind == "fsroot":
        assert src.fsroot is not None
        env["HWLOC_FSROOT"] = src.fsroot
        # Without "stop" a bad root silently falls back to the host (measured with hwloc 3.0).
        env["HWLOC_COMPONENTS"] = "linux,stop"
        env["HWLOC_DUMPED_HWDATA_DIR"] = "/var/run/hwloc"
    return env


def load_node(src: Source) -> Node:
    """Load *src* with libhwloc and convert it, isolated from crashes."""
    plugins = ensure_pyhwloc()
    node, warnings = run_isolated(lambda: _child_load(src), what=src.what, env=load_env(src, plugins))
    notes = src.notes + tuple(f"libhwloc: {w}" for w in warnings)
    return replace(node, notes=node.notes + notes) if notes else node


def export_live_xml() -> tuple[str, str | None]:
    """The live topology (I/O kept) as hwloc XML text, in the v2 format hwloc 2.x also reads,
    and a note when hwloc's NVML plugin crashed and the XML was made without it."""
    plugins = ensure_pyhwloc()
    src = Source(kind="live", what="the live system", label="live")
    try:
        text, _ = run_isolated(_child_export, what=src.what, env=load_env(src, plugins, hwloc_nvml=True))
        return text, None
    except TopologyError as e:
        if "crashed" not in str(e):
            raise
        first = str(e)
    text, _ = run_isolated(_child_export, what=src.what, env=load_env(src, plugins))
    return text, f"{first}; written without hwloc's NVML facts (GPU names, NVLink)"


def _open(src: Source) -> Topology:
    """Open and load the topology for *src* (in the child)."""
    from pyhwloc.topology import Topology, TopologyFlags, TypeFilter

    if src.kind == "xml":
        assert src.xml_text is not None
        topo = Topology.from_xml_buffer(src.xml_text)
    else:
        topo = Topology.from_this_system()
    # Keep disallowed CPUs so allowed_cpus can be smaller than the machine, and
    # keep I/O: pyhwloc's default filter drops every PCI and OS device, XML too.
    try:
        topo.set_flags(TopologyFlags.INCLUDE_DISALLOWED)
        topo.set_io_types_filter(TypeFilter.KEEP_ALL)
        return topo.load()
    except Exception:
        _discard(topo)
        raise


def _discard(topo: Topology) -> None:
    """Free a topology whose load failed: pyhwloc's destroy() needs a loaded one and logs a warning."""
    from pyhwloc.hwloc import core

    hdl = getattr(topo, "_hdl", None)
    if hdl:
        core.topology_destroy(hdl)
        delattr(topo, "_hdl")


def _child_load(src: Source) -> Node:
    """Load and convert; runs in the forked child. Tests replace it to simulate a crash."""
    from pinctl.discovery.hwloc.convert import convert  # imports pyhwloc: loaded by ensure_pyhwloc first

    try:
        topo = _open(src)
    except (OSError, ValueError, RuntimeError) as e:
        if src.kind == "xml":
            raise TopologyError(f"libhwloc rejected {src.what} as hwloc XML ({_reason(e)})") from None
        raise TopologyError(f"libhwloc could not load {src.what}: {_reason(e)}") from None
    try:
        hostname = os.uname().nodename if src.kind == "live" else None  # what socket.gethostname() returns
        return convert(topo, source=src.label, hostname=hostname)
    finally:
        topo.destroy()


def _child_export() -> str:
    from pyhwloc.topology import ExportXmlFlags

    src = Source(kind="live", what="the live system", label="live")
    try:
        topo = _open(src)
    except (OSError, ValueError, RuntimeError) as e:
        raise TopologyError(f"libhwloc could not load the live system: {_reason(e)}") from None
    try:
        flags = getattr(ExportXmlFlags, "V2", 0)  # hwloc 3 only; hwloc 2.x writes v2 anyway
        return str(topo.export_xml_buffer(flags))
    finally:
        topo.destroy()


def _reason(e: BaseException) -> str:
    """The first line of *e*; errno 0 ("Success", "Error 0") says nothing, so it is not repeated."""
    text = str(e).strip().splitlines()
    if not text or text[0] in ("Success", "Error 0", "[Errno 0] Success"):
        return "no reason given"
    return text[0]


# --- crash isolation -------------------------------------------------------------------------


def run_isolated(
    work: Callable[[], T], *, what: str, env: Mapping[str, str | None], timeout: float = LOAD_TIMEOUT_S
) -> tuple[T, list[str]]:
    """Run *work* in a forked child with *env* applied; return its result and libhwloc's warnings.

    A child killed by a signal becomes TopologyError("libhwloc crashed reading WHAT (SIGSEGV)").
    Without fork, *work* runs here with *env* applied for its duration.
    """
    if not hasattr(os, "fork"):
        return _run_inprocess(work, what=what, env=env), []
    with tempfile.TemporaryFile() as err:
        rfd, wfd = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(rfd)
            os.close(wfd)
            return _run_inprocess(work, what=what, env=env), []
        if pid == 0:  # pragma: no cover - the child leaves through os._exit
            os.close(rfd)
            _child_main(work, what, wfd, err.fileno(), env)
        os.close(wfd)
        try:
            data = _read_all(rfd, timeout)
        except BaseException:  # Ctrl-C: do not leave the child behind
            _kill(pid)
            raise
        finally:
            os.close(rfd)
        if data is None:
            _kill(pid)
            raise TopologyError(f"libhwloc did not finish reading {what} within {timeout:g} s")
        _, status = os.waitpid(pid, 0)
        err.seek(0)
        lines = [ln.strip() for ln in err.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    result = cast(T, _outcome(data, status, what, lines))
    return result, [ln for ln in lines if "hwloc" in ln.lower()][:3]


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        pass


def _child_main(work: Callable[[], object], what: str, wfd: int, errfd: int, env: Mapping[str, str | None]) -> None:
    code = 0
    try:
        sys.stderr.flush()
        os.dup2(errfd, 2)
        if faulthandler.is_enabled():  # a crash dump belongs in the captured stderr, not on the terminal
            faulthandler.enable(file=2)
        for name, value in env.items():
            _restore_var(name, value)
        try:
            payload: tuple[str, object] = ("ok", work())
        except TopologyError as e:
            payload = ("err", str(e))
        except Exception as e:
            payload = ("err", f"libhwloc could not load {what}: {_reason(e)}")
        data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(data)
        while view:
            n = os.write(wfd, view)
            view = view[n:]
    except BaseException:
        code = 70
    finally:
        os._exit(code)


def _read_all(rfd: int, timeout: float) -> bytes | None:
    """Everything the child writes until it closes the pipe; None when *timeout* passes first."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([rfd], [], [], left)
        if not ready:
            continue
        chunk = os.read(rfd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _outcome(data: bytes, status: int, what: str, stderr_lines: list[str]) -> object:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        raise TopologyError(f"libhwloc crashed reading {what} ({name})")
    hint = f" ({stderr_lines[0]})" if stderr_lines else ""
    if not data or os.WEXITSTATUS(status) != 0:
        raise TopologyError(f"libhwloc failed reading {what} (exit status {os.WEXITSTATUS(status)}){hint}")
    try:
        kind, value = pickle.loads(data)
    except Exception:
        raise TopologyError(f"libhwloc failed reading {what}: the loader sent back no result{hint}") from None
    if kind == "err":
        # libhwloc says why on its stderr ("failed to find sysfs cpu topology directory"); the
        # exception pyhwloc raises only carries errno, so its line is the reason worth showing.
        said = [ln for ln in stderr_lines if "hwloc" in ln.lower()]
        raise TopologyError(str(value) + (f" ({said[0]})" if said else ""))
    return value


@contextmanager
def _temp_env(env: Mapping[str, str | None]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in env}
    try:
        for name, value in env.items():
            _restore_var(name, value)
        yield
    finally:
        for name, value in saved.items():
            _restore_var(name, value)


def _run_inprocess(work: Callable[[], T], *, what: str, env: Mapping[str, str | None]) -> T:
    with _temp_env(env):
        try:
            return work()
        except TopologyError:
            raise
        except Exception as e:
            raise TopologyError(f"libhwloc could not load {what}: {_reason(e)}") from None
