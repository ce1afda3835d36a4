"""Running the synchronous storage layer from async code without stalling the event loop."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from dispatch.problems import Unavailable

P = ParamSpec("P")
T = TypeVar("T")


async def run_db(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a storage call in a worker thread; a lost database becomes `Unavailable` (HTTP 503)."""
    try:
        return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))
    except OperationalError as exc:
        raise Unavailable(f"the database cannot be reached: {exc.orig or exc}") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise Unavailable("the database connection was lost; retry") from exc
        raise
