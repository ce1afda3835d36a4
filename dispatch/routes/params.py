"""Query and path parameters that parse themselves and document themselves (one declaration each).

A bad value raises `InvalidParameter(name, why)`, which the problems middleware turns into a 400 naming
the parameter. Bodies are msgspec types: `read_body` decodes and validates, `encode` answers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from dispatch.openapi import parameter
from dispatch.problems import InvalidParameter
from dispatch.screening import refuse_nul_in_json
from schemas.values import END

T = TypeVar("T")

# No id Outpost stores is longer (device ids: 128 characters); a longer path segment names nothing.
MAX_ID_LENGTH = 256
# Numbered rows' ids are 32-bit on PostgreSQL: a larger number names nothing (and must not reach the driver).
MAX_ROW_ID = 2**31 - 1


@dataclass(frozen=True)
class PathId:
    """A `{name}` path segment (an id)."""

    name: str = "id"
    description: str = "the id"
    pattern: str | None = None  # what every id of this kind matches (the route checks it)

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI parameter object."""
        schema: dict[str, Any] = {"type": "string", "maxLength": MAX_ID_LENGTH}
        if self.pattern:
            schema["pattern"] = self.pattern
        return parameter(self.name, "path", self.description, schema, required=True)

    def get(self, request: web.Request) -> str:
        """The segment's value; 400 naming it when it is longer than any id (control characters, such as the
        NUL that PostgreSQL refuses in text, are refused in every segment by `dispatch.screening`)."""
        value = request.match_info[self.name]
        if len(value) > MAX_ID_LENGTH:
            raise InvalidParameter(self.name, f"at most {MAX_ID_LENGTH} characters, got {len(value)}")
        return value

    def row_id(self, request: web.Request, what: str) -> int:
        """The segment as the id of a numbered row (`what`: "an assignment id"); 400 naming it otherwise."""
        raw = request.match_info[self.name]
        if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_ROW_ID):
            raise InvalidParameter(self.name, f"must be {what} (a positive integer), got {raw[:40]!r}")
        return int(raw)


@dataclass(frozen=True)
class RowPathId(PathId):
    """A `{name}` path segment that is the id of a numbered row (read with `row_id`)."""

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI parameter object: a positive 32-bit integer."""
        schema = {"type": "integer", "minimum": 1, "maximum": MAX_ROW_ID}
        return parameter(self.name, "path", self.description, schema, required=True)


@dataclass(frozen=True)
class Query:
    """A query parameter: its name, and what it means (its OpenAPI description)."""

    name: str
    description: str


@dataclass(frozen=True)
class Number(Query):
    """A finite float query parameter within [minimum, maximum]."""

    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False  # strictly greater than zero
    required: bool = False

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI parameter object."""
        schema: dict[str, Any] = {"type": "number"}
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.positive:
            schema["exclusiveMinimum"] = 0
        return parameter(self.name, "query", self.description, schema, required=self.required)

    def get(self, request: web.Request, default: float | None = None) -> float | None:
        """The value, or `default` when absent (missing and required: InvalidParameter)."""
        raw = request.query.get(self.name)
        if raw is None or raw == "":
            if self.required:
                raise InvalidParameter(self.name, "is required")
            return default
        try:
            value = float(raw)
        except ValueError:
            raise InvalidParameter(self.name, f"must be a number, got {raw!r}") from None
        if not math.isfinite(value):
            raise InvalidParameter(self.name, f"must be finite, got {raw!r}")
        if self.minimum is not None and value < self.minimum:
            raise InvalidParameter(self.name, f"must be ≥ {self.minimum:g}, got {raw}")
        if self.maximum is not None and value > self.maximum:
            raise InvalidParameter(self.name, f"must be ≤ {self.maximum:g}, got {raw}")
        if self.positive and value <= 0:
            raise InvalidParameter(self.name, f"must be > 0, got {raw}")
        return value

    def need(self, request: web.Request) -> float:
        """The value of a required parameter."""
        value = self.get(request)
        if value is None:
            raise InvalidParameter(self.name, "is required")
        return value


@dataclass(frozen=True)
class Integer(Query):
    """An integer query parameter within [minimum, maximum], with a default."""

    default: int
    minimum: int
    maximum: int

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI parameter object."""
        return parameter(
            self.name,
            "query",
            self.description,
            {
                "type": "integer",
                "minimum": self.minimum,
                "maximum": self.maximum,
                "default": self.default,
            },
        )

    def get(self, request: web.Request) -> int:
        """The value, or the default when absent."""
        raw = request.query.get(self.name)
        if raw is None or raw == "":
            return self.default
        if not re.fullmatch(r"-?[0-9]{1,19}", raw):  # int() would take "١٢" and "1_000"
            raise InvalidParameter(self.name, f"must be an integer, got {raw[:40]!r}")
        value = int(raw)
        if not self.minimum <= value <= self.maximum:
            raise InvalidParameter(
                self.name, f"must be between {self.minimum} and {self.maximum}, got {value}"
            )
        return value


# A `Words` value: comma-separated words, none empty once stripped of spaces, no control characters.
_WORD = r"[^,\x00-\x1f\x7f-\x9f]*[^,\s\x00-\x1f\x7f-\x9f][^,\x00-\x1f\x7f-\x9f]*"
_WORDS = f"^{_WORD}(?:,{_WORD})*" + END


@dataclass(frozen=True)
class Words(Query):
    """A list of words: repeated (`?skill=a&skill=b`) and/or comma-separated (`?skill=a,b`)."""

    choices: Sequence[str] | None = None  # None: any non-empty word
    extra_choices: Sequence[str] = ()  # accepted besides `choices` (e.g. "any")

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI parameter object."""
        items: dict[str, Any] = {"type": "string", "pattern": _WORDS}
        if self.choices is not None:
            del items["pattern"]
            items["enum"] = [*self.choices, *self.extra_choices]
        schema = {"type": "array", "items": items}
        return {**parameter(self.name, "query", self.description, schema), "style": "form", "explode": True}

    def get(self, request: web.Request) -> tuple[str, ...] | None:
        """The words in the order given (duplicates dropped), or None when the parameter is absent."""
        raw = request.query.getall(self.name, [])
        if not raw:
            return None
        words: list[str] = []
        for part in (w.strip() for chunk in raw for w in chunk.split(",")):
            if not part:
                raise InvalidParameter(self.name, "contains an empty value")
            allowed = self.choices is None or part in self.choices or part in self.extra_choices
            if not allowed:
                options = ", ".join([*(self.choices or ()), *self.extra_choices])
                raise InvalidParameter(self.name, f"{part!r} is not one of {options}")
            if part not in words:
                words.append(part)
        return tuple(words)


@dataclass(frozen=True)
class QueryText(Query):
    """A string query parameter the route reads and checks itself, documented (`fmt`: an OpenAPI format;
    `pattern`: the regular expression a value matches)."""

    fmt: str | None = None
    pattern: str | None = None

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI parameter object."""
        schema: dict[str, Any] = {"type": "string"}
        if self.fmt:
            schema["format"] = self.fmt
        if self.pattern:
            schema["pattern"] = self.pattern
        return parameter(self.name, "query", self.description, schema)

    def get(self, request: web.Request) -> str | None:
        """The value, or None when absent; 400 naming it when it does not match `pattern`."""
        raw = request.query.get(self.name)
        if raw is None or self.pattern is None:
            return raw
        if not re.match(self.pattern, raw):
            raise InvalidParameter(self.name, f"must match {self.pattern}, got {raw[:40]!r}")
        return raw


_BBOX = r"[-+0-9.eE]+(?:,[-+0-9.eE]+){3}"  # four numbers as `float` reads them, without spaces
_BBOX_TEXT = re.compile(f"^{_BBOX}" + END)


@dataclass(frozen=True)
class Bbox:
    """`minlon,minlat,maxlon,maxlat` in degrees; minlon > maxlon means the box crosses the antimeridian."""

    name: str = "bbox"
    description: str = "minlon,minlat,maxlon,maxlat (degrees; minlon > maxlon crosses the antimeridian)"
    required: bool = False

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI parameter object."""
        # Empty means no box, unless one is required.
        pattern = f"^{_BBOX}" if self.required else f"^(?:{_BBOX})?"
        schema = {"type": "string", "pattern": pattern + END}
        found = parameter(self.name, "query", self.description, schema, required=self.required)
        return {**found, "example": "-122.42,37.77,-122.40,37.79"}

    def get(self, request: web.Request) -> tuple[float, float, float, float] | None:
        """The four numbers, checked; None when absent and not required."""
        raw = request.query.get(self.name)
        if raw is None or raw == "":
            if self.required:
                raise InvalidParameter(self.name, "is required")
            return None
        parts = raw.split(",")
        if len(parts) != 4:
            raise InvalidParameter(self.name, f"needs 4 comma-separated numbers, got {len(parts)}")
        if not _BBOX_TEXT.match(raw):  # float() would take spaces, "inf" and "nan" too
            raise InvalidParameter(self.name, f"has a value that is not a number: {raw[:80]!r}")
        try:
            min_lon, min_lat, max_lon, max_lat = (float(p) for p in parts)
        except ValueError:
            raise InvalidParameter(self.name, f"has a value that is not a number: {raw!r}") from None
        for label, v, limit in (
            ("minlon", min_lon, 180),
            ("minlat", min_lat, 90),
            ("maxlon", max_lon, 180),
            ("maxlat", max_lat, 90),
        ):
            if not (math.isfinite(v) and -limit <= v <= limit):
                raise InvalidParameter(self.name, f"{label} must be within ±{limit}, got {v}")
        if min_lat > max_lat:
            raise InvalidParameter(self.name, f"minlat {min_lat} is above maxlat {max_lat}")
        return min_lon, min_lat, max_lon, max_lat


def _where(message: str) -> tuple[str, str]:
    # msgspec says "Expected `str`, got `int` - at `$.name`" or "Object missing required field `kind`".
    why, sep, at = message.partition(" - at `")
    if sep:
        return "body" + at.rstrip("`").removeprefix("$"), why
    if "field `" in message:
        field = message.split("field `", 1)[1].split("`", 1)[0]
        return f"body.{field}", message
    return "body", message


async def read_body(request: web.Request, tp: type[T]) -> T:
    """Decode and validate a JSON body as `tp`; a bad body is an InvalidParameter naming the field."""
    raw = await request.read()
    if not raw:
        raise InvalidParameter("body", "a JSON body is required")
    try:
        body = msgspec.json.decode(raw, type=tp)
    except msgspec.ValidationError as exc:
        name, why = _where(str(exc))
        raise InvalidParameter(name, why) from None
    except msgspec.DecodeError as exc:
        raise InvalidParameter("body", f"is not valid JSON: {exc}") from None
    refuse_nul_in_json(raw)  # after decoding: a field whose type refuses NUL names itself
    return body


def encode(value: Any, *, status: int = 200) -> web.Response:
    """A JSON response from a msgspec Struct, a dataclass or plain data."""
    return web.Response(body=msgspec.json.encode(value), status=status, content_type="application/json")
