"""Operations endpoints: readiness, Prometheus metrics, the OpenAPI document."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from dispatch.keys import FLEET_KEY, OPENAPI_KEY
from dispatch.openapi import DocumentedRoutes
from dispatch.routes.models import Health
from dispatch.routes.params import encode

api = DocumentedRoutes("operations")


@api.route("GET", "/healthz", role=None, response=Health, errors=[503])
async def healthz(request: web.Request) -> web.Response:
    """Readiness

    200 once the live index has been rebuilt and the API serves; 503 before. No token needed."""
    fleet = request.app[FLEET_KEY]
    status = 200 if fleet.ready else 503
    return encode(
        Health(status="ok" if fleet.ready else "starting", units_indexed=len(fleet.index)), status=status
    )


@api.route("GET", "/metrics", role="viewer", response={"type": "string"}, media_type="text/plain")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus metrics

    Metrics in the Prometheus text format."""
    response = web.Response(body=generate_latest())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


@api.route("GET", "/openapi.json", role=None, response={"type": "object"})
async def openapi(request: web.Request) -> web.Response:
    """This API's OpenAPI 3.1 document (open: browsers and client generators read it tokenless)

    The OpenAPI document, generated from the route declarations."""
    return encode(request.app[OPENAPI_KEY])
