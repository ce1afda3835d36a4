"""HTTP answers of the ingest endpoints: RFC 9457 problem documents in the API's shape (`type`, `title`,
`status`, `detail`, `instance`, and `invalid_params` naming each field and why, as dispatch.problems
answers), plus `reasons`, the dead-letter reasons a device's firmware may switch on.

A rejected fix names its field in the device format's own words (`timestamp` for OsmAnd, `tst` for
OwnTracks): decoding says which field failed; a validation reason maps to the field it judges.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import msgspec
from aiohttp import web

from ingest import rules
from ingest.decode import reasons as decode_reasons

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://outpost.invalid/problems/"  # the API's (dispatch.problems): one base for every client

# Which field each validation reason judges (as Outpost's format names it), and what to tell the device.
_REASON_FIELDS: Mapping[str, tuple[str, str]] = {
    rules.NON_FINITE: ("lat", "a number is NaN or infinite"),
    rules.LAT_OUT_OF_RANGE: ("lat", "must be between -90 and 90"),
    rules.LON_OUT_OF_RANGE: ("lon", "must be between -180 and 180"),
    rules.NULL_ISLAND: ("lat", "0, 0 is no position (a device without a fix)"),
    rules.FUTURE: ("ts", "ahead of the server's clock by more than OUTPOST_MAX_FUTURE_S"),
    rules.TOO_OLD: ("ts", "older than OUTPOST_MAX_PAST_S allows"),
    rules.TS_IN_SECONDS: (
        "ts",
        "looks like epoch seconds where epoch milliseconds are expected: multiply by 1000, or send RFC 3339",
    ),
    rules.VALUE_OUT_OF_RANGE: ("acc_m", "an optional measurement (accuracy, speed, altitude …) is absurd"),
    rules.UNKNOWN_DEVICE: ("device_id", "no device is registered with this id"),
    rules.DISABLED_DEVICE: ("device_id", "the device is disabled"),
    decode_reasons.INVALID_DEVICE_ID: ("device_id", "1 to 128 printable characters"),
    decode_reasons.IDENTITY_MISMATCH: ("device_id", "the payload names another device than the request"),
    decode_reasons.TOO_LARGE: ("body", "larger than OUTPOST_MAX_PAYLOAD_BYTES"),
    decode_reasons.INVALID_JSON: ("body", "not JSON"),
    decode_reasons.INVALID_UTF8: ("body", "not UTF-8"),
}
_PATH = re.compile(r"- at `\$\.?([^`]*)`")
_MISSING = re.compile(r"missing required field `([^`]+)`")
_QUOTED = re.compile(r"`([^`]+)`")


def problem(
    request: web.Request,
    status: int,
    detail: str,
    *,
    slug: str = "",
    reasons: Sequence[str] = (),
    invalid_params: Sequence[Mapping[str, str]] = (),
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """An `application/problem+json` answer in the API's shape (slug: the `type`, from the status's phrase
    unless given)."""
    phrase = HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": TYPE_BASE + (slug or phrase.lower().replace(" ", "-")),
        "title": phrase,
        "status": status,
        "detail": detail,
        "instance": request.path,
    }
    if invalid_params:
        body["invalid_params"] = list(invalid_params)
    if reasons:
        body["reasons"] = list(reasons)
    return web.Response(
        body=msgspec.json.encode(body), status=status, content_type=PROBLEM_JSON, headers=headers
    )


def rejected_fields(
    reasons: Iterable[str], details: Iterable[str], names: Mapping[str, str]
) -> list[dict[str, str]]:
    """`invalid_params` of a rejected fix: one entry a field, from the decoder's details ("reason: text",
    naming the field) and the validation reasons; `names` renames Outpost's fields to the format's."""
    params: dict[tuple[str, str], dict[str, str]] = {}
    for line in details:
        reason, _, text = line.partition(": ")
        name = names.get(field_of(reason, text), field_of(reason, text))
        params.setdefault((name, reason), {"name": name, "reason": f"{reason}: {text}"})
    for reason in reasons:
        field, why = _REASON_FIELDS.get(reason, ("body", reason))
        name = names.get(field, field)
        if not any(key[1] == reason for key in params):
            params[(name, reason)] = {"name": name, "reason": f"{reason}: {why}"}
    return list(params.values())


def field_of(reason: str, text: str) -> str:
    """The field a decoder's detail names: its JSON path, a missing field, or the first quoted name."""
    text = text.removeprefix("element ")
    path = _PATH.search(text)
    missing = _MISSING.search(text)
    if missing is not None:
        prefix = path.group(1) + "." if path is not None and path.group(1) else ""
        return prefix + missing.group(1)
    if path is not None and path.group(1):
        return path.group(1)
    quoted = _QUOTED.search(text)
    if quoted is not None and reason not in (decode_reasons.INVALID_SCHEMA,):
        return quoted.group(1)
    return _REASON_FIELDS.get(reason, ("body", ""))[0]
