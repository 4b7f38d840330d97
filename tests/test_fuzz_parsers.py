"""Every parser of untrusted text gets generated garbage (issue 11): the answer is a valid result or a
PinctlError, never another exception, and it comes in bounded time (hypothesis' deadline).

Untrusted here means anything a user, a launcher, a file or a gathered tree hands pinctl: CPU lists
and masks, PCI addresses, command-line values, launcher variables, /proc and /sys file contents.
Plan files, NCCL and hwloc XML have their own files (tests/test_fuzz_files.py)."""

from __future__ import annotations

from datetime import timedelta

from fuzz_helpers import valid_or_pinctl_error
from hypothesis import given, settings
from hypothesis import strategies as st

from pinctl.cli.argtable import LAUNCH, PIN, parse
from pinctl.cpuset import MAX_CPU, format_list, format_mask, parse_list, parse_mask
from pinctl.job.localrank import RANK_VARS, detect_local_rank, rank_from_env
from pinctl.job.world import group_world
from pinctl.kernel.pci import parse_link_speed
from pinctl.kernel.proc import parse_environ, parse_numa_maps, status_from_text
from pinctl.kernel.rdma import parse_rate, state_name
from pinctl.model import PciAddress, natural_key
from pinctl.plan.request import parse_visible_devices

FUZZ = settings(max_examples=300, deadline=timedelta(seconds=2))
# Characters that reach the interesting branches: digits (ASCII and not: '²' is isdigit() but not int()),
# separators, hex letters, signs, whitespace, NUL.
ODD = "0123456789abcdefxX,-:.!+ \t\n\0²٣\u07c0Ⅻ"
garbage = st.text(alphabet=st.sampled_from(ODD), max_size=40) | st.text(max_size=40)
huge_numbers = st.integers(0, 10).map(lambda n: "9" * (4000 + n * 100))  # int() refuses over 4300 digits


@FUZZ
@given(garbage | huge_numbers)
def test_cpu_lists(text: str) -> None:
    cpus = valid_or_pinctl_error(lambda: parse_list(text, all_values=range(4)))
    if cpus is not None:
        assert all(0 <= c <= MAX_CPU for c in cpus)
        assert parse_list(format_list(cpus)) == cpus


@FUZZ
@given(garbage | huge_numbers | st.text(alphabet="f0", min_size=5000, max_size=20000))
def test_cpu_masks(text: str) -> None:
    cpus = valid_or_pinctl_error(lambda: parse_mask(text))
    if cpus is not None:
        assert all(0 <= c <= MAX_CPU for c in cpus)
        assert parse_mask(format_mask(cpus)) == cpus


@FUZZ
@given(garbage)
def test_pci_addresses(text: str) -> None:
    address = valid_or_pinctl_error(lambda: PciAddress.parse(text))
    if address is not None:
        assert PciAddress.parse(str(address)) == address


@FUZZ
@given(garbage)
def test_names_sort_naturally_whatever_their_digits(text: str) -> None:
    assert natural_key(text) == natural_key(text)  # a key, not an exception
    sorted([text, "mlx5_1", text + "2"], key=natural_key)


@FUZZ
@given(
    st.lists(
        garbage | st.sampled_from(["--plan", "--local-rank", "--allow-env", "--", "-v", "--dry-run", "x"]), max_size=8
    )
)
def test_launch_arguments(args: list[str]) -> None:
    parsed = valid_or_pinctl_error(lambda: parse(LAUNCH, args, interspersed=False))
    if parsed is not None:
        assert parsed.given <= {o.dest for o in LAUNCH}
        assert parsed.values["local_rank"] is None or 0 <= parsed.values["local_rank"] <= 4095


@FUZZ
@given(st.lists(garbage | st.sampled_from(["--cpus", "-c", "--mems", "--migrate", "1", "0"]), max_size=8))
def test_pin_arguments(args: list[str]) -> None:
    parsed = valid_or_pinctl_error(lambda: parse(PIN, args, interspersed=True))
    if parsed is not None:
        assert all(not a.startswith("-") or a == "-" for a in parsed.rest) or "--" in args


rank_env = st.dictionaries(st.sampled_from([name for name, _, _ in RANK_VARS] + ["TORCHELASTIC_RUN_ID"]),
                           garbage | huge_numbers, max_size=4)  # fmt: skip


@FUZZ
@given(rank_env, st.integers(1, 8))
def test_launcher_rank_variables(env: dict[str, str], nranks: int) -> None:
    found = valid_or_pinctl_error(lambda: detect_local_rank(env, None, nranks))
    if found is not None:
        assert 0 <= found[0] < nranks and found[1] in env
    rank = rank_from_env(env)
    assert rank is None or (rank[0] >= 0 and rank[1] in env)


@FUZZ
@given(st.dictionaries(st.sampled_from(["SLURM_NNODES", "SLURM_NODEID", "SLURM_STEP_NODELIST", "MASTER_ADDR",
                                        "MASTER_PORT", "GROUP_RANK", "SLURM_JOB_NODELIST"]),
                       garbage | huge_numbers, max_size=4))  # fmt: skip
def test_launcher_world_variables(env: dict[str, str]) -> None:
    world = valid_or_pinctl_error(lambda: group_world(env))
    if world is not None:
        assert dict(world.rank_env(0, 1))["WORLD_SIZE"].isdigit()


@FUZZ
@given(garbage | huge_numbers)
def test_visible_devices(text: str) -> None:
    for item in parse_visible_devices(text):
        assert isinstance(item, str) or item >= 0


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["Name", "Threads", "PPid", "Uid", "Cpus_allowed_list",
                                           "Mems_allowed_list", ""]), garbage | huge_numbers), max_size=6))  # fmt: skip
def test_proc_status(lines: list[tuple[str, str]]) -> None:
    text = "\n".join(f"{k}:\t{v}" for k, v in lines)
    status = valid_or_pinctl_error(lambda: status_from_text(1, text))
    if status is not None:
        assert status.threads is None or status.threads >= 0


@FUZZ
@given(st.lists(st.tuples(garbage, st.sampled_from(["bind:", "prefer:", "interleave:", "local", "default",
                                                    "prefer (many)=static:", ""]), garbage), max_size=5))  # fmt: skip
def test_numa_maps(lines: list[tuple[str, str, str]]) -> None:
    text = "\n".join(f"{a} {p}{n} anon=1" for a, p, n in lines)
    for start, policy in parse_numa_maps(text):
        assert start >= 0 and all(n >= 0 for n in policy.nodes)


@FUZZ
@given(st.binary(max_size=200))
def test_proc_environ(data: bytes) -> None:
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in parse_environ(data).items())


@FUZZ
@given(garbage)
def test_sysfs_value_parsers(text: str) -> None:
    speed = parse_link_speed(text)
    assert speed is None or speed >= 0
    rate = parse_rate(text)
    assert rate is None or rate >= 0
    state = state_name(text)
    assert state is None or state == state.strip()
