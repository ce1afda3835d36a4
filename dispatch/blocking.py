"""Running the synchronous storage layer from async code without stalling the event loop."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError

from dispatch.problems import Unavailable
from store.errors import is_unavailable

P = ParamSpec("P")
T = TypeVar("T")


async def run_db(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a storage call in a worker thread; a lost database becomes `Unavailable` (HTTP 503)."""
    try:
        return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            raise Unavailable("the database connection was lost; retry") from exc
        orig = exc.orig if isinstance(exc, DBAPIError) else None
        raise Unavailable(f"the database cannot be reached: {orig or exc}") from exc
