"""`Idempotency-Key` for mutating incident calls: the same key and body get the same response, once.

The first request with a key claims it in the database (a unique row per caller and key), runs, and stores
its response (success or problem; never a 5xx, which the client must be able to retry). A retry with the
same key and the same method, path and body gets the stored response back, marked `Idempotent-Replayed:
true`, with no second effect. The same key with a different request is refused (400 naming the header);
a retry while the first is still running gets 409. Keys are per caller (the token), kept for
`DispatchSettings.idempotency_ttl_s`.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from dispatch.auth import principal
from dispatch.blocking import run_db
from dispatch.problems import Conflict, DomainError, InvalidParameter, problem_response, status_of
from store.incidents import IncidentStore, StoredResponse

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
MAX_KEY_CHARS = 255

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
StoreOf = Callable[[web.Request], tuple[IncidentStore, float]]


class IdempotencyHeader:
    """The header as an OpenAPI parameter."""

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI parameter object."""
        return {
            "name": HEADER,
            "in": "header",
            "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS},
            "description": "a client-chosen unique key: a retry with the same key and body returns the first "
            "response and has no second effect",
        }


def request_hash(method: str, path: str, body: bytes) -> str:
    """What makes two requests "the same" for one key."""
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _replay(stored: StoredResponse) -> web.Response:
    saved = stored.response or {}
    return web.Response(
        body=msgspec.json.encode(saved.get("body")),
        status=int(stored.status or 200),
        content_type=saved.get("content_type", "application/json"),
        headers={REPLAYED: "true"},
    )


def idempotent(store_of: StoreOf) -> Callable[[Handler], Handler]:
    """Wrap a mutating handler; `store_of(request)` gives the store and the current time (epoch s)."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            key = request.headers.get(HEADER)
            if key is None:
                return await handler(request)
            if not 0 < len(key) <= MAX_KEY_CHARS:
                raise InvalidParameter(HEADER, f"must be 1 to {MAX_KEY_CHARS} characters")
            store, now_s = store_of(request)
            scope = principal(request).actor
            digest = request_hash(request.method, request.path_qs, await request.read())
            stored = await run_db(store.claim_key, scope, key, digest, at=now_s)
            if stored is not None:
                if stored.request_hash != digest:
                    raise InvalidParameter(HEADER, "was already used for a different request")
                if stored.status is None:
                    raise Conflict("a request with this Idempotency-Key is still running; retry later")
                return _replay(stored)
            return await _first(request, handler, store, scope, key)

        return wrapper

    return wrap


async def _first(
    request: web.Request, handler: Handler, store: IncidentStore, scope: str, key: str
) -> web.StreamResponse:
    try:
        response = await handler(request)
    except DomainError as exc:
        response = problem_response(
            status_of(exc), slug=exc.slug, detail=exc.detail, instance=request.path, extensions=exc.extensions
        )
    except BaseException:
        await run_db(store.release_key, scope, key)
        raise
    if response.status >= 500 or not isinstance(response, web.Response) or response.body is None:
        await run_db(store.release_key, scope, key)
        return response
    body = response.body if isinstance(response.body, bytes) else bytes(response.text or "", "utf-8")
    saved = {"body": msgspec.json.decode(body) if body else None, "content_type": response.content_type}
    await run_db(store.complete_key, scope, key, response.status, saved)
    return response
