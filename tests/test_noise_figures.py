"""watch's arithmetic on generated /proc trees: two samples of counters in, figures a user checks out.

Every test writes two states of one tree (fixtures/gen_noise.py), reads each through the same
reader watch uses (pinctl.kernel.counters.take, root-prefixed), and checks the figures.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import jsonschema
from hypothesis import example, given
from hypothesis import strategies as st
from noise_helpers import SECOND, gen, node_with_busy_neighbour, two_samples
from prometheus_client.parser import text_string_to_metric_families

from pinctl.kernel.counters import take
from pinctl.kernel.files import KeptOpen, KernelFiles
from pinctl.kernel.interrupts import parse_counts
from pinctl.kernel.proc import parse_numa_pages
from pinctl.kernel.stat import parse_stat, parse_task_stat
from pinctl.noise.figures import Target, compute
from pinctl.noise.report import Bounds, crossed, noise_doc, watch_doc
from pinctl.render.prometheus import watch_textfile

REPO = Path(__file__).resolve().parents[1]
WATCH_SCHEMA = json.loads((REPO / "pinctl" / "schemas" / "watch-v1.json").read_text())


def test_a_busy_neighbour_is_named_with_its_share_and_the_idle_cpu_reads_zero(tmp_path: Path) -> None:
    before, after = node_with_busy_neighbour(0), node_with_busy_neighbour(SECOND)
    after.cpu[1] = [100, 0, 0, 0, 0, 0, 0, 0]  # CPU 1 was busy the whole second
    after.cpu[0] = [0, 0, 0, 100, 0, 0, 0, 0]  # CPU 0 idle
    a, b = two_samples(tmp_path, before, after)
    busy = compute(a, b, Target("CPUs 1", "cpus", frozenset({1})), 100)
    idle = compute(a, b, Target("CPUs 0", "cpus", frozenset({0})), 100)
    assert busy.foreign_cpu_pct == 100.0
    assert busy.offenders is not None and [(o.pid, o.comm, o.cpu_pct) for o in busy.offenders] == [(500, "hog", 100.0)]
    assert busy.offenders[0].wakeups_per_s == 1000.0
    assert idle.foreign_cpu_pct == 0.0 and idle.offenders == ()
    assert not crossed(idle, Bounds(max_foreign=1)) and crossed(busy, Bounds(max_foreign=50))


def test_a_ranks_own_time_is_not_foreign(tmp_path: Path) -> None:
    before, after = node_with_busy_neighbour(0), node_with_busy_neighbour(0)
    after.thread(700).run_ns = SECOND // 2
    after.thread(700, 701).run_ns = SECOND // 4
    after.thread(700, 701).involuntary = 30
    after.cpu[0] = [100, 0, 0, 0, 0, 0, 0, 0]  # the rank took 75 of these 100 ticks, someone else 25
    a, b = two_samples(tmp_path, before, after, pids=(700,))
    rank = compute(a, b, Target("rank 0", "rank", frozenset({0}), (700,)), 100)
    assert rank.own_cpu_pct == 75.0 and rank.foreign_cpu_pct == 25.0
    assert rank.involuntary_switches_per_s == 30.0
    assert rank.outside == ()


def test_a_rank_thread_seen_outside_its_cpus_is_named(tmp_path: Path) -> None:
    before, after = node_with_busy_neighbour(0), node_with_busy_neighbour(0)
    for node in (before, after):  # a thread of the rank was let onto both CPUs (a library's own pool)
        node.thread(700, 701).cpus = "0-1"
    after.thread(700, 701).run_ns = SECOND // 10
    after.thread(700, 701).processor = 1
    a, b = two_samples(tmp_path, before, after, pids=(700,), homes={700: frozenset({0})})
    rank = compute(a, b, Target("rank 0", "rank", frozenset({0}), (700,)), 100)
    assert rank.outside == ((701, 1),)


def test_interrupts_softirqs_and_steal_per_second_on_the_targets_cpus_only(tmp_path: Path) -> None:
    before, after = gen.Node(2), gen.Node(2)
    before.irqs["142"] = ("mlx5_comp3@pci:0000:17:00.0", {0: 10, 1: 0})
    after.irqs["142"] = ("mlx5_comp3@pci:0000:17:00.0", {0: 10, 1: 5000})
    after.irqs["LOC"] = ("Local timer interrupts", {0: 250, 1: 250})
    after.softirqs["NET_RX"] = {1: 4000}
    after.cpu[1] = [0, 0, 0, 80, 0, 0, 0, 20]
    a, b = two_samples(tmp_path, before, after)
    one = compute(a, b, Target("CPUs 1", "cpus", frozenset({1})), 100)
    zero = compute(a, b, Target("CPUs 0", "cpus", frozenset({0})), 100)
    assert one.irq_sources[0] == ("142:mlx5_comp3", 5000.0) and one.irq_per_s == 5250.0
    assert one.softirq_per_s == {"NET_RX": 4000.0} and one.steal_pct == 20.0
    assert zero.irq_per_s == 250.0 and [n for n, _ in zero.irq_sources] == ["LOC Local timer interrupts"]
    assert zero.steal_pct == 0.0 and zero.foreign_cpu_pct == 0.0


def test_memory_outside_the_policy_is_a_share_of_the_pages(tmp_path: Path) -> None:
    before, after = node_with_busy_neighbour(0), node_with_busy_neighbour(0)
    after.numa_maps[700] = ("7f0000000000 bind:0 anon=40 dirty=40 N0=30 N1=10 kernelpagesize_kB=4\n"
                            "7f1000000000 default anon=60 N0=60 kernelpagesize_kB=4\n")  # fmt: skip
    a, b = two_samples(tmp_path, before, after, pids=(700,), numa=True)
    rank = compute(a, b, Target("rank 0", "rank", frozenset({0}), (700,), mems=frozenset({0})), 100)
    assert rank.remote_memory_pct == 10.0  # 10 of 100 pages off node 0
    unplanned = compute(a, b, Target("rank 0", "rank", frozenset({0}), (700,)), 100)
    assert unplanned.remote_memory_pct == 25.0  # default mappings are not judged without the plan's nodes


def test_without_a_scan_offenders_are_unknown_not_empty(tmp_path: Path) -> None:
    before, after = node_with_busy_neighbour(0), node_with_busy_neighbour(SECOND)
    after.cpu[1] = [100, 0, 0, 0, 0, 0, 0, 0]
    a, b = two_samples(tmp_path, before, after, scan=False)
    busy = compute(a, b, Target("CPUs 1", "cpus", frozenset({1})), 100)
    assert busy.offenders is None and busy.foreign_cpu_pct == 100.0
    assert Bounds().notable(busy)


def test_a_thread_hopping_between_two_cpus_is_split_not_counted_twice(tmp_path: Path) -> None:
    before, after = node_with_busy_neighbour(0), node_with_busy_neighbour(SECOND)
    before.thread(500).processor, after.thread(500).processor = 0, 1
    after.cpu[0] = after.cpu[1] = [50, 0, 0, 50, 0, 0, 0, 0]  # its second, half on each CPU
    a, b = two_samples(tmp_path, before, after)
    pcts = [compute(a, b, Target(f"CPU {c}", "cpus", frozenset({c})), 100).offenders for c in (0, 1)]
    assert [[o.cpu_pct for o in p or ()] for p in pcts] == [[50.0], [50.0]]


def test_named_shares_never_exceed_the_foreign_time_they_explain(tmp_path: Path) -> None:
    """Two processes each seen on CPU 1 at both scans, each with 0.8 s of run time: they cannot
    both have spent it there (CPU 1 was busy 1 s); the shares are scaled to the counters' total."""
    before, after = node_with_busy_neighbour(0), node_with_busy_neighbour(SECOND * 8 // 10)
    for node, run in ((before, 0), (after, SECOND * 8 // 10)):
        node.threads.append(gen.Thread(600, 600, "other", run_ns=run, processor=1, cpus="0-1"))
    after.cpu[1] = [100, 0, 0, 0, 0, 0, 0, 0]
    after.cpu[0] = [60, 0, 0, 40, 0, 0, 0, 0]
    a, b = two_samples(tmp_path, before, after)
    busy = compute(a, b, Target("CPUs 1", "cpus", frozenset({1})), 100)
    assert busy.foreign_cpu_pct == 100.0 and busy.offenders is not None
    assert sorted((o.pid, o.cpu_pct) for o in busy.offenders) == [(500, 50.0), (600, 50.0)]


def test_the_watch_document_validates_and_its_gauges_parse(tmp_path: Path) -> None:
    before, after = node_with_busy_neighbour(0), node_with_busy_neighbour(SECOND)
    after.cpu[1] = [100, 0, 0, 0, 0, 0, 0, 0]
    a, b = two_samples(tmp_path, before, after, pids=(700,))
    figs = [compute(a, b, Target("rank 0 (pid 700)", "rank", frozenset({0}), (700,), local_rank=0), 100),
            compute(a, b, Target("CPUs 1", "cpus", frozenset({1})), 100)]  # fmt: skip
    doc = watch_doc("gen-node", 1, 0.0, figs, {0: "root"}, bounds=Bounds(max_foreign=10))
    jsonschema.validate(doc, WATCH_SCHEMA)
    assert doc["ok"] is False and doc["crossed"] == ["CPUs 1: other threads took 100% of its CPUs (bound 10%)"]
    assert doc["targets"][1]["offenders"][0]["user"] == "root"
    samples = {(s.name, s.labels.get("target")): s.value
               for fam in text_string_to_metric_families(watch_textfile(doc)) for s in fam.samples}  # fmt: skip
    assert samples[("pinctl_watch_foreign_cpu_percent", "CPUs 1")] == 100.0
    assert samples[("pinctl_watch_bound_crossed", None)] == 1.0


def test_parsers_take_what_the_kernel_writes() -> None:
    stat = "cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 10 1 5 100 2 3 4 7 9 0\ncpu3 1 0 0 0 0 0 0 0 0 0\nintr 5\n"
    cpus = parse_stat(stat)
    assert sorted(cpus) == [0, 3] and cpus[0].busy == 23 and cpus[0].idle == 102 and cpus[0].steal == 7
    task = parse_task_stat("42 (a (b) c) R " + " ".join(["1"] * 10 + ["7", "8"] + ["0"] * 23 + ["5", "0"]), 100)
    assert task is not None and task.comm == "a (b) c" and task.run_ns == 150_000_000 and task.processor == 5
    text = ("           CPU0       CPU2\n  24:    1    2   IO-APIC 5-edge   nvme0q12\n"
            "ERR:    0\nLOC:  100  200   Local timer interrupts\n")  # fmt: skip
    counts = parse_counts(text, {2})
    assert counts == {"24:nvme0q12": {2: 2}, "ERR": {}, "LOC Local timer interrupts": {2: 200}}


def test_a_big_tree_reads_every_thread_only_when_asked(tmp_path: Path) -> None:
    gen.write(tmp_path, gen.big(8, 200))
    files = KernelFiles(str(tmp_path))
    quiet = take(files, {0, 1}, (1000,), 100)
    assert quiet.scan is None and len(quiet.threads[1000]) == 20
    scanned = take(files, {0, 1}, (1000,), 100, scan=True)
    assert scanned.scan is not None and len(scanned.scan) == 200


def test_kept_files_are_read_anew_and_forgotten_when_their_task_ends(tmp_path: Path) -> None:
    import threading

    files = KernelFiles("/")
    kept = KeptOpen(files, limit=2)
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    tid = worker.native_id
    pid = os.getpid()
    first = kept.read(f"/proc/{pid}/task/{tid}/schedstat")
    assert first is not None and len(kept.fds) == 1
    sum(range(10**6))  # this thread runs; its own schedstat, read again through the kept file, moves
    mine = f"/proc/{pid}/task/{threading.get_native_id()}/schedstat"
    a, b = kept.read(mine), (sum(range(10**6)), kept.read(mine))[1]
    assert a is not None and b is not None and int(b.split()[0]) > int(a.split()[0])
    assert kept.read(f"/proc/{pid}/status") is not None and len(kept.fds) == 2  # over the limit: read, not kept
    stop.set()
    worker.join()
    for _ in range(200):  # the kernel reaps the thread a moment after Python's join returns
        if not os.path.exists(f"/proc/{pid}/task/{tid}"):
            break
        time.sleep(0.01)
    assert kept.read(f"/proc/{pid}/task/{tid}/schedstat") is None  # the thread ended
    kept.sweep()
    kept.sweep()
    assert kept.fds == {}
    kept.close()


def test_a_quiet_cpu_is_not_called_noisy() -> None:
    def cpu(n: int, lost: float) -> dict[str, object]:
        return {"cpu": n, "lost_pct": lost, "max_detour_us": 9.0, "p99_detour_us": 3.0, "offenders": [],
                "irq_sources": [{"name": "LOC Local timer interrupts", "per_s": 250.0}]}  # fmt: skip

    doc = noise_doc("n", "probe", None, 1.0, [cpu(0, 0.3), cpu(1, 45.0), cpu(2, 1.9)], bounds=Bounds(max_lost=1))
    assert [c["cpu"] for c in doc["noisiest"]] == [1]
    assert doc["crossed"] == ["CPU 1: lost 45% of its time (bound 1%)", "CPU 2: lost 1.9% of its time (bound 1%)"]


@given(st.text(alphabet=st.sampled_from("0123456789 :()\nCPUabcN=x-²\t"), max_size=300))
@example("\n:")  # a header naming no CPU, then a row: once an IndexError
def test_the_counter_parsers_never_raise(text: str) -> None:
    """A gathered or garbled file is data, never a traceback."""
    parse_counts("           CPU0       CPU1\n" + text, {0, 1})
    parse_counts(text)
    parse_stat(text)
    parse_task_stat(text, 100)
    parse_numa_pages(text)
