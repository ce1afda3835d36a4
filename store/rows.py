"""Records from rows, and the filters every listing shares: written once for the stores' readers.

`record_of` builds a dataclass record field by field from a row of the same names, with timestamps made
timezone-aware UTC (SQLite hands them back naive) and JSON lists as tuples; `narrowed` adds the optional
filters of a listing: equal to a value when one is given, inside a half-open time range.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Row, Select

from store.times import as_utc, utc

T = TypeVar("T")
Q = TypeVar("Q", bound=Select[Any])


def record_of(cls: type[T], row: Row[Any]) -> T:
    """The dataclass `cls` from the row's columns of its fields' names."""
    m = row._mapping
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        value = m[f.name]
        if isinstance(value, datetime):
            value = as_utc(value)
        elif isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


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
