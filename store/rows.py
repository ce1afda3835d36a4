"""Records from rows: one rule for reading a row into the record type that carries it out of `store`."""

from __future__ import annotations

import dataclasses
import functools
import typing
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Row

from store.times import as_utc

T = TypeVar("T")


@functools.cache
def _shape(cls: type[Any]) -> tuple[tuple[str, ...], frozenset[str]]:
    """The record's field names, and those that hold instants."""
    fields = getattr(cls, "__struct_fields__", None)
    names = tuple(fields) if fields is not None else tuple(f.name for f in dataclasses.fields(cls))
    hints = typing.get_type_hints(cls)
    instants = frozenset(n for n in names if datetime in (hints[n], *typing.get_args(hints[n])))
    return names, instants


def record_of(cls: type[T], row: Row[Any], **given: Any) -> T:
    """`cls` (a dataclass or msgspec Struct) with each field not in `given` read from the row's column of the
    same name; instants come out timezone-aware UTC (SQLite hands them back naive)."""
    m = row._mapping
    names, instants = _shape(typing.cast(Any, cls))
    values = {n: m[n] for n in names if n not in given}
    for n in instants & values.keys():
        if values[n] is not None:
            values[n] = as_utc(values[n])
    return cls(**values, **given)
