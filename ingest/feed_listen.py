"""The `api` role's subscription to the live change feed (the topic ingest.feed publishes on).

Each replica subscribes on its own (no shared group: every replica needs every batch) with a clean,
per-start session: what was published while it was away is read from the database instead (the reader's
snapshot at start, its sweeps after). Payloads are handed on raw (dispatch.follow decodes them) and
acknowledged once handed on: the live picture is derived state, and the database is the truth.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable

from ingest.mqtt.subscriber import MqttSubscriber, link_options
from ingest.ports import Message
from ingest.settings import IngestSettings
from schemas.topics import FIXES_FEED_FILTER

log = logging.getLogger(__name__)


async def listen_feed(
    settings: IngestSettings,
    on_payload: Callable[[bytes], None],
    stop: asyncio.Event,
    *,
    subscribed: asyncio.Event,
    clock: Callable[[], float] = time.time,
) -> None:
    """Hand every feed payload to `on_payload` (on the loop, in arrival order) until `stop`; `subscribed`
    is set once the broker acknowledged the subscription (from then on, every batch published reaches us)."""
    await listen_internal(
        settings, lambda _topic, payload: on_payload(payload), stop, FIXES_FEED_FILTER, "feed",
        subscribed=subscribed, clock=clock,
    )  # fmt: skip


async def listen_internal(
    settings: IngestSettings,
    on_message: Callable[[str, bytes], None],
    stop: asyncio.Event,
    topic_filter: str,
    name: str,
    *,
    subscribed: asyncio.Event,
    clock: Callable[[], float] = time.time,
) -> None:
    """As listen_feed, for any internal topic filter: `on_message(topic, payload)`. `name` tells this
    subscription's client id from the others of the process."""
    subscriber: MqttSubscriber

    def on_messages(messages: list[Message], received_s: float) -> None:
        for topic, payload, _token in messages:
            try:
                on_message(topic, payload)
            except Exception:
                log.exception("internal topic handler failed (%s)", topic_filter)
        subscriber.ack([token for _topic, _payload, token in messages if token >= 0])

    subscriber = MqttSubscriber(
        settings.mqtt_url,
        f"{settings.mqtt_client_id}-{name}-{secrets.token_hex(4)}",
        on_messages,
        **link_options(settings),
        clean_session=True,
        clock=clock,
        topics=(topic_filter,),
    )
    disconnect = asyncio.Event()
    running = asyncio.create_task(subscriber.run(disconnect))
    waiting = asyncio.create_task(_relay(subscriber.subscribed, subscribed))
    try:
        await stop.wait()
    finally:
        waiting.cancel()
        disconnect.set()
        await running


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()
