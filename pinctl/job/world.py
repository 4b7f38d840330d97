"""The torchrun world of ``launch --nproc-per-node``: how many nodes, which one is this, where to meet.

torch.distributed's ``env://`` init needs RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT;
torchrun also sets LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK and GROUP_WORLD_SIZE, and so
does pinctl, with torchrun's option names (--nnodes, --node-rank, --master-addr,
--master-port). Under srun the defaults come from the step (SLURM_STEP_NUM_NODES,
SLURM_NODEID, the first host of SLURM_STEP_NODELIST); a step with more than one task on
a node would start every rank once per task, so it is refused. Pure: the environment is
passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pinctl.cpuset import decimal
from pinctl.errors import UsageError

DEFAULT_PORT = 29500  # torchrun's


@dataclass(frozen=True)
class World:
    """The nodes of one job and this node's place among them (children only: off the one-rank launch path)."""

    nnodes: int
    node_rank: int
    master_addr: str
    master_port: int

    def rank_env(self, local: int, nproc: int) -> dict[str, str]:
        """The torchrun variables of local rank *local* of *nproc* on this node."""
        return {
            "LOCAL_RANK": str(local),
            "RANK": str(self.node_rank * nproc + local),
            "LOCAL_WORLD_SIZE": str(nproc),
            "WORLD_SIZE": str(nproc * self.nnodes),
            "GROUP_RANK": str(self.node_rank),
            "GROUP_WORLD_SIZE": str(self.nnodes),
            "MASTER_ADDR": self.master_addr,
            "MASTER_PORT": str(self.master_port),
        }


def first_host(nodelist: str) -> str:
    """The first host of a Slurm host list: ``gpu[003-010,12]-ib,login1`` -> ``gpu003-ib``."""
    head, depth = "", 0
    for ch in nodelist.strip():
        if ch == "," and depth == 0:
            break
        depth += ch == "["
        depth -= ch == "]"
        head += ch
    prefix, bracket, rest = head.partition("[")
    if not bracket:
        return head
    ranges, _, suffix = rest.partition("]")
    return prefix + ranges.split(",")[0].split("-")[0] + suffix


def _number(env: Mapping[str, str], name: str) -> int | None:
    text = env.get(name)
    if text is None:
        return None
    value = decimal(text, limit=9)
    if value is None:
        raise UsageError(f"{name}={text[:40]!r} is not a number")
    return value


def group_world(
    env: Mapping[str, str],
    *,
    nnodes: int | None = None,
    node_rank: int | None = None,
    master_addr: str | None = None,
    master_port: int | None = None,
) -> World:
    """The world from the options given, else the srun step this runs in, else one node on loopback."""
    in_step = "SLURM_STEP_ID" in env
    if in_step:
        tasks, nodes = _number(env, "SLURM_STEP_NUM_TASKS"), _number(env, "SLURM_STEP_NUM_NODES")
        if tasks is not None and nodes is not None and tasks > nodes:
            raise UsageError(
                f"this srun step runs {tasks} tasks on {nodes} node(s), and --nproc-per-node starts every rank "
                "of a node itself: run one task per node (srun --ntasks-per-node=1)"
            )
    if nnodes is None:
        nnodes = (_number(env, "SLURM_STEP_NUM_NODES") if in_step else None) or 1
    if node_rank is None:
        found = _number(env, "SLURM_NODEID") if in_step else None
        node_rank = found if found is not None else (_number(env, "GROUP_RANK") or 0)
    if node_rank >= nnodes:
        raise UsageError(f"node rank {node_rank} is out of range for --nnodes {nnodes}")
    if master_addr is not None:
        _check_host(master_addr, "--master-addr")
    elif env.get("MASTER_ADDR") is not None:
        master_addr = _check_host(env["MASTER_ADDR"], "MASTER_ADDR")
    if master_addr is None:
        nodelist = (env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST")) if in_step else None
        if nnodes > 1 and nodelist:
            master_addr = first_host(nodelist)
        elif nnodes > 1:
            raise UsageError(f"--nnodes {nnodes} needs --master-addr (the host of node rank 0)")
        else:
            master_addr = "127.0.0.1"
    if master_port is None:
        master_port = _number(env, "MASTER_PORT") or DEFAULT_PORT
    return World(nnodes, node_rank, master_addr, master_port)


def _check_host(text: str, source: str) -> str:
    """*text* if it can name a host (torchrun would fail on it much later, on every rank), else a UsageError."""
    if not text or not text.isprintable() or any(c.isspace() or c in "/@" for c in text):
        raise UsageError(f"{source} {text[:60]!r} is not a host name or address")
    return text
