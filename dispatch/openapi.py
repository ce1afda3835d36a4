"""The OpenAPI 3.1 document, generated from the same declarations that register the routes.

`DocumentedRoutes` is how a route is added: one decorator registers the aiohttp route, declares the role
it needs, and writes its OpenAPI operation (parameters from the same objects the handler parses with,
bodies and responses from the msgspec types the handler decodes and encodes). A `DocumentedRoutes` is
itself an `ApiPlugin`, so the core routes and plugged-in packages are documented the same way, and
`build_document` assembles them. A test checks that routes and document agree both ways.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import msgspec
from aiohttp import web

from dispatch.auth import Role, requires
from schemas.values import NO_CONTROL

REF = "#/components/schemas/{name}"
_PATH_NAME = re.compile(r"\{(\w+)")  # the names of a path's parameters
H = TypeVar("H", bound=Callable[[web.Request], Awaitable[web.StreamResponse]])


class Problem(msgspec.Struct):
    """An RFC 9457 problem details document (application/problem+json)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    invalid_params: list[dict[str, str]] | msgspec.UnsetType = msgspec.UNSET
    current_state: Any | msgspec.UnsetType = msgspec.UNSET


# One Server-Sent Event, as OpenAPI 3.1 has a `text/event-stream` schema describe each event of the stream.
SSE_EVENT: Mapping[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": {"type": "string"},
        "data": {"type": "string", "description": "the event as a JSON object"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
}


class Documented(Protocol):
    """A parameter declaration that can describe itself as an OpenAPI parameter object."""

    def openapi(self) -> dict[str, Any]: ...


_ERRORS: Mapping[int, str] = {
    400: "a parameter or body field is wrong (the problem names it and says why)",
    401: "no valid bearer token",
    403: "the token's role may not do this",
    404: "not found",
    409: "conflicts with the current state",
    422: "well-formed, but more than one request may ask for (the problem says the limit)",
    429: "the caller holds as much as it may (see Retry-After)",
    503: "the database cannot be reached; retry",
}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": REF.format(name="Problem")}}},
    }


@dataclass(frozen=True)
class Operation:
    """What a route declares about itself, beyond its method and path (see `DocumentedRoutes.route`)."""

    role: Role | None
    summary: str
    params: Sequence[Documented]
    body: Any
    response: Any
    status: int
    errors: tuple[int, ...]
    media_type: str
    description: str


class DocumentedRoutes:
    """Routes plus their OpenAPI paths and schema components (an `ApiPlugin`)."""

    def __init__(
        self, tag: str, path_params: Iterable[Documented] = (), media_type: str = "application/json"
    ) -> None:
        """`path_params`: what `{name}` means in this module's paths (e.g. `{id}`: the unit's id); a route
        gets them from its path, in path order, unless its own `params` name one. `media_type`: what the
        module's routes answer unless a route says otherwise."""
        self.tag = tag
        self.media_type = media_type
        self.path_params = {p.openapi()["name"]: p for p in path_params}
        self.routes = web.RouteTableDef()
        self.openapi_paths: dict[str, dict[str, Any]] = {}
        self.openapi_components: dict[str, Any] = {}

    def setup(self, app: web.Application) -> None:
        """Nothing to start: plain routes."""

    def _schema(self, tp: Any) -> dict[str, Any]:
        (schema,), components = msgspec.json.schema_components([tp], ref_template=REF)
        for name, component in components.items():
            if self.openapi_components.setdefault(name, component) != component:
                raise ValueError(f"two different schemas are named {name} in the OpenAPI document")
        return dict(schema)

    def route(
        self,
        method: str,
        path: str,
        *,
        role: Role | None,
        summary: str = "",
        params: Sequence[Documented] = (),
        body: Any = None,
        response: Any = None,
        status: int = 200,
        errors: Iterable[int] = (),
        media_type: str = "",
        description: str = "",
    ) -> Callable[[H], H]:
        """Register `handler` for `method path`, requiring `role` (None: public), and document it. The
        operation's summary is the docstring's first paragraph (or `summary`), its description the rest (or
        `description`). A route with a path parameter answers 404 too; `errors` names the other problems."""
        named = {p.openapi()["name"] for p in params}
        implied = [
            self.path_params[n] for n in _PATH_NAME.findall(path) if n in self.path_params and n not in named
        ]
        spec = Operation(
            role,
            summary,
            [*implied, *params],
            body,
            response,
            status,
            tuple(errors),
            media_type or self.media_type,
            description,
        )

        def register(handler: H) -> H:
            if role is not None:
                requires(role)(handler)
            self.routes.route(method, path)(handler)
            self.openapi_paths.setdefault(path, {})[method.lower()] = self._operation(handler, spec)
            return handler

        return register

    def create(
        self, path: str, *, role: Role, body: Any, response: Any, errors: Iterable[int] = (409,)
    ) -> Callable[[H], H]:
        """A POST that makes something: 201 with `response`, and by default 409 when it conflicts."""
        return self.route("POST", path, role=role, body=body, response=response, status=201, errors=errors)

    def _operation(self, handler: H, spec: Operation) -> dict[str, Any]:
        summary, doc = spec.summary, inspect.cleandoc(handler.__doc__ or "")
        if not summary:
            summary, _, doc = (part.strip() for part in doc.partition("\n\n"))
        if not summary:
            raise ValueError(f"{handler.__name__}: a route needs a summary (its docstring's first paragraph)")
        doc = (spec.description or doc).strip()
        role = spec.role
        op: dict[str, Any] = {"operationId": handler.__name__, "tags": [self.tag], "summary": summary}
        if doc:
            op["description"] = doc + (f"\n\nRole: {role} or higher." if role else "")
        op["x-outpost-role"] = role or "public"  # the least role, read by the authorization matrix test
        if role is None:
            op["security"] = []
        parameters = [p.openapi() for p in spec.params]
        if parameters:
            op["parameters"] = parameters
        if spec.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": self._schema(spec.body)}},
            }
        ok: dict[str, Any] = {"description": "success"}
        if spec.response is not None:
            response = spec.response
            if isinstance(response, tuple):  # one of these shapes (msgspec unions only tagged structs)
                schema = {"anyOf": [self._schema(one) for one in response]}
            else:
                schema = self._schema(response) if not isinstance(response, dict) else response
            ok["content"] = {spec.media_type: {"schema": schema}}
        codes = set(spec.errors) | {400, 503}
        if any(p["in"] == "path" for p in parameters):
            codes.add(404)  # whatever a path names may not exist
        if role is not None:
            codes |= {401, 403}
        op["responses"] = {str(spec.status): ok, **{str(c): _problem(_ERRORS[c]) for c in sorted(codes)}}
        return op


class RoutesPlugin:
    """An `ApiPlugin` whose routes and OpenAPI entries are one `DocumentedRoutes`; a subclass attaches
    what its routes need in `setup`."""

    def __init__(self, api: DocumentedRoutes) -> None:
        self.routes = api.routes
        self.openapi_paths: Mapping[str, Any] = api.openapi_paths
        self.openapi_components: Mapping[str, Any] = api.openapi_components

    def setup(self, app: web.Application) -> None:
        """Nothing to attach."""


class HasOpenApi(Protocol):
    """Anything that contributes paths (and optionally schema components) to the document."""

    @property
    def openapi_paths(self) -> Mapping[str, Any]: ...


def build_document(sources: Iterable[HasOpenApi], *, title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every source's paths, with shared components and bearer security."""
    paths: dict[str, dict[str, Any]] = {}
    components: dict[str, Any] = {}
    (_,), problem = msgspec.json.schema_components([Problem], ref_template=REF)
    components.update(problem)
    for source in sources:
        for path, ops in source.openapi_paths.items():
            paths.setdefault(path, {}).update(ops)
        for name, schema in (getattr(source, "openapi_components", {}) or {}).items():
            if components.setdefault(name, schema) != schema:  # one would silently describe the other's body
                raise ValueError(f"two different schemas are named {name} in the OpenAPI document")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Outpost: GPS telemetry and geospatial dispatch. Errors are RFC 9457 problem "
            "details. Every read of a location is written to the audit log.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an API token (`outpost token create`)",
                }
            },
        },
        "security": [{"bearer": []}],
    }


def parameter(
    name: str, where: str, description: str | None, schema: Mapping[str, Any], *, required: bool = False
) -> dict[str, Any]:
    """An OpenAPI parameter object (`where`: query, path or header); every self-documenting parameter's
    `openapi()` answers one. A query or path string without a pattern of its own says what screening
    refuses in every such value: control characters."""
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": description,
        "schema": _screened(schema) if where in ("query", "path") else dict(schema),
    }


def _screened(schema: Mapping[str, Any]) -> dict[str, Any]:
    found = dict(schema)
    if found.get("type") == "array" and isinstance(found.get("items"), Mapping):
        found["items"] = _screened(found["items"])
    elif found.get("type") == "string" and not {"pattern", "enum"} & found.keys():
        found["pattern"] = NO_CONTROL
    return found
