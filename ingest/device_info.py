"""What ingest knows of a registered device: shared by the rules, the validator and the device directory.

A leaf (it imports nothing of ingest), so that `rules` and `validate` both depend on it and not on each other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceInfo:
    """What validation needs to know about a registered device."""

    device_id: str
    enabled: bool
    unit_id: str | None
    kind: str = "other"
    off_duty: bool = False  # its unit's status is off_duty (ingest.duty): its fixes are private
    # Whether a credentials hash is stored: without one the device is refused (`no_credentials`), except
    # in open mode (register_unknown_devices), where an id alone identifies a device.
    has_credentials: bool = False
