"""Records from rows: one rule for reading a row into the record type that carries it out of `store`; and
`narrowed`, the optional filters every listing shares (equal to a value when one is given, inside a
half-open time range)."""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Row, Select

from store.times import as_utc, utc

T = TypeVar("T")
Q = TypeVar("Q", bound=Select[Any])


@functools.cache
def _shape(cls: type[Any]) -> tuple[tuple[str, ...], frozenset[str], frozenset[str]]:
    """The record's field names, those that hold instants, and those that hold tuples (JSON lists)."""
    fields = getattr(cls, "__struct_fields__", None)
    names = tuple(fields) if fields is not None else tuple(f.name for f in dataclasses.fields(cls))
    hints = typing.get_type_hints(cls)
    instants = frozenset(n for n in names if datetime in (hints[n], *typing.get_args(hints[n])))
    tuples = frozenset(n for n in names if typing.get_origin(hints[n]) is tuple)
    return names, instants, tuples


def record_of(cls: type[T], row: Row[Any], **given: Any) -> T:
    """`cls` (a dataclass or msgspec Struct) with each field not in `given` read from the row's column of the
    same name; instants come out timezone-aware UTC (SQLite hands them back naive), JSON lists as tuples
    where the field is a tuple."""
    m = row._mapping
    names, instants, tuples = _shape(typing.cast(Any, cls))
    values = {n: m[n] for n in names if n not in given}
    for n in instants & values.keys():
        if values[n] is not None:
            values[n] = as_utc(values[n])
    for n in tuples & values.keys():
        if isinstance(values[n], list):
            values[n] = tuple(values[n])
    return cls(**values, **given)


def narrowed(
    query: Q,
    equal: Iterable[tuple[ColumnElement[Any], Any]] = (),
    *,
    ts: ColumnElement[Any] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Q:
    """`query` where each (column, value) of `equal` holds (value None: no filter), and `ts` is in
    [start, end) (either None: unbounded)."""
    for column, value in equal:
        if value is not None:
            query = query.where(column == value)
    if ts is not None and start is not None:
        query = query.where(ts >= utc(start))
    if ts is not None and end is not None:
        query = query.where(ts < utc(end))
    return query
