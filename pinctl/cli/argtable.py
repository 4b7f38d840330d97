"""The options of ``launch`` and ``pin`` as plain data, and the click-free parser that reads them.

One table per command is the grammar: pinctl/cli/options.py turns each entry into a click
option (help, ``--help`` and usage errors), and :func:`parse` reads the same entries
without importing click, so ``launch --plan P -- CMD`` starts fast and still means what the
click command means. :func:`parse` takes the forms click reads the same way (``--name
value``, ``--name=value``, ``-x value``, flags, ``--``) and returns None for any other
(``-xVALUE``, ``-lv``, ``--help``, a value it cannot check, an unknown option): click then
parses it from the same table and runs the same code, and says what is wrong.
tests/test_cli_grammar.py holds the two readings together.
"""

from __future__ import annotations

from pinctl.cpuset import decimal
from pinctl.planfile.types import GPU_MEM_POLICIES, MEM_POLICIES
from pinctl.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the launch path
if TYPE_CHECKING:
    from typing import Any, Final


class Opt:
    """One option: its spellings, where its value goes (*dest*), its kind ("flag", "text", "int",
    "float" or "choice"), default, help, and for numbers the range, for choices the names.

    Plain slots, not a Record: the tables build some fifty of these on every launch."""

    __slots__ = ("choices", "default", "dest", "flags", "help", "hi", "kind", "lo", "metavar", "multiple", "shown")

    def __init__(
        self,
        flags: tuple[str, ...],
        dest: str,
        kind: str,
        help: str,
        *,
        default: object = None,
        metavar: str | None = None,
        lo: int | None = None,
        hi: int | None = None,
        choices: tuple[str, ...] = (),
        multiple: bool = False,
        shown: bool = False,
    ) -> None:
        self.flags: Final = flags
        self.dest: Final = dest
        self.kind: Final = kind
        self.help: Final = help
        self.default: Final = default if default is not None or kind != "flag" else False
        self.metavar: Final = metavar
        self.lo: Final = lo
        self.hi: Final = hi
        self.choices: Final = choices
        self.multiple: Final = multiple
        self.shown: Final = shown  # show the default in --help


SOURCE = (
    Opt(
        ("--topology",),
        "topology",
        "text",
        "An hwloc XML (lstopo --of xml, pinctl snapshot) or NCCL topology XML instead of this machine.",
        metavar="PATH",
    ),
    Opt(
        ("--root",),
        "root",
        "text",
        "A gathered /sys and /proc tree (hwloc-gather-topology layout) instead of this machine.",
        metavar="DIR",
    ),
)
PLANNING = (
    Opt(("--gpus",), "gpus", "text", "GPUs to plan for: indexes (0-3,6) or PCI bus ids.", metavar="LIST|all"),
    Opt(
        ("--procs-per-gpu",),
        "procs_per_gpu",
        "int",
        "Ranks per GPU (they split the GPU's share of cores).",
        default=1,
        lo=1,
        hi=64,
        metavar="N",
        shown=True,
    ),
    Opt(
        ("--ranks",),
        "ranks",
        "int",
        "CPU-only ranks (a node without GPUs, or ignoring them).",
        lo=1,
        hi=4096,
        metavar="N",
    ),
    Opt(("--reserve",), "reserve", "text", "CPUs kept out of every rank (housekeeping).", metavar="CPULIST"),
    Opt(
        ("--reserve-per-numa",),
        "reserve_per_numa",
        "int",
        "Reserve the first N whole cores of each NUMA node.",
        default=0,
        lo=0,
        hi=1024,
        metavar="N",
        shown=True,
    ),
    Opt(
        ("--smt",),
        "smt",
        "choice",
        "Give ranks every hardware thread of a core, or only its lowest-numbered one.",
        default="all",
        choices=("all", "one-per-core"),
        shown=True,
    ),
    Opt(
        ("--mem-policy",),
        "mem_policy",
        "choice",
        "Memory policy per rank (nodes local to its CPUs; +gpu adds its GPU's HBM node on Grace).",
        default="bind",
        choices=(*MEM_POLICIES, *GPU_MEM_POLICIES),
        shown=True,
    ),
    Opt(
        ("--nic-link-layer",),
        "nic_link_layer",
        "choice",
        "RDMA NICs to use: InfiniBand (and EFA/Slingshot), RoCE, or any.",
        default="ib",
        choices=("ib", "eth", "any"),
        shown=True,
    ),
    Opt(
        ("--nics-per-gpu",),
        "nics_per_gpu",
        "int",
        "Distinct NICs per GPU (multi-rail); 0 plans no NICs (and sets no NCCL/UCX variables).",
        default=1,
        lo=0,
        hi=64,
        metavar="K",
        shown=True,
    ),
    Opt(
        ("--local-rails",),
        "local_rails",
        "flag",
        "Extra rails (--nics-per-gpu > 1) only on the GPU's side of the CPU interconnect.",
    ),
    Opt(
        ("--isolate-gpus",),
        "isolate_gpus",
        "flag",
        "Show each rank only its GPU (CUDA_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES or ZE_AFFINITY_MASK, by vendor).",
    ),
    Opt(
        ("--helpers",),
        "helpers",
        "flag",
        "Share the idle cores out as each rank's helper CPUs for data-loader workers, nearest its GPU first "
        "(PINCTL_HELPER_CPUS; pinctl.bind_helper binds a worker there).",
    ),
)
PLAN_FILE = (
    Opt(("--plan",), "plan_file", "text", "A plan file (pinctl plan --json).", metavar="FILE"),
    Opt(
        ("--allow-env",),
        "allow_env",
        "text",
        "Accept this variable in the plan file's environment beyond pinctl's list (docs/launch.md); repeatable.",
        metavar="NAME",
        multiple=True,
    ),
)
# --plan FILE, or the options of ``pinctl plan`` to compute one (launch, pin, check).
PLAN_OPTIONS = PLAN_FILE + SOURCE + PLANNING
# The planning options' destinations (what makes a command compute a plan).
PLAN_OPTION_NAMES = tuple(o.dest for o in PLANNING)

LAUNCH = (
    *PLAN_OPTIONS,
    Opt(
        ("--local-rank",),
        "local_rank",
        "int",
        "This process's rank (else from env).",
        lo=0,
        hi=4095,
        metavar="N",
    ),
    Opt(("-C", "--physcpubind"), "physcpubind", "text", "Run on these CPUs (numactl syntax, 'all').", metavar="CPUS"),
    Opt(("-N", "--cpunodebind"), "cpunodebind", "text", "Run on the CPUs of these NUMA nodes.", metavar="NODES"),
    Opt(("-m", "--membind"), "membind", "text", "Allocate memory only on these nodes.", metavar="NODES"),
    Opt(("--preferred",), "preferred", "text", "Allocate on this node first.", metavar="NODE"),
    Opt(("-i", "--interleave"), "interleave", "text", "Interleave memory over these nodes.", metavar="NODES"),
    Opt(("-l", "--localalloc"), "localalloc", "flag", "Allocate on the node of the running CPU."),
    Opt(
        ("--nproc-per-node",),
        "nproc_per_node",
        "text",
        "Start N bound children (all: one per plan rank).",
        metavar="N|all",
    ),
    Opt(
        ("--nnodes",),
        "nnodes",
        "int",
        "Nodes in the job (WORLD_SIZE = nnodes x nproc-per-node); default: the srun step's, else 1.",
        lo=1,
        hi=1 << 20,
        metavar="N",
    ),
    Opt(
        ("--node-rank",),
        "node_rank",
        "int",
        "This node's index (RANK offset); default SLURM_NODEID in an srun step, GROUP_RANK, else 0.",
        lo=0,
        hi=1 << 20,
        metavar="N",
    ),
    Opt(
        ("--master-addr",),
        "master_addr",
        "text",
        "Host of node rank 0 (MASTER_ADDR); default $MASTER_ADDR, the step's first host, else 127.0.0.1.",
        metavar="HOST",
    ),
    Opt(
        ("--master-port",),
        "master_port",
        "int",
        "Port on it (MASTER_PORT); default $MASTER_PORT, else 29500 as torchrun.",
        lo=1,
        hi=65535,
        metavar="PORT",
    ),
    Opt(
        ("--grace",),
        "grace",
        "float",
        "Seconds before SIGKILL.",
        default=10.0,
        lo=0,
        hi=3600,
        shown=True,
        metavar="SECONDS",
    ),
    Opt(("-v", "--verbose"), "verbose", "flag", "Say on stderr which rank and binding were used."),
    Opt(("--dry-run",), "dry_run", "flag", "Print the binding, environment and numactl equivalent; run nothing."),
    Opt(("--force",), "force", "flag", "Run even when the plan is foreign or the binding did not take."),
)

PIN = (
    Opt(("--cpus", "-c"), "cpus_text", "text", "Pin to these CPUs.", metavar="LIST"),
    Opt(("--rank",), "rank", "int", "Pin to this local rank's CPUs in the plan.", lo=0, hi=4095, metavar="N"),
    Opt(("--gpu",), "gpu", "int", "Pin to the CPUs of this GPU's ranks.", lo=0, hi=4095, metavar="INDEX"),
    Opt(("--auto",), "auto", "flag", "Find each GPU's processes with NVML and pin them to that GPU's CPUs."),
    Opt(("--mems",), "mems", "text", "Target memory nodes for --migrate.", metavar="NODES"),
    Opt(("--migrate",), "migrate", "flag", "Move the processes' pages to the target nodes (migrate_pages)."),
    Opt(("--force",), "force", "flag", "Use a plan made for another node; pin init or kernel threads too."),
    *PLAN_OPTIONS,
)


class Parsed(Record):
    """What :func:`parse` read: every option's value (defaults filled in), the options typed
    (*given*), and the positional arguments (*rest*)."""

    __slots__ = ("given", "rest", "values")

    def __init__(self, values: dict[str, Any], given: frozenset[str], rest: tuple[str, ...]) -> None:
        self.values: Final = values
        self.given: Final = given
        self.rest: Final = rest


def parse(table: tuple[Opt, ...], args: list[str], *, interspersed: bool) -> Parsed | None:
    """*args* read against *table*, or None for a form left to click (see the module's docstring).

    *interspersed* False: options end at the first positional argument (launch's command);
    True: positional arguments may stand between options (pin's PIDs).
    """
    by_flag = {flag: opt for opt in table for flag in opt.flags}
    values: dict[str, Any] = {opt.dest: opt.default for opt in table}
    repeated: dict[str, list[object]] = {opt.dest: [] for opt in table if opt.multiple}
    given: set[str] = set()
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i + 1 :]
            break
        if arg[:1] != "-" or arg == "-":
            if not interspersed:
                rest += args[i:]
                break
            rest.append(arg)
            i += 1
            continue
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        opt = by_flag.get(name)
        if opt is None:
            return None  # unknown, --help, -lv, -C0-3: click's to read or refuse
        if opt.kind == "flag":
            if eq:
                return None
            values[opt.dest] = True
        else:
            if eq:
                text = inline
            elif i + 1 < len(args):
                i += 1
                text = args[i]
            else:
                return None
            value = _value(opt, text)
            if value is None:
                return None
            if opt.multiple:
                repeated[opt.dest].append(value)
            else:
                values[opt.dest] = value
        given.add(opt.dest)
        i += 1
    for dest, items in repeated.items():
        values[dest] = tuple(items)
    return Parsed(values, frozenset(given), tuple(rest))


def _value(opt: Opt, text: str) -> object:
    """*text* as *opt*'s value, or None when only click can say what is wrong with it."""
    if opt.kind == "text":
        return text
    if opt.kind == "choice":
        return text if text in opt.choices else None
    if opt.kind == "int":
        number: float | None = decimal(text, limit=8)
    else:  # "float": plain decimals only; click reads the rest (1e3, inf) and judges them
        digits = text.strip().replace(".", "", 1)
        number = float(text) if 0 < len(digits) <= 12 and digits.isascii() and digits.isdigit() else None
    if number is None or (opt.lo is not None and number < opt.lo) or (opt.hi is not None and number > opt.hi):
        return None
    return number
