"""Shared by the decoders: bounded input checks, JSON error naming, per-element decoding of arrays, and
the one place where times and units are converted (epoch s/ms → UTC, knots and km/h → m/s)."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import ParamSpec, TypeVar

import msgspec

from ingest.decode import reasons as r
from ingest.decode.model import Decoded, empty

log = logging.getLogger(__name__)

# Mirrors IngestSettings.max_payload_bytes' default; the pipeline passes the configured value.
DEFAULT_MAX_PAYLOAD_BYTES = 262144
# devices.id is String(128): a longer id would fail a whole COPY batch, so it is rejected here.
MAX_DEVICE_ID_CHARS = 128
_NO_WILDCARD = frozenset("+#")
KNOT_MPS = 1852.0 / 3600.0
KMH_MPS = 1.0 / 3.6

T = TypeVar("T")
P = ParamSpec("P")


class ElementError(Exception):
    """One element cannot become a candidate. Raised and caught inside a decoder, never escapes it."""

    def __init__(self, reason: str, detail: str, device_id: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.device_id = device_id


def never_raises(fn: Callable[P, Decoded]) -> Callable[P, Decoded]:
    """Safety net for a public decoder: an unexpected exception dead-letters the message as decode_failed."""

    @functools.wraps(fn)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> Decoded:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # a decoder bug must cost one message, not the ingest loop
            log.exception("decoder %s failed", fn.__name__)
            out = empty()
            out.reject(r.DECODE_FAILED, None, f"{type(exc).__name__}: {exc}")
            return out

    return guarded


def admit(
    out: Decoded, payload: bytes, max_payload_bytes: int, device_id: str | None, blank: str | None
) -> bool:
    """The checks before parsing, common to the decoders: whether `payload` may be parsed. If not, `out`
    says why: a bad `device_id` (when the transport names one), larger than `max_payload_bytes` or not
    UTF-8 (msgspec skips unknown fields unchecked), all rejected; or blank, how MQTT clears a retained
    message, ignored as `blank` (when the format treats it as housekeeping)."""
    if device_id is not None:
        try:
            check_device_id(device_id)
        except ElementError as bad:
            out.reject(bad.reason, None, bad.detail)
            return False
    # Written out rather than as helper calls: this runs for every message on the hot path.
    if len(payload) > max_payload_bytes:
        out.reject(r.TOO_LARGE, device_id, f"{len(payload)} bytes > {max_payload_bytes}")
        return False
    if not payload.isascii():  # the common case costs one fast scan
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            out.reject(r.INVALID_UTF8, device_id, f"invalid UTF-8 at byte {exc.start}")
            return False
    if blank is not None and (not payload or payload.isspace()):
        out.ignore(blank)
        return False
    return True


def name_error(err: msgspec.DecodeError) -> tuple[str, str]:
    """Map a msgspec error to (reason, detail); msgspec's message names the JSON path of the field."""
    message = str(err)
    if not isinstance(err, msgspec.ValidationError):
        return r.INVALID_JSON, message
    if message.startswith("Object missing required field"):
        return r.MISSING_FIELD, message
    if message.startswith("Number out of range"):  # e.g. 1e400: a double would make it ±inf
        return r.NON_FINITE, message
    return r.INVALID_SCHEMA, message


_ARRAY = msgspec.json.Decoder(list[msgspec.Raw])


def decode_elements(
    payload: bytes | msgspec.Raw,
    fast: msgspec.json.Decoder[T | list[T]],
    one: msgspec.json.Decoder[T],
    handle: Callable[[T], None],
    out: Decoded,
    device_id: str | None,
    label: str,
) -> None:
    """Decode an object or an array of objects, handing each to `handle` (which may raise ElementError).

    The fast path decodes everything at once; only when that fails are the elements of an array decoded
    one by one, so that one bad element of a flushed offline buffer does not lose the good ones. An empty
    array is counted as ignored, `f"{label}:empty_array"`.
    """
    try:
        decoded = fast.decode(payload)
    except msgspec.ValidationError as err:
        _decode_one_by_one(payload, err, one, handle, out, device_id)
        return
    except msgspec.DecodeError as err:
        out.reject(r.INVALID_JSON, device_id, str(err))
        return
    if not isinstance(decoded, list):
        _handle_one(handle, decoded, out, device_id, None)
        return
    if not decoded:
        out.ignore(f"{label}:empty_array")
    for index, element in enumerate(decoded):
        _handle_one(handle, element, out, device_id, index)


def _decode_one_by_one(
    payload: bytes | msgspec.Raw,
    err: msgspec.ValidationError,
    one: msgspec.json.Decoder[T],
    handle: Callable[[T], None],
    out: Decoded,
    device_id: str | None,
) -> None:
    try:
        elements: Sequence[msgspec.Raw] = _ARRAY.decode(payload)
    except msgspec.DecodeError:  # not an array: the whole message is what failed
        reason, detail = name_error(err)
        out.reject(reason, device_id, detail)
        return
    for index, raw in enumerate(elements):
        try:
            element = one.decode(raw)
        except msgspec.DecodeError as element_err:
            reason, detail = name_error(element_err)
            out.reject(reason, device_id, f"element {index}: {detail}")
            continue
        _handle_one(handle, element, out, device_id, index)


def _handle_one(
    handle: Callable[[T], None], element: T, out: Decoded, device_id: str | None, index: int | None
) -> None:
    try:
        handle(element)
    except ElementError as bad:
        where = "" if index is None else f"element {index}: "
        out.reject(bad.reason, bad.device_id or device_id, where + bad.detail)


def check_device_id(device_id: str) -> str:
    """Return `device_id` if it can be stored and used in topics, else raise ElementError. MQTT's
    wildcards `+` and `#` are refused: no topic could carry the device's offers, roll calls or answers."""
    if (
        not 0 < len(device_id) <= MAX_DEVICE_ID_CHARS
        or not device_id.isprintable()
        or not _NO_WILDCARD.isdisjoint(device_id)
    ):
        raise ElementError(
            r.INVALID_DEVICE_ID,
            f"device id {device_id[:40]!r} (1..128 printable characters, no MQTT wildcard + or #)",
        )
    return device_id


def utc_from_epoch_s(seconds: float, field: str) -> datetime:
    """UTC datetime from epoch seconds; ElementError when not finite or out of the representable range."""
    if not math.isfinite(seconds):
        raise ElementError(r.NON_FINITE, f"`{field}` is {seconds}")
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, ValueError, OSError):
        raise ElementError(r.INVALID_TIMESTAMP, f"`{field}` {seconds} s is out of range") from None


def utc_from_epoch_ms(millis: int, field: str) -> datetime:
    """UTC datetime from integer epoch milliseconds.

    Through a float, 3x faster than timedelta arithmetic and exact to the millisecond until 2106: the
    float's error stays below half a microsecond, and fromtimestamp rounds to the microsecond.
    """
    try:
        return datetime.fromtimestamp(millis / 1000, UTC)
    except (OverflowError, ValueError, OSError):
        raise ElementError(r.INVALID_TIMESTAMP, f"`{field}` {millis} ms is out of range") from None


def as_utc(ts: datetime, field: str) -> datetime:
    """Convert an aware datetime to UTC; a naive one is taken to be UTC already."""
    if ts.tzinfo is UTC:
        return ts
    if ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    try:
        return ts.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ElementError(r.INVALID_TIMESTAMP, f"`{field}` {ts.isoformat()} is out of range") from None


def number(value: object, field: str) -> float | None:
    """A JSON number or numeric string as a float (None stays None). NaN/inf pass on to validation."""
    if value is None:
        return None
    if isinstance(value, bool):  # bool is an int subclass: `true` is not a number
        raise ElementError(r.INVALID_SCHEMA, f"`{field}` must be a number, got bool")
    if isinstance(value, float):
        return value
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            raise ElementError(r.NON_FINITE, f"`{field}` {value} overflows a double") from None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ElementError(r.INVALID_SCHEMA, f"`{field}` {value[:40]!r} is not a number") from None
    raise ElementError(r.INVALID_SCHEMA, f"`{field}` must be a number, got {type(value).__name__}")


def required(value: float | None, field: str) -> float:
    """`value`, or ElementError(missing_field) when it is absent."""
    if value is None:
        raise ElementError(r.MISSING_FIELD, f"`{field}` is required")
    return value


def unknown_if_negative(value: float | None) -> float | None:
    """Many devices send -1 for 'unknown' (speed, accuracy, battery). NaN passes on to validation."""
    if value is not None and value < 0.0 and math.isfinite(value):
        return None
    return value


def heading(value: float | None) -> float | None:
    """A course in [0, 360); negative means unknown. NaN passes on to validation."""
    if value is None or not math.isfinite(value):
        return value
    return None if value < 0.0 else value % 360.0


def scaled(value: float | None, factor: float) -> float | None:
    """`value * factor`, keeping None."""
    return None if value is None else value * factor
