"""The `api` role's ear for devices: offer replies and SOS alarms over MQTT, without storing any fix.

In production the `ingest` role stores fixes and the `api` role runs the incident loop in another process, so
the devices' replies and alarms must reach the API process. It subscribes to the device topics only, with its
own persistent session, and acknowledges each message once the incident loop has been handed it (the loop's
own records are the durable part; a reply lost in a crash is answered again by the offer's timeout).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ingest.mqtt.subscriber import MqttSubscriber, link_options, when_subscribed
from ingest.ports import Message, OnDeviceMessage
from ingest.settings import IngestSettings
from schemas.topics import DEVICE_MESSAGE_FILTERS, device_message_of

log = logging.getLogger(__name__)


async def relay_device_messages(
    settings: IngestSettings,
    handle: OnDeviceMessage,
    known: Callable[[str], bool],
    stop: asyncio.Event,
    clock: Callable[[], float] = time.time,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Forward replies and alarms of known, enabled devices (`known`) to `handle` until `stop` is set.
    `on_ready` is called once the broker granted the subscription (readiness waits for it)."""
    subscriber: MqttSubscriber

    def on_messages(messages: list[Message], received_s: float) -> None:
        for topic, payload, _token in messages:
            parsed = device_message_of(topic)
            if parsed is None:
                continue
            device_id, kind = parsed
            if not known(device_id):
                log.warning(
                    "device message from an unknown or disabled device ignored",
                    extra={"device_id": device_id, "kind": kind},
                )
                continue
            try:
                handle(device_id, kind, payload)
            except Exception:
                log.exception("device message handler failed", extra={"device_id": device_id})
        subscriber.ack([token for _topic, _payload, token in messages if token >= 0])

    subscriber = MqttSubscriber(
        settings.mqtt_url,
        f"{settings.mqtt_client_id}-api",
        on_messages,
        **link_options(settings),
        session_expiry_s=settings.mqtt_session_expiry_s,
        clock=clock,
        topics=DEVICE_MESSAGE_FILTERS,
    )
    disconnect = asyncio.Event()
    running = asyncio.create_task(subscriber.run(disconnect))
    signalling = asyncio.create_task(
        when_subscribed(subscriber.subscribed, on_ready, "device relay", "replies and alarms reach us")
    )
    try:
        await stop.wait()
    finally:
        signalling.cancel()
        disconnect.set()
        await running
