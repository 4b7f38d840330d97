"""watch's and noise's views drawn from a fixed document: what a person reads at 80 columns and in a pipe."""

from __future__ import annotations

import io
import re
from typing import Any

from pinctl.noise.report import noisiest
from pinctl.render.noise import draw_watch, noise_lines, watch_table
from pinctl.render.table import plain


def _doc() -> dict[str, Any]:
    offenders = [
        {"pid": pid, "comm": comm, "cpu_pct": pct, "uid": 0, "user": "root", "threads": 1, "wakeups_per_s": runs}
        for pid, comm, pct, runs in ((10885, "python3", 91.2, 290.1), (8641, "python", 1.3, 315.3),
                                     (47, "kworker/1:1H-kblockd", 0.6, 313.4))
    ]  # fmt: skip
    target = {"name": "CPUs 1", "kind": "cpus", "cpus": [1], "cpulist": "1", "pids": [], "local_rank": None,
              "foreign_cpu_pct": 100.0, "own_cpu_pct": 0.0, "per_cpu_busy_pct": {"1": 100.0}, "offenders": offenders,
              "irq_per_s": 628.6, "irq_sources": [{"name": "LOC Local timer interrupts", "per_s": 286.3},
                                                  {"name": "36:virtio1-req.0", "per_s": 99.1}],
              "softirq_per_s": {"TIMER": 250.0}, "steal_pct": 0.0, "involuntary_switches_per_s": None,
              "outside_cpus": [], "remote_memory_pct": None}  # fmt: skip
    return {"schema": "pinctl.watch/v1", "hostname": "vm", "interval": 3, "time": 0.0, "seconds": 0.517,
            "targets": [target], "gpus": [], "crossed": [], "ok": True, "notes": [], "denied": []}  # fmt: skip


def test_a_narrow_table_never_splits_an_offenders_figure() -> None:
    for width in (60, 80, 100):
        text = plain([watch_table(_doc())], width)
        assert "\u00a0" not in text
        # every "N runs/s" and "(pid, user)" stays on one line: as many whole figures as offenders
        assert len(re.findall(r"\d+(?:\.\d+)?% \d+(?:\.\d+)? runs/s", text)) == 3, (width, text)
        assert len(re.findall(r"\(\d+, root\)", text)) == 3, (width, text)


def test_pipe_lines_carry_no_glue_characters() -> None:
    out = io.StringIO()
    draw_watch(_doc(), out)
    line = out.getvalue()
    assert "\u00a0" not in line
    assert "python3 (10885, root) 91.2% 290.1 runs/s" in line and "LOC Local timer interrupts 286.3/s" in line


def test_an_unscanned_busy_interval_says_when_offenders_come_not_that_it_is_quiet() -> None:
    doc = _doc()
    doc["targets"][0]["offenders"] = None  # the first interval: no scan covered it yet
    out = io.StringIO()
    draw_watch(doc, out)
    assert "offenders: (named from the next interval)" in out.getvalue()
    doc["targets"][0]["foreign_cpu_pct"] = 3.0  # below the notable share: no scan will come
    out = io.StringIO()
    draw_watch(doc, out)
    assert "offenders: (named once notable)" in out.getvalue()


def test_foreign_time_the_named_offenders_do_not_explain_is_said() -> None:
    doc = _doc()
    doc["targets"][0]["offenders"] = doc["targets"][0]["offenders"][1:]  # 1.3% + 0.6% named of 100%
    out = io.StringIO()
    draw_watch(doc, out)
    assert "98.1% not named" in out.getvalue()
    doc["targets"][0]["offenders"] = [{**doc["targets"][0]["offenders"][0], "cpu_pct": 20.0}] * 5  # 3 shown
    out = io.StringIO()
    draw_watch(doc, out)
    assert "40% not named" in out.getvalue()  # of what the cell shows: 100 - 3 x 20
    cpu = {"cpu": 0, "class": None, "lost_pct": 85.5, "foreign_cpu_pct": 86.1, "irq_sources": [],
           "offenders": [{"pid": 1, "comm": "init", "cpu_pct": 0.5}]}  # fmt: skip
    assert noisiest([cpu])[0]["sources"] == [
        "init (pid 1, 0.5%)",
        "85.6% not named (threads that ended or moved between the scans)",
    ]
    cpu["offenders"] = [{"pid": 1, "comm": "hog", "cpu_pct": 85.0}]  # all but rounding named: nothing added
    assert noisiest([cpu])[0]["sources"] == ["hog (pid 1, 85%)"]


def _noise_doc(error: str | None) -> dict[str, Any]:
    cpus = [{"cpu": n, "class": None, "lost_pct": 0.5, "max_detour_us": 12.0, "p99_detour_us": 4.0, "detours": 3,
             "quantum_ns": 100, "error": error if n == 1 else None, "foreign_cpu_pct": 0.4, "offenders": [],
             "irq_per_s": 250.0, "irq_sources": [{"name": "LOC Local timer interrupts", "per_s": 250.0}],
             "softirq_per_s": {}, "steal_pct": 0.0} for n in (0, 1)]  # fmt: skip
    return {"hostname": "vm", "seconds": 1.0, "method": "probe", "method_note": None, "cpus": cpus,
            "noisiest": [], "crossed": [], "notes": []}  # fmt: skip


def test_noise_table_shows_a_failed_cpu_at_any_width_and_no_empty_columns() -> None:
    quiet = plain(noise_lines(_noise_doc(None)))
    assert "class" not in quiet.splitlines()[1] and "error" not in quiet.splitlines()[1]
    for width in (60, 80, 200):
        text = plain(noise_lines(_noise_doc("cannot run on CPU 1: Invalid argument")), width)
        assert "cannot" in text and "Invalid" in text, (width, text)  # the error, maybe wrapped, never dropped
