"""`IN (…)` lists of bound values: a statement per few hundred values, each value bound.

A batch that reads rows by id or by name costs a statement per chunk, not one per value, and no
statement binds more values than SQLite allows (999 before SQLite 3.32).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence, Sized
from typing import TypeVar

PER_STATEMENT = 500

# Ids or names: what the store reads rows by, and sorts.
T = TypeVar("T", int, str)


def chunks(values: Iterable[T]) -> Iterator[Sequence[T]]:
    """The distinct `values`, sorted, a statement's worth at a time."""
    distinct = sorted(set(values))
    for start in range(0, len(distinct), PER_STATEMENT):
        yield distinct[start : start + PER_STATEMENT]


def marks(values: Sized) -> str:
    """The placeholders of an `IN (…)` list for `values`."""
    return ", ".join("?" * len(values))
