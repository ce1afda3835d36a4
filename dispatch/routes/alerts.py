"""The alerts raised now (out of grid, coverage gaps, devices offline, low batteries) and their
acknowledgement: answered from the live patrol watch (`dispatch.patrol.alerts`), which raises and clears
them; acknowledging marks one seen on every console and is audited."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from aiohttp import web

from dispatch.auth import principal
from dispatch.keys import AUDIT_KEY, PATROL_KEY
from dispatch.openapi import DocumentedRoutes
from dispatch.patrol.alerts import RaisedAlert
from dispatch.problems import NotFound
from dispatch.routes.params import PathId, encode

ALERT_ID = PathId("id", "the alert's id (the `id` of its `*.raised` event)")
api = DocumentedRoutes("alerts", path_params=[ALERT_ID])


class AlertOut(msgspec.Struct):
    """An alert raised now: its raise event as the stream sent it, and who acknowledged it."""

    id: str
    type: str
    at: datetime
    event: dict[str, Any]
    acknowledged_by: str | None
    acknowledged_at: datetime | None


class AlertList(msgspec.Struct):
    """Every alert raised now, oldest first."""

    alerts: list[AlertOut]


def _out(a: RaisedAlert) -> AlertOut:
    e = a.event
    return AlertOut(e["id"], e["type"], e["at"], e, a.acknowledged_by, a.acknowledged_at)


@api.route("GET", "/v1/alerts", role="viewer", response=AlertList)
async def list_alerts(request: web.Request) -> web.Response:
    """The alerts raised now

    Out of grid, coverage gaps, devices offline and low batteries that the patrol watch has raised and not
    cleared, oldest first, each with its acknowledgement once given."""
    return encode(AlertList([_out(a) for a in request.app[PATROL_KEY].alerts.raised()]))


@api.route("POST", "/v1/alerts/{id}/acknowledge", role="dispatcher", response=AlertOut)
async def acknowledge_alert(request: web.Request) -> web.Response:
    """Acknowledge an alert

    Marks the alert seen: every console is told (`alert.acknowledged` on the stream). It stays raised until
    the watch clears it; acknowledging again changes nothing (the first acknowledgement stays). 404 when no
    alert of this id is raised (unknown, or cleared since)."""
    alert_id, actor = ALERT_ID.get(request), principal(request).actor
    alert = request.app[PATROL_KEY].acknowledge(alert_id, actor)
    if alert is None:
        raise NotFound(f"no raised alert {alert_id} (unknown, or cleared since)")
    request.app[AUDIT_KEY].record(
        actor, "acknowledge_alert", f"alert:{alert_id}", {"type": alert.event["type"]}
    )
    return encode(_out(alert))
