"""Immutable value classes for the ``launch --plan`` path, without ``dataclasses``.

``import dataclasses`` pulls in inspect, ast, dis and tokenize (15-20 ms), more than
``launch`` may spend on every rank's start. The value types that path needs (the
Plan, a Binding, a launch spec, /proc facts) derive from :class:`Record` instead:
their fields are their ``__slots__``, each set once in ``__init__`` (mypy sees them
as ``Final``), and equality, hashing and ``repr`` follow the fields. Everything off
that path keeps using frozen dataclasses.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~5 ms) on the launch path
if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self is Python 3.11+; annotations only


class Record:
    """A write-once value: a field can be set in ``__init__`` and never again."""

    __slots__: tuple[str, ...] = ()

    def __setattr__(self, name: str, value: object) -> None:
        if hasattr(self, name):
            raise AttributeError(f"{type(self).__name__}.{name} is read-only")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__}.{name} is read-only")

    def fields(self) -> tuple[object, ...]:
        """The field values in declaration order."""
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Record)
        return self.fields() == other.fields()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.fields()))

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({args})"

    def replace(self, **changes: object) -> Self:
        """A copy with some fields changed (``__init__`` runs again, so its checks hold)."""
        unknown = set(changes) - set(self.__slots__)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {sorted(unknown)[0]!r}")
        values = {name: changes.get(name, getattr(self, name)) for name in self.__slots__}
        return type(self)(**values)
