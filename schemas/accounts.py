"""The broker's service accounts: names no device may take.

A device's MQTT user name is its id, so a device registered as `outpost` would log in as the service that
reads every device topic and writes offers to all of them. Registration refuses these ids, the broker's
ACL grants service rights only to them, and service listeners accept nobody else.
"""

from __future__ import annotations

# The user names Outpost's own processes log in with (ingest workers, API replicas, the broker admin).
SERVICE_ACCOUNTS: frozenset[str] = frozenset({"outpost", "outpost-admin"})

# Ids beginning with these are kept for services to come, and `$` is MQTT's own (`$SYS`, `$CONTROL`).
RESERVED_PREFIXES: tuple[str, ...] = ("outpost-", "$")


def is_reserved(device_id: str) -> bool:
    """Whether `device_id` is a service account's name or begins with a reserved prefix (case-insensitive)."""
    folded = device_id.casefold()
    return folded in SERVICE_ACCOUNTS or folded.startswith(RESERVED_PREFIXES)
