"""The core API routes, one module per resource; each exposes a `DocumentedRoutes` named `api`."""

from __future__ import annotations

from dispatch.openapi import DocumentedRoutes
from dispatch.routes import (
    admin,
    alerts,
    coverage,
    devices,
    duty,
    geofences,
    grids,
    health,
    heatmap,
    nearest,
    snapshot,
    status_history,
    stream,
    tracks,
    units,
    wall,
    web,
)

# Order matters: aiohttp matches in registration order, and /v1/units/nearest (`nearest`) must precede
# /v1/units/{id} (`units`), and /v1/grids/coverage (`coverage`) /v1/grids/{id} (`grids`).
CORE_ROUTES: tuple[DocumentedRoutes, ...] = (
    health.api,
    nearest.api,
    snapshot.api,  # /v1/units/snapshot, before /v1/units/{id} too
    units.api,
    status_history.api,
    devices.api,
    tracks.api,
    stream.api,
    admin.api,
    web.api,
    wall.api,
    coverage.api,
    grids.api,
    duty.api,
    geofences.api,
    heatmap.api,
    alerts.api,
)
