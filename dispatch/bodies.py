"""API bodies built from records: one rule for copying a record's fields into the body that answers it."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

S = TypeVar("S", bound=msgspec.Struct)


def body_of(cls: type[S], source: object, **given: Any) -> S:
    """`cls` with each field not in `given` read from `source`'s attribute of the same name. Values are
    converted as msgspec does without strictness: epoch seconds become UTC datetimes, 0/1 become booleans."""
    values = {name: getattr(source, name) for name in cls.__struct_fields__ if name not in given}
    return msgspec.convert({**values, **given}, cls, strict=False)
