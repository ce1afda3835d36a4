"""Running the synchronous storage layer from async code without stalling the event loop.

What the database says of a request becomes what the API answers: a lost database is a 503; values the
database refuses (a NUL in text, an integer out of range) are a 400, and a clash with stored rows a 409,
never a 500: validation should have caught them, so each is logged as a warning to tighten a schema.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError

from dispatch.problems import Conflict, InvalidParameter, Unavailable
from store.errors import content_refusal, is_unavailable

P = ParamSpec("P")
T = TypeVar("T")
log = logging.getLogger(__name__)
# What a driver quotes in its message is the refused value (`invalid input syntax for type uuid: "…"`).
_QUOTED = re.compile(r'"[^"]*"')


async def run_db(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a storage call in a worker thread; a lost database becomes `Unavailable` (HTTP 503)."""
    try:
        return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))
    except Exception as exc:
        refusal = content_refusal(exc)
        if refusal is not None:
            integrity, words = refusal[0], _QUOTED.sub('"…"', refusal[1])  # the value stays out
            log.warning(
                "the database refused a request's values (%s): %s", getattr(fn, "__name__", fn), words
            )
            if integrity:
                raise Conflict(f"conflicts with stored data: {words}") from None
            raise InvalidParameter("request", f"a value the database cannot hold: {words}") from None
        if not is_unavailable(exc):
            raise
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            raise Unavailable("the database connection was lost; retry") from exc
        orig = exc.orig if isinstance(exc, DBAPIError) else None
        raise Unavailable(f"the database cannot be reached: {orig or exc}") from exc
