"""Open mode at start: `OUTPOST_REGISTER_UNKNOWN_DEVICES=true` lets any device id in without credentials
(demos, load tests). It is said loudly (one WARNING line), and refused (a ConfigError: one line, exit 2)
when a listener devices reach faces the network, unless `OUTPOST_OPEN_MODE_ON_NETWORK=true` insists."""

from __future__ import annotations

import logging

from ingest.settings import IngestSettings
from schemas.config import ConfigError, is_loopback

log = logging.getLogger(__name__)


def check_open_mode(ingest: IngestSettings, http_host: str | None) -> None:
    """Refuse open mode on a non-loopback listener (unless insisted on); warn whenever it runs.
    `http_host`: where the devices' HTTP endpoints listen (None: no HTTP side)."""
    if not ingest.register_unknown_devices:
        return
    exposed = [
        f"{address!r} ({variable})"
        for variable, address in _listeners(ingest, http_host)
        if not is_loopback(address)
    ]
    if exposed and not ingest.open_mode_on_network:
        raise ConfigError(
            f"OUTPOST_REGISTER_UNKNOWN_DEVICES=true (open mode: any device id is accepted without "
            f"credentials) while listening on {', '.join(exposed)}, which is not loopback: listen on "
            "127.0.0.1, or set OUTPOST_OPEN_MODE_ON_NETWORK=true to accept that anyone who reaches it can "
            "report positions and raise alarms as any device"
        )
    where = ", ".join(exposed) if exposed else "loopback only"
    log.warning(
        "OUTPOST_REGISTER_UNKNOWN_DEVICES=true: open mode, for demos and load tests only: any device id is "
        f"accepted without credentials (listening on {where}); anyone who reaches a listener can report "
        "positions and raise alarms as any device"
    )


def _listeners(ingest: IngestSettings, http_host: str | None) -> list[tuple[str, str]]:
    """(setting, host) of every listener devices reach: the HTTP side and the embedded broker."""
    found = [] if http_host is None else [("OUTPOST_HTTP_HOST", http_host)]
    if not ingest.mqtt_url:  # the embedded broker listens; an external broker is its own operator's
        host = ingest.mqtt_listen.rpartition(":")[0].strip("[]")
        found.append(("OUTPOST_MQTT_LISTEN", host or "0.0.0.0"))
    return found
