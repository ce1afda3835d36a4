"""Bearer tokens with roles (admin > dispatcher > viewer) on every endpoint but the open few.

Open: /healthz, /openapi.json (the API's description, as most APIs serve it), and /ingest/ (devices
authenticate there themselves).

The middleware authenticates; the role a route needs is declared on its handler (`requires`, set by
`dispatch.openapi.DocumentedRoutes`). A route that declares nothing gets the safe default: viewer for reads
(GET, HEAD), dispatcher for anything that changes state, so a viewer can never change anything, including
through routes plugged in by other packages. Devices authenticate on /ingest/ themselves (ingest.http).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

from aiohttp import web
from sqlalchemy import Engine

from dispatch.blocking import run_db
from dispatch.clock import Clock
from dispatch.problems import Forbidden, Unauthorized
from schemas.credentials import token_digest
from store import access

Role = Literal["viewer", "dispatcher", "admin"]
ROLE_RANK: dict[str, int] = {"viewer": 1, "dispatcher": 2, "admin": 3}
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an API token's id, name and role."""

    token_id: int
    name: str
    role: str

    @property
    def actor(self) -> str:
        """How this caller is named in the audit log and in status changes."""
        return f"token:{self.token_id}:{self.name}"

    def may(self, role: str) -> bool:
        """Whether this caller's role is at least `role`."""
        return ROLE_RANK.get(self.role, 0) >= ROLE_RANK[role]


PRINCIPAL_KEY = web.RequestKey("principal", Principal)


class TokenAuthority:
    """Looks tokens up by digest, caching hits for `cache_s` so a request costs no database round trip.

    Revocation through the API takes effect at once (`forget`); revocation directly in the database takes
    effect within `cache_s`.
    """

    def __init__(self, engine: Engine, clock: Clock, cache_s: float) -> None:
        self._engine = engine
        self._clock = clock
        self._cache_s = cache_s
        self._cache: dict[str, tuple[float, Principal]] = {}

    async def authenticate(self, secret: str) -> Principal | None:
        """The principal behind a bearer token, or None when the token is unknown or revoked."""
        digest = token_digest(secret)
        now = self._clock.now()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        record = await run_db(access.find_token, self._engine, secret)
        if record is None:
            self._cache.pop(digest, None)
            return None
        principal = Principal(token_id=record.id, name=record.name, role=record.role)
        self._cache[digest] = (now + self._cache_s, principal)
        return principal

    def forget(self, token_id: int) -> None:
        """Drop a token from the cache (called when it is revoked through the API)."""
        for digest in [d for d, (_, p) in self._cache.items() if p.token_id == token_id]:
            del self._cache[digest]


H = TypeVar("H", bound=Callable[..., Awaitable[web.StreamResponse]])


def requires(role: Role) -> Callable[[H], H]:
    """Declare the least role a handler needs."""

    def mark(handler: H) -> H:
        cast(Any, handler).required_role = role
        return handler

    return mark


def required_role(request: web.Request) -> str:
    """The role the matched route declares, or the default by method."""
    declared = getattr(request.match_info.handler, "required_role", None)
    if declared is not None:
        return str(declared)
    return "viewer" if request.method in READ_METHODS else "dispatcher"


def principal(request: web.Request) -> Principal:
    """The authenticated caller of this request."""
    return request[PRINCIPAL_KEY]


def bearer(request: web.Request) -> str | None:
    """The token in `Authorization: Bearer <token>`, if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The API's own open paths: readiness and the API's description.
OPEN_PATHS = ("/healthz", "/readyz", "/openapi.json")


def auth_middleware(
    authority: TokenAuthority,
    *,
    public_paths: Collection[str] = OPEN_PATHS,
    public_prefixes: tuple[str, ...] = ("/ingest/",),
) -> Any:
    """The middleware: authenticate every request outside the public paths, then check the route's role."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in public_paths or request.path.startswith(public_prefixes):
            return await handler(request)
        token = bearer(request)
        if token is None:
            raise Unauthorized("send Authorization: Bearer <token> (create one with `outpost token create`)")
        who = await authority.authenticate(token)
        if who is None:
            raise Unauthorized("the bearer token is unknown or revoked")
        needed = required_role(request)
        if not who.may(needed):
            raise Forbidden(
                f"this needs the {needed} role; the token {who.name!r} has {who.role}",
                required_role=needed,
                role=who.role,
            )
        request[PRINCIPAL_KEY] = who
        return await handler(request)

    return middleware
