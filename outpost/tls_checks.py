"""Every TLS setting checked at start, before anything listens or connects: a file that cannot be used, a
certificate without its key, or trust given for a broker that is not reached over TLS ends the start as one
line naming the setting (a ConfigError; the CLI exits 2), instead of a refused handshake later."""

from __future__ import annotations

import ssl
from typing import Any

from dispatch.settings import ApiSettings
from ingest.settings import IngestSettings
from ingest.tls import Named, client_context, server_context
from outpost.settings import PREFIX
from schemas.config import ConfigError


def check_tls(api: ApiSettings, ingest: IngestSettings) -> ssl.SSLContext | None:
    """Check the HTTP API's, the embedded broker's and the external broker's TLS settings; returns the HTTP
    API's context (None: plain HTTP)."""
    http = server_context(_named(api, "http_tls_cert"), _named(api, "http_tls_key"))
    if ingest.mqtt_tls_cert or ingest.mqtt_tls_key:
        if ingest.mqtt_url:
            raise ConfigError(
                "OUTPOST_MQTT_TLS_CERT and OUTPOST_MQTT_TLS_KEY are the embedded broker's, but "
                "OUTPOST_MQTT_URL names an external broker: configure TLS on that broker and use mqtts:// "
                "(with OUTPOST_MQTT_TLS_CA for its CA), or unset OUTPOST_MQTT_URL"
            )
        server_context(_named(ingest, "mqtt_tls_cert"), _named(ingest, "mqtt_tls_key"))
    if ingest.mqtt_tls_ca:
        if not any(url.startswith("mqtts://") for url in (ingest.mqtt_url, ingest.mqtt_admin_url)):
            raise ConfigError(
                "OUTPOST_MQTT_TLS_CA is set but neither OUTPOST_MQTT_URL nor OUTPOST_MQTT_ADMIN_URL is "
                "mqtts://: write mqtts://host:8883 to reach the broker over TLS, or unset OUTPOST_MQTT_TLS_CA"
            )
        client_context(_named(ingest, "mqtt_tls_ca"), host="")  # the file; the host matters per connection
    return http


def embedded_tls(ingest: IngestSettings) -> tuple[str, str] | None:
    """The embedded broker's (certificate, key) files; None: plain MQTT."""
    return (ingest.mqtt_tls_cert, ingest.mqtt_tls_key) if ingest.mqtt_tls_cert else None


def _named(part: Any, name: str) -> Named:
    """(OUTPOST_<NAME>, its value) of the settings field `name`."""
    return PREFIX + name.upper(), str(getattr(part, name))
