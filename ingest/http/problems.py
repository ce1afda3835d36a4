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

from ingest.decode import reasons as decode_reasons

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://outpost.invalid/problems/"  # the API's (dispatch.problems): one base for every client

# Which field each reason judges (as Outpost's format names it) and what to tell the device: reason, field,
# why; one a line (tests/ingest/test_http.py checks every reason named here exists).
_REASON_TABLE = """
non_finite          lat        a number is NaN or infinite
lat_out_of_range    lat        must be between -90 and 90
lon_out_of_range    lon        must be between -180 and 180
null_island         lat        0, 0 is no position (a device without a fix)
value_out_of_range  acc_m      an optional measurement (accuracy, speed, altitude ...) is absurd
future              ts         ahead of the server's clock by more than OUTPOST_MAX_FUTURE_S
too_old             ts         older than OUTPOST_MAX_PAST_S allows
ts_in_seconds       ts         looks like epoch seconds where epoch milliseconds are expected (x1000)
unknown_device      device_id  no device is registered with this id
disabled_device     device_id  the device is disabled
no_credentials      device_id  no credentials issued: issue credentials with POST /v1/devices/{id}/credentials
invalid_device_id   device_id  1 to 128 printable characters, no + or #
identity_mismatch   device_id  the payload names another device than the request
too_large           body       larger than OUTPOST_MAX_PAYLOAD_BYTES
invalid_json        body       not JSON
invalid_utf8        body       not UTF-8
"""
REASON_FIELDS: Mapping[str, tuple[str, str]] = {
    reason: (field, why)
    for reason, field, why in (line.split(None, 2) for line in _REASON_TABLE.strip().splitlines())
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
        field, why = REASON_FIELDS.get(reason, ("body", reason))
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
    if quoted is not None and reason != decode_reasons.INVALID_SCHEMA:
        return quoted.group(1)
    return REASON_FIELDS.get(reason, ("body", ""))[0]
