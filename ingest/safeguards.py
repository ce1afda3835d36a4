"""Test-only negative controls (IngestSettings.unsafe_disable_safeguard): each switches off one safeguard
so the chaos tests can show that they see the loss it prevents. Never set in production."""

from __future__ import annotations

UNSAFE_ACK_ON_RECEIPT = "ack_on_receipt"
UNSAFE_DROP_ON_STORE_FAILURE = "drop_on_store_failure"
UNSAFE_CLEAN_SESSION = "clean_session"
# Embedded mode only: the old path (amqtt PUBACKs a device on receipt; ingest is an MQTT client of it).
UNSAFE_BROKER_ACK_ON_RECEIPT = "broker_ack_on_receipt"
UNSAFE_MODES = (
    "",
    UNSAFE_ACK_ON_RECEIPT,
    UNSAFE_DROP_ON_STORE_FAILURE,
    UNSAFE_CLEAN_SESSION,
    UNSAFE_BROKER_ACK_ON_RECEIPT,
)
