"""Administration: API tokens and the audit log."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from dispatch.blocking import run_db
from dispatch.bodies import body_of
from dispatch.keys import AUDIT_KEY, CLOCK_KEY, ENGINE_KEY, TOKENS_KEY
from dispatch.openapi import DocumentedRoutes
from dispatch.problems import NotFound
from dispatch.routes import models
from dispatch.routes.instants import Instant
from dispatch.routes.params import Integer, QueryText, RowPathId, encode, read_body
from store import access

TOKEN_ID = RowPathId("id", "the token's numeric id")
api = DocumentedRoutes("administration", path_params=[TOKEN_ID])
LIMIT = Integer("limit", "most entries returned", default=1000, minimum=1, maximum=10000)


SINCE = Instant("since", "entries at or after this instant", required=False)
ACTOR = QueryText("actor", "only this actor (e.g. token:3:console-1)")
ACTION = QueryText(
    "action", "only this action (nearest, read_unit, units_in_bbox, list_units, stream, change_requested, …)"
)
SUBJECT = QueryText(
    "subject",
    "only reads or changes of this subject, i.e. who looked at it (e.g. u1: a unit's detail; unit:u1: its "
    "track; incident:…; /v1/devices/cam-7: the changes requested at that path)",
)
UNTIL = Instant("until", "entries before this instant", required=False)
AFTER = Integer(
    "after", "entries with ids above this one (the next page)", default=0, minimum=0, maximum=2**63 - 1
)


def _token_out(t: access.ApiToken, secret: str | None = None) -> models.TokenOut:
    return models.TokenOut(
        id=t.id, name=t.name, role=t.role, created_at=t.created_at, revoked_at=t.revoked_at, token=secret
    )


@api.route("POST", "/v1/tokens", role="admin", body=models.TokenIn, response=models.TokenOut, status=201)
async def create_token(request: web.Request) -> web.Response:
    """Create an API token (shown once)

    A new bearer token with a role. The token is in this answer only; its sha256 is stored."""
    body = await read_body(request, models.TokenIn)
    now = datetime.fromtimestamp(request.app[CLOCK_KEY].now(), UTC)
    record, secret = await run_db(
        access.create_token, request.app[ENGINE_KEY], role=body.role, name=body.name, now=now
    )
    response = encode(_token_out(record, secret), status=201)
    response.headers["Cache-Control"] = "no-store"
    return response


@api.route("GET", "/v1/tokens", role="admin", response=models.TokenList)
async def list_tokens(request: web.Request) -> web.Response:
    """List API tokens

    Every token's id, name, role and dates (never the token itself)."""
    tokens = await run_db(access.list_tokens, request.app[ENGINE_KEY])
    return encode(models.TokenList(tokens=[_token_out(t) for t in tokens]))


@api.route("DELETE", "/v1/tokens/{id}", role="admin", status=204)
async def revoke_token(request: web.Request) -> web.Response:
    """Revoke an API token

    The token stops working at once."""
    token_id = TOKEN_ID.row_id(request, "a token's id")
    now = datetime.fromtimestamp(request.app[CLOCK_KEY].now(), UTC)
    if not await run_db(access.revoke_token, request.app[ENGINE_KEY], token_id, now=now):
        raise NotFound(f"no live token {token_id}")
    request.app[TOKENS_KEY].forget(token_id)
    return web.Response(status=204)


@api.route(
    "GET",
    "/v1/audit",
    role="admin",
    params=[SINCE, UNTIL, ACTOR, ACTION, SUBJECT, AFTER, LIMIT],
    response=models.AuditList,
)
async def read_audit(request: web.Request) -> web.Response:
    """The audit log of reads and changes

    Who read or changed which unit, area or record, when; oldest first, each with its place in the hash
    chain (`outpost audit verify` checks it; `outpost audit export` writes a range out). Every change under
    /v1/ is `change_requested` (made durable before the change; subject: the path as sent) and then
    `change_answered` (its status), both with `detail.request` linking them to what the handler recorded.
    Entries queued in memory are written first."""
    since, until = SINCE.get(request), UNTIL.get(request)
    await request.app[AUDIT_KEY].flush()
    query = access.AuditQuery(since, until, ACTOR.get(request), ACTION.get(request), SUBJECT.get(request))
    after, limit = AFTER.get(request), LIMIT.get(request)
    entries = await run_db(access.read_audit, request.app[ENGINE_KEY], query, after_id=after, limit=limit)
    return encode(models.AuditList([body_of(models.AuditEntryOut, e) for e in entries]))
