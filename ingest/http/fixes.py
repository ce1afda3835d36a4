"""The fix endpoints: OsmAnd / Traccar Client and OwnTracks HTTP mode, into the pipeline like MQTT; the
status code tells the device what became of its fix."""

from __future__ import annotations

from aiohttp import web

from ingest.decode import Decoded
from ingest.http.auth import DeviceAuth, refresh_if_unknown, secret_of, unauthorized
from ingest.http.problems import problem
from ingest.pipeline import Pipeline, Submission
from ingest.rules import DISABLED_DEVICE, UNKNOWN_DEVICE

OSMAND_PATH = "/ingest/osmand"
OWNTRACKS_PATH = "/ingest/owntracks"
_DEVICE_REASONS = {UNKNOWN_DEVICE, DISABLED_DEVICE}


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
    await refresh_if_unknown(pipeline.directory, device_ids)
    for device_id in device_ids:
        if not await auth.allows(device_id, secret_of(request)):
            return unauthorized()
    outcome = await pipeline.submit(f"http:{request.path}", raw, decoded, received_s)
    return _respond(outcome, owntracks=owntracks)


def _respond(outcome: Submission, *, owntracks: bool) -> web.StreamResponse:
    if outcome.accepted and not outcome.durable:
        return problem(503, "not stored yet: retry later", [], headers={"Retry-After": "5"})
    if outcome.rejected and not outcome.accepted:
        reasons = sorted({r for reasons in outcome.rejected for r in reasons})
        status = 403 if reasons and set(reasons) <= _DEVICE_REASONS else 400
        return problem(status, "fix rejected", reasons)
    if not outcome.accepted and not outcome.durable:
        return problem(503, "overloaded: retry later", [], headers={"Retry-After": "5"})
    return web.json_response([]) if owntracks else web.Response(text="OK")
