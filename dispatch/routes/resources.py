"""What the registry's resources (units, devices) answer alike: create, find or 404, a page, a change.

A `Resource` names how one kind of record is stored (`store.registry`), followed by the live picture (the
fleet's `track_*`) and answered (`present.*_out`). `add_edit_routes` registers the admin's three routes that
are the same for every resource (create, change, disable); the route modules keep their other handlers,
and call the `Resource` for the parts that are the same.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import msgspec
from aiohttp import web

from dispatch.blocking import run_db
from dispatch.fleet import Fleet
from dispatch.keys import CLOCK_KEY, CONTEXT_KEY, ENGINE_KEY, FLEET_KEY
from dispatch.openapi import DocumentedRoutes
from dispatch.problems import Conflict, NotFound
from dispatch.routes.models import set_fields
from dispatch.routes.params import PathId, encode, read_body
from store import registry


class Record(Protocol):
    """A registry record: it has an id."""

    @property
    def id(self) -> str: ...


R = TypeVar("R", bound=Record)


def clock_now(request: web.Request) -> datetime:
    """The app clock's now, as an aware UTC datetime."""
    return datetime.fromtimestamp(request.app[CLOCK_KEY].now(), UTC)


@dataclass(frozen=True)
class After:
    """`after`: the last id of the previous page."""

    noun: str  # what is listed: "units", "devices"

    def openapi(self) -> dict[str, object]:
        """The OpenAPI parameter object."""
        return {
            "name": "after",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": f"list {self.noun} with ids after this one (the previous page's next_after)",
        }


@dataclass(frozen=True)
class Resource(Generic[R]):
    """One kind of registry record and the calls that store, follow and answer it."""

    noun: str  # "unit": NotFound says "no unit <id>"
    path_id: PathId
    queries: registry.Queries[R]
    track: Callable[[Fleet, R], None]  # let the live picture follow the stored record
    out: Callable[[R], msgspec.Struct]  # the API body of a record
    # Whether the device gateway must hear of a change at once (devices: disabled ones are refused).
    tells_gateway: bool = False

    async def find(self, request: web.Request, record_id: str) -> R:
        """The record, or NotFound."""
        record = await run_db(self.queries.get, request.app[ENGINE_KEY], record_id)
        if record is None:
            raise NotFound(f"no {self.noun} {record_id}")
        return record

    async def create(self, request: web.Request, body: msgspec.Struct) -> web.Response:
        """Store a new record from `body`'s fields (409 for a taken id), follow it, answer 201."""
        fields = msgspec.structs.asdict(body)
        try:
            record = await run_db(
                self.queries.insert, request.app[ENGINE_KEY], **fields, now=clock_now(request)
            )
        except registry.Duplicate as exc:
            raise Conflict(str(exc), current_state={"id": fields["id"]}) from None
        await self._follow(request, record)
        return encode(self.out(record), status=201)

    async def page(self, request: web.Request, limit: int, **filters: Any) -> tuple[list[R], str | None]:
        """Up to `limit` records after the `after` query parameter, and the next page's `after` (or None)."""
        records = await run_db(
            self.queries.listing,
            request.app[ENGINE_KEY],
            **filters,
            after_id=request.query.get("after"),
            limit=limit + 1,
        )
        page = records[:limit]
        return page, page[-1].id if len(records) > limit and page else None

    async def change(self, request: web.Request, **changes: Any) -> web.Response:
        """Store the changes, let the live picture follow, answer with the record."""
        record_id = self.path_id.get(request)
        record = await run_db(self.queries.update, request.app[ENGINE_KEY], record_id, **changes)
        if record is None:
            raise NotFound(f"no {self.noun} {record_id}")
        await self._follow(request, record)
        return encode(self.out(record))

    async def _follow(self, request: web.Request, record: R) -> None:
        self.track(request.app[FLEET_KEY], record)
        if self.tells_gateway:
            await request.app[CONTEXT_KEY].devices_changed()


H = TypeVar("H", bound=Callable[..., Any])
Body = msgspec.Struct


def named(handler: H, name: str, doc: str) -> H:
    """A handler made in a function, named and documented for the OpenAPI document (its operationId is the
    name; the docstring is its summary, blank line, description)."""
    handler.__name__ = handler.__qualname__ = name
    handler.__doc__ = doc
    return handler


def add_edit_routes(
    api: DocumentedRoutes,
    resource: Resource[Any],
    bodies: tuple[type[Body], type[Body], type[Body]],
    kept: str,
) -> None:
    """The admin's edits of `resource` at `/v1/<noun>s`: `POST` (create from the first body, 409 for a taken
    id), `PATCH …/{id}` (the second body's set fields) and `DELETE …/{id}` (disable: records are never
    deleted, because `kept`), each answering the third body. The handlers are `create_<noun>`,
    `patch_<noun>` and `disable_<noun>`; their descriptions are the bodies' docstrings."""
    new, change, out = bodies
    noun, path = resource.noun, f"/v1/{resource.noun}s"
    item, params = f"{path}/{{{resource.path_id.name}}}", [resource.path_id]

    async def create(request: web.Request) -> web.Response:
        return await resource.create(request, await read_body(request, new))

    async def patch(request: web.Request) -> web.Response:
        return await resource.change(request, **set_fields(await read_body(request, change)))

    async def disable(request: web.Request) -> web.Response:
        return await resource.change(request, enabled=False)

    named(create, f"create_{noun}", f"Register a {noun}\n\n{inspect.getdoc(new)}")
    named(patch, f"patch_{noun}", f"Change a {noun} (enabled=false disables it)\n\n{inspect.getdoc(change)}")
    named(
        disable,
        f"disable_{noun}",
        f"Disable a {noun}\n\n{noun.capitalize()}s are never deleted ({kept}): this disables the {noun}.",
    )
    api.route("POST", path, role="admin", body=new, response=out, status=201, errors=[409])(create)
    api.route("PATCH", item, role="admin", params=params, body=change, response=out)(patch)
    api.route("DELETE", item, role="admin", params=params, response=out)(disable)
