"""Counted nouns for messages: "1 rank", "2 ranks", "CPU 5 is", "CPUs 5-7 are".

"CPUs 5 are" and "IRQs of 1 devices" read as bugs, so every message that counts
or lists something says it through these. Pure and cheap to import.
"""

from __future__ import annotations

from pinctl.cpuset import format_list

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the launch path
if TYPE_CHECKING:
    from collections.abc import Collection


def plural(n: int, word: str, many: str | None = None) -> str:
    """*word* or its plural (*many*, else word + "s") for a count of *n*."""
    return word if n == 1 else (many or word + "s")


def count(n: int, word: str, many: str | None = None) -> str:
    """``1 rank``, ``2 ranks``."""
    return f"{n} {plural(n, word, many)}"


def verb(n: int, one: str, many: str) -> str:
    """The verb agreeing with a count of *n*: ``verb(1, "is", "are")``."""
    return one if n == 1 else many


def named(word: str, values: Collection[int], many: str | None = None) -> str:
    """``CPU 5`` or ``CPUs 5-7``: the noun agreeing with the list that follows it."""
    return f"{plural(len(values), word, many)} {format_list(values)}"


def said(word: str, values: Collection[int], one: str, many: str) -> str:
    """``CPU 5 is`` or ``CPUs 5-7 are``: the listed noun with its verb (*one* or *many*)."""
    return f"{named(word, values)} {verb(len(values), one, many)}"


def every(n: int, word: str, one: str, many: str, *, plural_word: str | None = None) -> str:
    """``all 8 GPUs have``, or ``the 1 GPU has`` where "all 1 GPUs" would be wrong."""
    return f"the 1 {word} {one}" if n == 1 else f"all {n} {plural_word or word + 's'} {many}"
