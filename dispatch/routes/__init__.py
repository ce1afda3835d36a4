"""The core API routes, one module per resource; each exposes a `DocumentedRoutes` named `api`."""

from __future__ import annotations

from dispatch.openapi import DocumentedRoutes
from dispatch.routes import admin, devices, duty, grids, health, stream, tracks, units, wall, web

# Order matters: aiohttp matches in registration order, and /v1/units/nearest precedes /v1/units/{id}
# inside `units`.
CORE_ROUTES: tuple[DocumentedRoutes, ...] = (
    health.api,
    units.api,
    devices.api,
    tracks.api,
    stream.api,
    admin.api,
    web.api,
    wall.api,
    grids.api,
    duty.api,
)
