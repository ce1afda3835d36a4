"""Test helper: logging in to the embedded broker as Outpost's own service, or as a registered device with
credentials (the broker refuses anonymous clients outside open mode, see ingest/broker_access.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiomqtt
from sqlalchemy import Engine

from ingest.broker import EmbeddedBroker
from ingest.broker_access import SERVICE_USER
from schemas.credentials import hash_secret, new_secret
from store.registry.devices import insert_device, set_device_credentials


def service_login(broker: EmbeddedBroker) -> tuple[str, str]:
    """(user name, password) of the broker's service account."""
    return SERVICE_USER, broker.access.service_password


def service_client(broker: EmbeddedBroker, **options: Any) -> aiomqtt.Client:
    """An aiomqtt client of `broker` logged in as Outpost's service; `options`: aiomqtt.Client's."""
    username, password = service_login(broker)
    return aiomqtt.Client("127.0.0.1", broker.port, username=username, password=password, **options)


def registered_device(engine: Engine, device_id: str, *, kind: str = "phone", enabled: bool = True) -> str:
    """Register `device_id` with new credentials; returns its secret (its MQTT password)."""
    insert_device(engine, id=device_id, kind=kind, enabled=enabled, now=datetime.now(UTC))
    return rekeyed(engine, device_id)


def rekeyed(engine: Engine, device_id: str) -> str:
    """New credentials for `device_id`; returns the new secret."""
    secret = new_secret()
    assert set_device_credentials(engine, device_id, hash_secret(secret))
    return secret
