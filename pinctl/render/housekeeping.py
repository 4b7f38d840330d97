"""Housekeeping exports: where operators confine the system's own work to the plan's housekeeping CPUs.

Pure string builders, like :mod:`pinctl.render.export`; the CLI prints or writes them.

* systemd: drop-ins that confine system.slice, user.slice and init.scope (cgroup v2
  ``AllowedCPUs=``, systemd.resource-control(5)) and the manager's own ``CPUAffinity=``
  (systemd-system.conf(5)), which every unit it starts inherits unless it sets its own.
* Slurm: ``CpuSpecList=`` for the node line (slurm.conf(5)), Slurm's abstract CPU ids,
  so slurmd and its daemons stay there and jobs never get those cores.
* irqbalance: ``IRQBALANCE_BANNED_CPULIST`` (irqbalance(1)): every CPU but housekeeping;
  irqbalance keeps a device's IRQs on its own NUMA node's CPUs where any is not banned.

Each file has a grammar a newline or a space in a value escapes: a host name from a --topology
file (untrusted) holding a newline, ``[Manager]``, a newline and ``DefaultEnvironment=LD_PRELOAD=...``
would add settings to the manager's drop-in. So every value is checked for its place before it is written (a host
name is an RFC 1123 host name, a CPU list is digits, commas and hyphens), and refused in one line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pinctl.cpuset import format_list
from pinctl.errors import PlanError, TopologyError, UsageError
from pinctl.planfile.cpuclasses import CpuClasses
from pinctl.planfile.types import Plan

DROPIN = "50-pinctl-housekeeping.conf"
# (path under /etc/systemd, section, key): the units whose processes are the system's own.
SYSTEMD_UNITS = (
    ("system/system.slice.d", "Slice", "AllowedCPUs"),
    ("system/user.slice.d", "Slice", "AllowedCPUs"),
    ("system/init.scope.d", "Scope", "AllowedCPUs"),
    ("system.conf.d", "Manager", "CPUAffinity"),
)


_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_CPU_LIST = re.compile(r"(?:\d+(?:-\d+)?(?:,\d+(?:-\d+)?)*)?\Z")
_FINGERPRINT = re.compile(r"[0-9A-Za-z:._-]{1,128}\Z")
_UNIT_FOLDER = re.compile(r"(?:system/)?[A-Za-z0-9:_.-]+\.(?:slice|scope|conf)\.d\Z")


def is_hostname(name: str) -> bool:
    """An RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, 1-63 each, 253 in all."""
    return 0 < len(name) <= 253 and all(_LABEL.match(label) for label in name.split("."))


def config_hostname(plan: Plan, what: str) -> str:
    """The plan's host name, checked before it goes into a config file (it comes from the topology)."""
    if not is_hostname(plan.hostname):
        raise TopologyError(
            f"--format {what}: the topology's host name {plan.hostname[:80]!r} is not a host name "
            "(RFC 1123: letters, digits, hyphens, dot-separated labels); nothing written"
        )
    if not _FINGERPRINT.match(plan.fingerprint):
        raise PlanError(
            f"--format {what}: the plan's fingerprint {plan.fingerprint[:80]!r} is not one; nothing written"
        )
    return plan.hostname


def cpu_list(cpus: Iterable[int], what: str) -> str:
    """A CPU list for a config file: digits, commas and hyphens only."""
    text = format_list(cpus)
    if not _CPU_LIST.match(text):
        raise PlanError(f"--format {what}: {text[:80]!r} is not a CPU list; nothing written")
    return text


def _classes(plan: Plan, what: str) -> CpuClasses:
    """The plan's CPU classes with housekeeping CPUs, or a UsageError saying how to get them."""
    c = plan.cpu_classes
    if c is None:
        raise UsageError(
            f"--format {what}: this plan file is pinctl.plan/v1, which does not list the housekeeping CPUs: plan again"
        )
    if not c.housekeeping:
        raise UsageError(
            f"--format {what}: the plan has no housekeeping CPUs: plan with --reserve CPULIST or --reserve-per-numa N"
        )
    return c


def node_cpus(plan: Plan, c: CpuClasses) -> frozenset[int]:
    """Every CPU of the node the plan names."""
    return plan.rank_cpus | plan.helper_cpus | c.housekeeping | c.idle | c.not_allowed


def systemd_files(plan: Plan) -> list[tuple[str, str]]:
    """(path under /etc/systemd, contents) of each drop-in."""
    c = _classes(plan, "systemd")
    host = config_hostname(plan, "systemd")
    cpus = cpu_list(c.housekeeping, "systemd")
    for folder, _, _ in SYSTEMD_UNITS:
        if not _UNIT_FOLDER.match(folder):
            raise PlanError(f"--format systemd: {folder!r} is not a unit's drop-in folder")
    head = (
        f"# pinctl plan for {host} (fingerprint {plan.fingerprint}): the system's own processes\n"
        f"# run on the housekeeping CPUs {cpus}; the ranks' CPUs stay free.\n"
    )
    return [(f"{folder}/{DROPIN}", f"{head}[{section}]\n{key}={cpus}\n") for folder, section, key in SYSTEMD_UNITS]


def plan_to_systemd(plan: Plan) -> str:
    """The drop-ins as one text: each under a ``# /etc/systemd/PATH`` line, then how to apply them."""
    files = systemd_files(plan)
    parts = [f"# /etc/systemd/{path}\n{text}" for path, text in files]
    parts.append(
        "# Apply: write each file above (or pinctl plan --format systemd -o DIR; cp -r DIR/. /etc/systemd/),\n"
        "# then `systemctl daemon-reload`; AllowedCPUs= takes effect at once (cgroup v2), CPUAffinity= at the\n"
        "# next boot or `systemctl daemon-reexec`. Start the ranks outside these slices (a job scheduler's own\n"
        "# scope, or `systemd-run --scope --slice=pinctl.slice`): a child cannot leave its slice's CPUs.\n"
    )
    return "\n".join(parts)


def slurm_node_lines(plan: Plan) -> list[str]:
    """slurm.conf lines keeping Slurm's jobs off the housekeeping cores, or comments saying why not."""
    c = plan.cpu_classes
    if c is None or not c.housekeeping:
        return []
    lines = [
        "",
        "# slurm.conf: add to this node's NodeName= line (keep what `slurmd -C` prints), so slurmd and",
        "# its daemons run on the housekeeping cores and no job is given them (needs TaskPlugin=task/cgroup",
        "# and ConstrainCores=yes in cgroup.conf). CpuSpecList= takes Slurm's abstract CPU ids: core c's",
        "# threads are c*ThreadsPerCore ... c*ThreadsPerCore+ThreadsPerCore-1, cores in topology order.",
    ]
    if c.threads_per_core is None or not c.housekeeping_cores:
        lines.append("# No CpuSpecList=: the topology did not say which CPUs share a core, so Slurm's ids are unknown.")
        return lines
    t = c.threads_per_core
    ids = cpu_list((core * t + k for core in c.housekeeping_cores for k in range(t)), "slurm")
    lines.append(f"NodeName={config_hostname(plan, 'slurm')} CpuSpecList={ids}")
    lines.append(
        f"# Or let Slurm choose the cores (it takes the last ones of each socket, not the plan's): "
        f"CoreSpecCount={len(c.housekeeping_cores)}"
    )
    return lines


def plan_to_irqbalance(plan: Plan) -> str:
    """The irqbalance setting that keeps device IRQs on the housekeeping CPUs."""
    c = _classes(plan, "irqbalance")
    host = config_hostname(plan, "irqbalance")
    banned = node_cpus(plan, c) - c.housekeeping
    mask = 0
    for cpu in banned:
        mask |= 1 << cpu
    words = f"{mask:x}"
    words = words.zfill(-(-len(words) // 8) * 8)
    groups = ",".join(words[i : i + 8] for i in range(0, len(words), 8))
    return (
        f"# pinctl plan for {host} (fingerprint {plan.fingerprint}): IRQs only on the housekeeping\n"
        f"# CPUs {cpu_list(c.housekeeping, 'irqbalance')}; irqbalance keeps each device's IRQs on its own NUMA node's\n"
        "# housekeeping CPUs where it has some. In /etc/default/irqbalance (Debian, Ubuntu) or\n"
        "# /etc/sysconfig/irqbalance (RHEL), then `systemctl restart irqbalance`:\n"
        f"IRQBALANCE_BANNED_CPULIST={cpu_list(banned, 'irqbalance')}\n"
        "# irqbalance before 1.8 reads a mask instead (comma-separated 32-bit hex words, as smp_affinity):\n"
        f"#IRQBALANCE_BANNED_CPUS={groups}\n"
        "# NVMe queues use managed IRQs, one per CPU, which irqbalance leaves alone: they fire on the CPU that\n"
        "# submitted the I/O. Check with `pinctl doctor --plan PLAN` (irq.remote-numa).\n"
    )
