"""Test-only negative controls (IngestSettings.unsafe_disable_safeguard): each switches off one safeguard
so the chaos tests can show that they see the loss it prevents. Never set in production."""

from __future__ import annotations

UNSAFE_ACK_ON_RECEIPT = "ack_on_receipt"
UNSAFE_DROP_ON_STORE_FAILURE = "drop_on_store_failure"
UNSAFE_CLEAN_SESSION = "clean_session"
# A batch that neither the database nor the spool (full, or its disk full) can take is acknowledged anyway.
UNSAFE_ACK_ON_SPOOL_FAILURE = "ack_on_spool_failure"
# Embedded mode only: the old path (amqtt PUBACKs a device on receipt; ingest is an MQTT client of it).
UNSAFE_BROKER_ACK_ON_RECEIPT = "broker_ack_on_receipt"
UNSAFE_MODES = (
    "",
    UNSAFE_ACK_ON_RECEIPT,
    UNSAFE_DROP_ON_STORE_FAILURE,
    UNSAFE_CLEAN_SESSION,
    UNSAFE_ACK_ON_SPOOL_FAILURE,
    UNSAFE_BROKER_ACK_ON_RECEIPT,
)
