"""One error format: domain errors, one table mapping them to HTTP status codes, RFC 9457 problem details.

Handlers and the fleet raise the domain errors below; nothing else in `dispatch` builds an error response.
The middleware turns each into `application/problem+json`, and also wraps aiohttp's own HTTP errors
(unknown path, wrong method) and unexpected exceptions, so a client only ever parses one shape.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

import msgspec
from aiohttp import web

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://outpost.invalid/problems/"


class DomainError(Exception):
    """Base of the errors a client can cause; `extensions` are extra members of the problem document."""

    slug = "error"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class NotFound(DomainError):  # noqa: N818 (the names the API speaks)
    """The named unit, device, token or path does not exist."""

    slug = "not-found"


class Conflict(DomainError):  # noqa: N818 (the names the API speaks)
    """The request clashes with the current state (taken id, unit not available, overlapping binding)."""

    slug = "conflict"

    def __init__(self, detail: str, *, current_state: Any = None, **extensions: Any) -> None:
        super().__init__(detail, current_state=current_state, **extensions)
        self.current_state = current_state


class InvalidParameter(DomainError):  # noqa: N818 (the names the API speaks)
    """A query parameter, path parameter or body field is missing or wrong; says which and why."""

    slug = "invalid-parameter"

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"{name}: {why}", invalid_params=[{"name": name, "reason": why}])
        self.name = name
        self.why = why


class Unauthorized(DomainError):  # noqa: N818 (the names the API speaks)
    """No valid bearer token."""

    slug = "unauthorized"


class Forbidden(DomainError):  # noqa: N818 (the names the API speaks)
    """The token is valid but its role may not do this."""

    slug = "forbidden"


class Unprocessable(DomainError):  # noqa: N818 (the names the API speaks)
    """Well-formed, but more than one answer may hold (a time range over the limit); says the limit."""

    slug = "unprocessable"


class TooMany(DomainError):  # noqa: N818 (the names the API speaks)
    """The caller holds as much of something as it may (open streams); `retry_after_s` says when to retry."""

    slug = "too-many-requests"


class Unavailable(DomainError):  # noqa: N818 (the names the API speaks)
    """A dependency (the database) cannot be reached right now; retry later."""

    slug = "unavailable"


# The one mapping of domain errors to HTTP status codes.
HTTP_STATUS: Mapping[type[DomainError], int] = {
    InvalidParameter: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Unprocessable: 422,
    TooMany: 429,
    Unavailable: 503,
}


def status_of(error: DomainError) -> int:
    """The HTTP status code of a domain error (its nearest mapped class; unmapped: 400)."""
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]  # type: ignore[index]
    return 400


def problem_response(
    status: int, *, slug: str, detail: str, instance: str, extensions: Mapping[str, Any] | None = None
) -> web.Response:
    """An RFC 9457 problem details response."""
    body: dict[str, Any] = {
        "type": TYPE_BASE + slug,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    for key, value in (extensions or {}).items():
        if value is not None and key not in body:
            body[key] = value
    headers = {"WWW-Authenticate": 'Bearer realm="outpost"'} if status == 401 else {}
    retry_after = body.get("retry_after_s")
    if isinstance(retry_after, int):
        headers["Retry-After"] = str(retry_after)
    return web.Response(
        body=msgspec.json.encode(body), status=status, content_type=PROBLEM_JSON, headers=headers
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def answered_status(error: BaseException) -> int:
    """The status `problems_middleware` answers an error raised by a handler with."""
    if isinstance(error, DomainError):
        return status_of(error)
    if isinstance(error, web.HTTPException):
        return error.status
    return 500


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn domain errors, aiohttp HTTP errors and crashes into problem+json."""
    try:
        return await handler(request)
    except DomainError as exc:
        return problem_response(
            status_of(exc), slug=exc.slug, detail=exc.detail, instance=request.path, extensions=exc.extensions
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        phrase = HTTPStatus(exc.status).phrase
        slug = phrase.lower().replace(" ", "-")
        detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else phrase
        response = problem_response(exc.status, slug=slug, detail=detail, instance=request.path)
        if exc.status == 405 and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(
            500, slug="internal", detail="internal error; see the server log", instance=request.path
        )
