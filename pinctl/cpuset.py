"""CPU and node lists in the kernel's list syntax and hex masks.

These parsers are the one place where "0-3,8,10-11" and "ff,00000001" become
sets of ints, so every command (``--reserve``, ``-C``, sysfs ``cpulist`` files,
NCCL ``affinity`` masks, Slurm ``mask_cpu``) agrees on the syntax and on the
error message for bad input. Pure functions: no I/O, cheap to import (the
``launch`` fast path uses them).
"""

from __future__ import annotations

from pinctl.errors import UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the launch path
if TYPE_CHECKING:
    from collections.abc import Iterable

# A sanity bound: the kernel's NR_CPUS maximum is 8192; anything far beyond it is a typo.
MAX_CPU = 1 << 16


def parse_list(text: str, *, what: str = "CPU list", all_values: Iterable[int] | None = None) -> frozenset[int]:
    """Parse a list such as ``0-3,8,10-15:2`` (kernel cpulist syntax, numactl style).

    ``all`` expands to *all_values* when given. Strides (``a-b:s``) are util-linux's
    (``taskset --cpu-list 0-10:2``), not the kernel's ``a-b:used/group`` form.
    numactl's prefixes need *all_values* too (what the caller may use, as libnuma's
    ``numa_parse_cpustring`` takes it): ``!LIST`` is every allowed value outside LIST,
    ``+LIST`` counts within the allowed values (``+0-1``: the first two), ``!+LIST`` both.
    """
    raw = text.strip()
    invert = raw.startswith("!")
    relative = raw[invert:].startswith("+")
    if invert or relative:
        if all_values is None:
            raise UsageError(f"malformed {what} {text!r}: {raw[0]!r} is not allowed here")
        allowed = sorted(set(all_values))
        rest = raw[invert + relative :]
        if rest.startswith(("!", "+")):
            raise UsageError(f"malformed {what} {text!r}: '!' comes before '+', each once")
        if not rest:
            raise UsageError(f"malformed {what} {text!r}: no list after {raw[: invert + relative]!r}")
        picked = _parse_plain(rest, text, what, range(len(allowed)) if relative else allowed)
        if relative:
            beyond = [i for i in picked if i >= len(allowed)]
            if beyond:
                raise UsageError(
                    f"malformed {what} {text!r}: +{min(beyond)} is beyond the {len(allowed)} allowed "
                    f"({format_list(allowed)})"
                )
            picked = frozenset(allowed[i] for i in picked)
        return frozenset(allowed) - picked if invert else picked
    return _parse_plain(raw, text, what, all_values)


def _parse_plain(raw: str, text: str, what: str, all_values: Iterable[int] | None) -> frozenset[int]:
    """A list without numactl's prefixes; *text* is what the user gave, for messages."""
    if raw == "":
        return frozenset()
    if raw == "all":
        if all_values is None:
            raise UsageError(f"malformed {what} {text!r}: 'all' is not allowed here")
        return frozenset(all_values)
    out: set[int] = set()
    for part in raw.split(","):
        part = part.strip()
        if not part:
            raise UsageError(f"malformed {what} {text!r}: empty element")
        stride = 1
        if ":" in part:
            part, _, stride_text = part.partition(":")
            stride = _to_int(stride_text, text, what)
            if stride <= 0:
                raise UsageError(f"malformed {what} {text!r}: stride must be positive")
        if part.startswith("-"):
            raise UsageError(f"malformed {what} {text!r}: {part!r} is negative (numbers start at 0)")
        if "-" in part:
            lo_text, _, hi_text = part.partition("-")
            if not hi_text.strip():
                raise UsageError(f"malformed {what} {text!r}: range {part!r} has no end")
            lo, hi = _to_int(lo_text, text, what), _to_int(hi_text, text, what)
            if hi < lo:
                raise UsageError(f"malformed {what} {text!r}: range {lo}-{hi} is reversed")
            out.update(range(lo, hi + 1, stride))
        else:
            if stride != 1:
                raise UsageError(f"malformed {what} {text!r}: a stride needs a range")
            out.add(_to_int(part, text, what))
    return frozenset(out)


def decimal(text: str, *, limit: int = 18) -> int | None:
    """*text* as a non-negative number of ASCII digits (at most *limit*), else None.

    ``str.isdigit`` is no guard for ``int``: it accepts '²', which int() refuses, and
    int() refuses over 4300 digits; a launcher variable or a file must not crash pinctl.
    """
    text = text.strip()
    if not text or len(text) > limit or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def _to_int(token: str, text: str, what: str) -> int:
    value = decimal(token)
    if value is None:
        digits = token.strip()
        if digits.isascii() and digits.isdigit():
            raise UsageError(f"malformed {what} {text[:60]!r}: {digits[:40]} is too large (at most {MAX_CPU})")
        raise UsageError(f"malformed {what} {text!r}: {digits[:40]!r} is not a number")
    if value > MAX_CPU:
        raise UsageError(f"malformed {what} {text!r}: {value} is out of range")
    return value


def format_list(values: Iterable[int]) -> str:
    """Format ints as a compact list: ``{0,1,2,3,8}`` -> ``"0-3,8"``.

    Only ranges and commas, never the ``a-b:s`` stride form: numactl and hwloc-calc reject
    strides, and people copy these lists into numactl, taskset and Slurm alike.
    """
    items = sorted(set(values))
    parts: list[str] = []
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1] == items[j] + 1:
            j += 1
        parts.append(str(items[i]) if i == j else f"{items[i]}-{items[j]}")
        i = j + 1
    return ",".join(parts)


def parse_mask(text: str, *, what: str = "CPU mask") -> frozenset[int]:
    """Parse a Linux cpumask in hex: 32-bit words, most significant first, comma separated.

    Also accepts a plain ``0x``-prefixed hex number (Slurm ``mask_cpu`` form).
    """
    raw = text.strip().lower()
    if raw.startswith("0x"):
        raw = raw[2:]
    words = raw.split(",")
    if not raw or any(not w or any(c not in "0123456789abcdef" for c in w) for w in words):
        raise UsageError(f"malformed {what} {text!r}")
    if len(words) == 1:
        value = int(words[0], 16)
    else:
        value = 0
        for w in words:
            if len(w) > 8:
                raise UsageError(f"malformed {what} {text!r}: word {w!r} longer than 32 bits")
            value = (value << 32) | int(w, 16)
    if value.bit_length() > MAX_CPU + 1:
        raise UsageError(f"malformed {what} {text[:40]!r}...: bit {value.bit_length() - 1} is out of range")
    return frozenset(i for i, bit in enumerate(reversed(bin(value))) if bit == "1")


def format_mask(values: Iterable[int]) -> str:
    """Format ints as a ``0x``-prefixed hex mask (Slurm ``mask_cpu`` form)."""
    value = 0
    for v in values:
        value |= 1 << v
    return hex(value)
