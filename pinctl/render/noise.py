"""What ``watch`` and ``noise`` show, drawn from their JSON documents (so the view and ``--json`` agree).

``watch`` on a terminal redraws one table per interval in place; in a pipe it writes one line per
target per interval (``interval 3 rank 0 (pid 4711) cpus=8-15 foreign=12.5% ...``), for grep and
logs. ``noise`` is one table of CPUs and the noisiest named under it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, TextIO

from pinctl.noise.report import NOISY_PCT, NOTABLE_PCT, unnamed_pct
from pinctl.render.layout import GLUE
from pinctl.render.table import Table, draw, use_rich

CLEAR = "\x1b[H\x1b[2J"  # cursor home, erase screen (ECMA-48): the table is redrawn in place


def _n(value: object, unit: str = "") -> str:
    return "-" if value is None else f"{value:g}{unit}" if isinstance(value, int | float) else str(value)


def _offenders(t: Mapping[str, Any], top: int = 3) -> str:
    found = t.get("offenders")
    if found is None:  # no scan covered this interval; a notable one starts it, for the next (docs/noise.md)
        pct = t.get("foreign_cpu_pct") or 0
        return "" if pct < 1 else "(named from the next interval)" if pct >= NOTABLE_PCT else "(named once notable)"
    named = [_who(o) for o in found[:top]]
    if (rest := unnamed_pct(t.get("foreign_cpu_pct"), found[:top])) is not None:  # of what the cell shows
        named.append(f"{rest:g}%{GLUE}not{GLUE}named")
    return ", ".join(named)


def _who(o: Mapping[str, Any]) -> str:
    """``comm (pid, user) 12.5%``, with ``2000 runs/s`` when it was put on the CPUs often; a
    narrow table wraps between offenders or after the name, never inside a figure (GLUE)."""
    user = f",{GLUE}{o['user']}" if o.get("user") else ""
    runs = f"{GLUE}{o['wakeups_per_s']:g}{GLUE}runs/s" if (o.get("wakeups_per_s") or 0) >= 50 else ""
    return f"{o['comm']} ({o['pid']}{user}) {o['cpu_pct']:g}%{runs}"


def _irqs(t: Mapping[str, Any], top: int = 2) -> str:
    return ", ".join(GLUE.join(f"{s['name']} {s['per_s']:g}/s".split()) for s in (t.get("irq_sources") or [])[:top])


def watch_line(doc: Mapping[str, Any], t: Mapping[str, Any]) -> str:
    """One target of one interval as one line."""
    soft = t.get("softirq_per_s") or {}
    parts = [
        f"interval {doc['interval']} {t['name']} cpus={t['cpulist']}",
        f"foreign={_n(t['foreign_cpu_pct'], '%')}",
        f"steal={_n(t['steal_pct'], '%')}",
        f"irq/s={_n(t['irq_per_s'])}",
        f"softirq/s={_n(round(sum(soft.values()), 1))}",
        f"invol/s={_n(t['involuntary_switches_per_s'])}",
    ]
    if t.get("remote_memory_pct") is not None:
        parts.append(f"remote_mem={t['remote_memory_pct']:g}%")
    if t.get("outside_cpus"):
        parts.append("outside=" + ",".join(f"{o['tid']}@{o['cpu']}" for o in t["outside_cpus"]))
    if who := _offenders(t):
        parts.append(f"offenders: {who}")
    if irqs := _irqs(t):
        parts.append(f"irqs: {irqs}")
    return " ".join(parts).replace(GLUE, " ")


def watch_table(doc: Mapping[str, Any]) -> Table:
    rows = tuple(
        (
            t["name"],
            t["cpulist"],
            _n(t["foreign_cpu_pct"], "%"),
            _offenders(t),
            _n(t["irq_per_s"]),
            _irqs(t),
            _n(t["steal_pct"], "%"),
            _n(t["involuntary_switches_per_s"]),
            _n(t.get("remote_memory_pct"), "%"),
        )
        for t in doc["targets"]
    )
    title = f"{doc['hostname']}: interval {doc['interval']} ({_n(doc['seconds'])} s)"
    return Table(
        title,
        ("target", "CPUs", "foreign", "offenders", "irq/s", "top IRQs", "steal", "invol/s", "remote mem"),
        rows,
        optional=("remote mem", "invol/s", "steal", "top IRQs"),
    )


def draw_watch(doc: Mapping[str, Any], out: TextIO | None = None) -> None:
    """One interval: the table redrawn in place on a terminal, one line per target otherwise."""
    stream = out or sys.stdout
    tail = [
        f"GPU {g['index']} clocks held down: {', '.join(g['slowdowns'])}"
        for g in doc.get("gpus") or []
        if g.get("slowdowns")
    ]
    tail += [f"crossed: {line}" for line in doc["crossed"]] + [f"note: {n}" for n in doc["notes"]]
    tail += [f"not readable: {d}" for d in doc["denied"]]
    if use_rich(stream):
        stream.write(CLEAR)
        draw([watch_table(doc), *tail], stream)
    else:
        stream.write("".join(watch_line(doc, t) + "\n" for t in doc["targets"]) + "".join(x + "\n" for x in tail))
    stream.flush()


def noise_lines(doc: Mapping[str, Any]) -> list[Table | str]:
    """The CPUs' table (``class`` only with a plan, ``error`` only when a probe failed, and then never
    dropped on a narrow terminal: a failed CPU must not read as a quiet one), then the noisiest."""
    headers = ("CPU", "class", "lost", "max us", "p99 us", "foreign", "what ran there", "top IRQs", "error")
    rows = tuple(
        (
            str(c["cpu"]),
            c.get("class") or "",
            _n(c["lost_pct"], "%"),
            _n(c["max_detour_us"]),
            _n(c["p99_detour_us"]),
            _n(c.get("foreign_cpu_pct"), "%"),
            _offenders(c),
            _irqs(c),
            c.get("error") or "",
        )
        for c in doc["cpus"]
    )
    shown = [i for i, h in enumerate(headers) if h not in ("class", "error") or any(r[i] for r in rows)]
    table = Table(
        f"{doc['hostname']}: noise over {doc['seconds']:g} s (method: {doc['method']})",
        tuple(headers[i] for i in shown),
        tuple(tuple(r[i] for i in shown) for r in rows),
        optional=("top IRQs", "class"),
    )
    items: list[Table | str] = [table]
    if doc.get("method_note"):
        items.append(f"method: {doc['method_note']}")
    if doc["noisiest"]:
        for c in doc["noisiest"]:
            named = "; ".join(c["sources"]) or "no source named"
            items.append(f"noisiest: CPU {c['cpu']} lost {c['lost_pct']:g}%: {named}")
    else:
        items.append(f"quiet: no CPU lost {NOISY_PCT:g}% or more of its time")
    items += [f"crossed: {line}" for line in doc["crossed"]] + [f"note: {n}" for n in doc["notes"]]
    return items


def draw_noise(doc: Mapping[str, Any], out: TextIO | None = None) -> None:
    draw(noise_lines(doc), out or sys.stdout)
