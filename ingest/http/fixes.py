"""The fix endpoints: OsmAnd / Traccar Client and OwnTracks HTTP mode, into the pipeline like MQTT; the
status code tells the device what became of its fix."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from ingest.decode import Decoded
from ingest.http.auth import DeviceAuth, refresh_if_unsure, secret_of, unauthorized
from ingest.http.problems import problem, rejected_fields
from ingest.pipeline import Pipeline, Submission
from ingest.rules import DISABLED_DEVICE, NO_CREDENTIALS, UNKNOWN_DEVICE

OSMAND_PATH = "/ingest/osmand"
OWNTRACKS_PATH = "/ingest/owntracks"
_DEVICE_REASONS = {UNKNOWN_DEVICE, DISABLED_DEVICE, NO_CREDENTIALS}
_RETRY = {"Retry-After": "5"}
# Outpost's field names in each format's words, for `invalid_params` (OwnTracks' id is its user and device).
OSMAND_NAMES: Mapping[str, str] = {"ts": "timestamp", "acc_m": "accuracy", "device_id": "id"}
OWNTRACKS_NAMES: Mapping[str, str] = {"ts": "tst", "acc_m": "acc", "device_id": "X-Limit-U/X-Limit-D"}


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body, read up to one byte over `limit`."""
    # One byte over the limit is enough for the decoder to say too_large; the rest is never buffered.
    return await request.content.read(limit + 1)


async def submit_fixes(
    pipeline: Pipeline,
    auth: DeviceAuth,
    request: web.Request,
    decoded: Decoded,
    raw: bytes,
    received_s: float,
    *,
    owntracks: bool,
) -> web.StreamResponse:
    """Authenticate every device the message names, submit it, and answer with what became of it."""
    device_ids = list(dict.fromkeys(c.device_id for c in decoded.candidates))
    await refresh_if_unsure(pipeline.directory, device_ids)
    for device_id in device_ids:
        if not await auth.allows(device_id, secret_of(request)):
            return unauthorized(request)
    outcome = await pipeline.submit(f"http:{request.path}", raw, decoded, received_s)
    return _respond(request, outcome, decoded, owntracks=owntracks)


def _respond(
    request: web.Request, outcome: Submission, decoded: Decoded, *, owntracks: bool
) -> web.StreamResponse:
    if outcome.accepted and not outcome.durable:
        return problem(request, 503, "not stored yet: retry later", slug="unavailable", headers=_RETRY)
    if outcome.rejected and not outcome.accepted:
        reasons = sorted({r for reasons in outcome.rejected for r in reasons})
        names = OWNTRACKS_NAMES if owntracks else OSMAND_NAMES
        invalid = rejected_fields(reasons, decoded.details, names)
        detail = "; ".join(f"{p['name']}: {p['reason']}" for p in invalid)
        if reasons and set(reasons) <= _DEVICE_REASONS:
            return problem(request, 403, detail, slug="forbidden", reasons=reasons, invalid_params=invalid)
        return problem(
            request, 400, detail, slug="invalid-parameter", reasons=reasons, invalid_params=invalid
        )
    if not outcome.accepted and not outcome.durable:
        return problem(request, 503, "overloaded: retry later", slug="unavailable", headers=_RETRY)
    return web.json_response([]) if owntracks else web.Response(text="OK")
