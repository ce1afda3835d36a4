"""Running the ingest role: `run_ingest(...)`, called by the composition root.

    pipeline = build_pipeline(settings, engine, on_accepted=fleet.apply)   # optional: to mount HTTP first
    app.add_routes(ingest.http.routes(pipeline))
    await run_ingest(settings, engine, on_accepted=fleet.apply, pipeline=pipeline, stop=stop)

Two sources of MQTT messages: an external broker (Mosquitto), to which ingest subscribes as a QoS 1 client
(`MqttSubscriber`), or the embedded broker of this process, whose device PUBLISHes ingest takes in process
(`source=embedded_source(settings)`, also given to `EmbeddedBroker(ingest=...)`; see ingest/embedded.py).

Start: the device directory is loaded (or its cached copy, if the database is down), the validator is
seeded with each device's latest stored fix, the spool left by a previous run starts draining, and the
MQTT session resumes. Stop: reading stops, the open batch is made durable and acknowledged, then the
session is closed cleanly (the broker keeps it for the next start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from ingest.devices import DeviceDirectory
from ingest.embedded import EmbeddedSource
from ingest.feed import CommittedFeed
from ingest.mqtt.client import parse_mqtt_url
from ingest.mqtt.subscriber import MqttSubscriber, link_options, when_subscribed
from ingest.pipeline import Pipeline
from ingest.ports import OnAccepted, OnDeviceMessage
from ingest.safeguards import UNSAFE_BROKER_ACK_ON_RECEIPT, UNSAFE_CLEAN_SESSION, UNSAFE_DROP_ON_STORE_FAILURE
from ingest.settings import IngestSettings
from ingest.spool import Spool
from ingest.validate import Validator
from schemas.config import redact_url
from schemas.fix import Fix
from store import notify
from store.errors import is_unavailable
from store.fixes import FixWriter, latest_fixes

log = logging.getLogger(__name__)

# Validation state is seeded from fixes at most this old (a device silent for longer starts afresh).
_SEED_LOOKBACK_S = 86400.0


def build_pipeline(
    settings: IngestSettings,
    engine: Engine,
    *,
    on_accepted: OnAccepted,
    on_device_message: OnDeviceMessage | None = None,
    on_committed: Callable[[Sequence[Fix]], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> Pipeline:
    """The pipeline with its collaborators (writer, directory, validator, spool), not yet running.
    `on_committed` hears every batch of fixes once the database committed it (ingest.feed), in a thread."""
    spool_dir = Path(settings.spool_dir)
    no_spool = settings.unsafe_disable_safeguard == UNSAFE_DROP_ON_STORE_FAILURE
    directory = DeviceDirectory(
        engine,
        refresh_s=settings.device_refresh_s,
        miss_refresh_s=settings.device_miss_refresh_s,
        register_unknown=settings.register_unknown_devices,
        cache_path=spool_dir / "devices.json",
        clock=clock,
    )
    return Pipeline(
        settings,
        writer=FixWriter(engine) if on_committed is None else CommittedFeed(FixWriter(engine), on_committed),
        directory=directory,
        validator=Validator(settings, clock),
        spool=None if no_spool else Spool(spool_dir, settings.spool_max_bytes),
        on_accepted=on_accepted,
        on_device_message=on_device_message,
        clock=clock,
    )


def mqtt_url_of(settings: IngestSettings) -> str:
    """The broker to subscribe to: OUTPOST_MQTT_URL, or the embedded broker at OUTPOST_MQTT_LISTEN."""
    return settings.mqtt_url or f"mqtt://{settings.mqtt_listen}"


def embedded_source(settings: IngestSettings) -> EmbeddedSource | None:
    """The in-process source for the embedded broker; None only in the test-only negative control
    `broker_ack_on_receipt` (ingest then subscribes to the embedded broker, which PUBACKs on receipt)."""
    if settings.unsafe_disable_safeguard == UNSAFE_BROKER_ACK_ON_RECEIPT:
        return None
    return EmbeddedSource()


async def run_ingest(
    settings: IngestSettings,
    engine: Engine,
    *,
    on_accepted: OnAccepted,
    on_device_message: OnDeviceMessage | None = None,
    clock: Callable[[], float] = time.time,
    stop: asyncio.Event | None = None,
    pipeline: Pipeline | None = None,
    source: EmbeddedSource | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Run ingest (MQTT subscriber, or the embedded broker's in-process `source`; batching, storage, spool)
    until `stop` is set. `on_ready` is called once the broker keeps messages for us: the subscription is
    acknowledged (SUBACK, so the persistent session exists), or the in-process source is serving."""
    stop = stop or asyncio.Event()
    if pipeline is None:
        pipeline = build_pipeline(
            settings, engine, on_accepted=on_accepted, on_device_message=on_device_message, clock=clock
        )
    await pipeline.directory.load_at_start()
    if (bare := pipeline.directory.without_credentials()) and not settings.register_unknown_devices:
        # Typically devices registered before credentials were required: say so once, not per fix.
        log.warning(
            "%d enabled devices have no credentials and are refused until they get them"
            " (POST /v1/devices/{id}/credentials)",
            bare,
        )
    pipeline.seed(await _latest(engine, clock))
    disconnect = asyncio.Event()
    receiver: EmbeddedSource | MqttSubscriber
    subscribed = asyncio.Event()
    if source is not None:
        receiver = source
        receiving = asyncio.create_task(source.serve(pipeline.on_messages, disconnect))
        subscribed.set()
    else:
        receiver = subscriber = _subscriber(settings, pipeline, clock)
        subscribed = subscriber.subscribed
        receiving = asyncio.create_task(subscriber.run(disconnect))
    signalling = asyncio.create_task(
        when_subscribed(subscribed, on_ready, "ingest", "the broker keeps device messages for us")
    )
    # Registry changes made by API replicas in other processes: reload at once, not at the next period.
    listening = asyncio.create_task(notify.listen(engine, pipeline.directory.load, stop))
    pipeline.attach(receiver)
    flushing = asyncio.create_task(pipeline.run(stop))
    log.info(
        "ingest running",
        extra={
            "broker": "in-process" if source is not None else redact_url(mqtt_url_of(settings)),
            "devices": len(pipeline.directory),
            "spool_dir": settings.spool_dir,
        },
    )
    stopping = asyncio.create_task(stop.wait())
    try:
        # A crashed flusher or receiver must not leave a process that looks alive and stores nothing.
        await asyncio.wait({stopping, flushing, receiving}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.set()
        receiver.pause()
        # The last batch is acknowledged before the session closes, so the broker does not resend it.
        with contextlib.suppress(Exception):
            await flushing
        disconnect.set()
        with contextlib.suppress(Exception):
            await receiving
        stopping.cancel()
        signalling.cancel()
        listening.cancel()
        await pipeline.settle()  # no worker thread may still write to the spool when it closes
        pipeline.close()
    for task in (flushing, receiving):
        if not task.cancelled() and task.exception() is not None:
            log.error("ingest failed", exc_info=task.exception())
            raise task.exception()  # type: ignore[misc]
    log.info("ingest stopped")


class BrokerUnreachable(Exception):  # noqa: N818 (reads as a verdict)
    """The configured MQTT broker does not accept connections at start; the message is one line."""


async def check_broker(url: str, timeout_s: float = 5.0) -> None:
    """Raise BrokerUnreachable unless something accepts TCP connections at the broker `url`."""
    address = parse_mqtt_url(url)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(address.host, address.port), timeout_s)
    except (OSError, TimeoutError) as exc:
        why = str(exc) or f"no answer within {timeout_s:g} s"
        raise BrokerUnreachable(
            f"the MQTT broker {redact_url(url)} cannot be reached ({why}); check that it runs, and that "
            "OUTPOST_MQTT_URL names it"
        ) from exc
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


def _subscriber(settings: IngestSettings, pipeline: Pipeline, clock: Callable[[], float]) -> MqttSubscriber:
    return MqttSubscriber(
        mqtt_url_of(settings),
        settings.mqtt_client_id,
        pipeline.on_messages,
        **link_options(settings),
        shared_group=settings.mqtt_shared_group,
        receive_maximum=settings.mqtt_receive_maximum,
        session_expiry_s=settings.mqtt_session_expiry_s,
        clean_session=settings.unsafe_disable_safeguard == UNSAFE_CLEAN_SESSION,
        clock=clock,
    )


async def _latest(engine: Engine, clock: Callable[[], float]) -> list[Fix]:
    since = datetime.fromtimestamp(clock(), UTC) - timedelta(seconds=_SEED_LOOKBACK_S)
    try:
        return await asyncio.to_thread(latest_fixes, engine, since)
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        log.warning("validation state not seeded: database unavailable", extra={"error": str(exc)[:300]})
        return []
