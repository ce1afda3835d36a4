"""The application's typed keys and the context they come from: a leaf the app and every route module import.

`dispatch.app` fills these keys when it builds the application; route modules (`dispatch.routes.*`,
`dispatch.incidents.routes`) read them. Keeping them here, apart from the factory, is what lets the factory
import the routes at the top without the routes importing the factory back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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


async def nobody_to_tell() -> None:
    """No device gateway in this process."""


async def no_broker_to_tell(device_id: str, secret: str, credentials_hash: str, enabled: bool) -> bool:
    """No external broker keeps its own copy of device secrets (the embedded one reads the registry)."""
    return True


@dataclass(frozen=True)
class ApiContext:
    """What the API needs from the composition root."""

    engine: Engine
    fleet: Fleet
    bus: EventBus
    clock: Clock
    settings: ApiSettings
    # Tells the device gateway of this process that devices changed (disabled, re-bound, new credentials)
    # and returns once it knows: the API answers only then, so a revoked secret is refused from that answer
    # on. The API role alone has none (ingest reloads on its own period, OUTPOST_DEVICE_REFRESH_S).
    devices_changed: Callable[[], Awaitable[object]] = nobody_to_tell
    # Hands a device's newly issued secret (device id, secret, its stored hash, enabled) to the external
    # broker's logins (OUTPOST_MQTT_ADMIN_URL), the one moment the secret is known; False: it could not be
    # told, and the device cannot log in over MQTT until its credentials are issued again.
    credentials_issued: Callable[[str, str, str, bool], Awaitable[bool]] = no_broker_to_tell


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
