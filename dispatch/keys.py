"""The application's typed keys and the context they come from: a leaf the app and every route module import.

`dispatch.app` fills these keys when it builds the application; route modules (`dispatch.routes.*`,
`dispatch.incidents.routes`) read them. Keeping them here, apart from the factory, is what lets the factory
import the routes at the top without the routes importing the factory back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import Engine

from dispatch.audit import AuditLog
from dispatch.auth import TokenAuthority
from dispatch.clock import Clock
from dispatch.events import EventBus
from dispatch.fleet import Fleet
from dispatch.patrol import Patrol
from dispatch.settings import ApiSettings
from dispatch.stream_slots import StreamSlots


@dataclass(frozen=True)
class ApiContext:
    """What the API needs from the composition root."""

    engine: Engine
    fleet: Fleet
    bus: EventBus
    clock: Clock
    settings: ApiSettings


CONTEXT_KEY = web.AppKey("outpost.context", ApiContext)
ENGINE_KEY = web.AppKey("outpost.engine", Engine)
FLEET_KEY = web.AppKey("outpost.fleet", Fleet)
BUS_KEY = web.AppKey("outpost.bus", EventBus)
CLOCK_KEY = web.AppKey("outpost.clock", Clock)  # type: ignore[type-abstract]
SETTINGS_KEY = web.AppKey("outpost.api_settings", ApiSettings)
AUDIT_KEY = web.AppKey("outpost.audit", AuditLog)
TOKENS_KEY = web.AppKey("outpost.tokens", TokenAuthority)
OPENAPI_KEY = web.AppKey("outpost.openapi", dict[str, Any])
PATROL_KEY = web.AppKey("outpost.patrol", Patrol)
STREAM_SLOTS_KEY = web.AppKey("outpost.stream_slots", StreamSlots)
