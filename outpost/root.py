"""The composition root: opens storage, builds the parts for a role, starts them and stops them.

It is the one module that wires `ingest` and `dispatch` together (see the import-linter contracts): the
gateway's accepted fixes feed the live picture, the dispatcher's messages to devices go out through the
gateway's channel, and device replies and alarms come back to the incident loop. It decides nothing else.
Roles: `all` is everything in one process (with the embedded MQTT broker when no OUTPOST_MQTT_URL is set);
`ingest` and `api` are the production roles, run separately and scaled on the broker and the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Literal

from sqlalchemy import Engine

from dispatch.app import ApiContext, ApiPlugin, init_app
from dispatch.clock import Clock, SystemClock
from dispatch.events import EventBus
from dispatch.field.desk import FieldDesk
from dispatch.field.plugin import FieldPlugin
from dispatch.fleet import Fleet
from dispatch.follow import follow_database
from dispatch.incidents.plugin import IncidentsPlugin
from dispatch.incidents.service import IncidentService
from dispatch.keys import no_broker_to_tell
from dispatch.leader import LeaderIncidentsPlugin, Leadership
from dispatch.replica_events import ReplicaEvents
from dispatch.reports.plugin import ReportsPlugin
from dispatch.routes.health import GATES_KEY, Gates
from dispatch.routes.heatmap import presence_settings
from ingest import http as ingest_http
from ingest.broker import EmbeddedBroker
from ingest.broker_access import BrokerAccess
from ingest.broker_registry import BrokerRegistry, check_broker_admin
from ingest.channel import DeviceChannel
from ingest.embedded import EmbeddedSource
from ingest.pipeline import Pipeline
from ingest.relay import relay_device_messages
from ingest.runner import build_pipeline, check_broker, embedded_source, mqtt_url_of, run_ingest
from ingest.settings import IngestSettings
from outpost.device_routing import route_device_messages
from outpost.ingest_app import serve_app, serve_ingest_http
from outpost.open_mode import check_open_mode
from outpost.report_rules import rules_of
from outpost.scale import (
    broker_messages,
    follow_feed,
    follow_replicas,
    incident_leadership,
    start_feed_publisher,
)
from outpost.settings import Settings
from outpost.supervise import Supervisor, stop_on_signals, supervised
from outpost.tls_checks import check_tls, embedded_tls
from schemas.config import redact_url
from store.engine import open_engine
from store.maintenance import maintain_storage
from store.migrate import MigrationReport, migrate
from store.notify import notify
from store.presence import keep_presence

log = logging.getLogger(__name__)

Role = Literal["all", "ingest", "api"]
SUBSCRIBED = "ingest_subscribed"  # the readiness gate: the broker acknowledged ingest's subscription
RELAYING = "device_relay_subscribed"  # the api role's gate: it hears the devices' replies and alarms


def run_migrate(settings: Settings) -> MigrationReport:
    """Apply the schema to the configured database."""
    engine = open_engine(settings.store.database_url, pool_size=1)
    try:
        return migrate(engine, settings.store)
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Running:
    """Where a started Outpost can be reached (printed by the CLI, used by the demo and tests)."""

    http_url: str
    mqtt_url: str
    embedded_broker: bool
    storage: str


async def serve(
    settings: Settings,
    role: Role = "all",
    *,
    clock: Clock | None = None,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[Running], None] | None = None,
) -> None:
    """Run Outpost in `role` until `stop` is set (or SIGINT/SIGTERM when `stop` is None)."""
    if role != "api":  # the roles that face devices: the broker and the phones' HTTP endpoints
        check_open_mode(settings.ingest, settings.api.http_host)
    check_broker_admin(settings.ingest)
    http_tls = check_tls(settings.api, settings.ingest)
    clock = clock or SystemClock()
    stop = stop or stop_on_signals()
    engine = open_engine(settings.store.database_url, pool_size=settings.store.database_pool_size)
    try:
        report = await asyncio.to_thread(migrate, engine, settings.store)
        async with contextlib.AsyncExitStack() as stack:
            broker_url, broker, source = await _broker(stack, settings.ingest, role)
            embedded = broker is not None
            if not embedded:
                await check_broker(broker_url)  # one line and exit 2, rather than retrying unseen forever
            gates = Gates()
            # The `api` role does not hold ingest's session, but must hear the replies to its offers.
            gates.require(RELAYING if role == "api" else SUBSCRIBED)
            # amqtt speaks MQTT 3.1.1 only; an external broker gets MQTT 5 (shared subscriptions) by default.
            protocol = "3.1.1" if embedded else settings.ingest.mqtt_protocol
            # Outpost's own clients log in to the embedded broker with this process's service password, and
            # trust exactly its certificate (with TLS on; an external broker's: OUTPOST_MQTT_TLS_CA).
            own_url = broker.service_url if broker is not None else broker_url
            trusted = settings.ingest.mqtt_tls_cert if embedded else settings.ingest.mqtt_tls_ca
            ingest_settings = replace(
                settings.ingest, mqtt_url=own_url, mqtt_protocol=protocol, mqtt_tls_ca=trusted
            )
            supervisor = await stack.enter_async_context(supervised())
            if role == "ingest":
                http_url = await _serve_ingest(
                    stack,
                    supervisor,
                    settings,
                    ingest_settings,
                    engine,
                    clock,
                    stop,
                    (broker, source),
                    (gates, http_tls),
                )
            else:
                parts = _Parts(
                    stack, supervisor, settings, ingest_settings, engine, clock, stop, gates, http_tls
                )
                http_url = await parts.serve_api(role, broker, source)
            # One role keeps the store: partitions ahead, retention of fixes and dead letters.
            if role != "api":
                supervisor.run(maintain_storage(engine, settings.store), "storage-maintenance")
                supervisor.run(keep_presence(engine, presence_settings(settings.api)), "patrol-presence")
            running = Running(http_url, broker_url, embedded, _storage_label(report))
            supervisor.run(_announce(running, role, gates, on_ready), "announce-ready")
            await supervisor.wait_until(stop)
    finally:
        engine.dispose()


async def _announce(
    running: Running, role: Role, gates: Gates, on_ready: Callable[[Running], None] | None
) -> None:
    """Ready once the broker keeps device messages for us (the subscription acknowledged): before that, a
    fleet told "ready" would publish into a session that does not exist yet, and lose those fixes."""
    await gates.all_open()
    log.info(
        "outpost ready",
        extra={
            "role": role,
            "http": running.http_url,
            "mqtt": redact_url(running.mqtt_url),
            "storage": running.storage,
        },
    )
    if on_ready is not None:
        on_ready(running)


async def _broker(
    stack: contextlib.AsyncExitStack, ingest: IngestSettings, role: Role
) -> tuple[str, EmbeddedBroker | None, EmbeddedSource | None]:
    """The broker URL to use, starting the embedded one when no external broker is configured; with it, the
    in-process source ingest reads device messages from (acknowledged only once durable)."""
    if ingest.mqtt_url or role == "api":
        return mqtt_url_of(ingest), None, None
    source = embedded_source(ingest)
    access = BrokerAccess(
        open_mode=ingest.register_unknown_devices, service_client_ids=(ingest.mqtt_client_id,)
    )
    broker = EmbeddedBroker(ingest.mqtt_listen, access=access, ingest=source, tls=embedded_tls(ingest))
    await stack.enter_async_context(broker)
    return broker.url, broker, source


def _admit_devices(broker: EmbeddedBroker | None, pipeline: Pipeline) -> Callable[[], Awaitable[object]]:
    """The embedded broker checks devices against the pipeline's directory; returns what the API awaits
    after a device change: the reload, then the revoked devices' sessions dropped."""
    if broker is None:
        return pipeline.directory.load
    broker.access.attach(pipeline.directory, pipeline.settings.http_auth_cache_s)

    async def reload() -> None:
        await pipeline.directory.load()
        broker.revoke_changed()

    return reload


Change = Callable[[], Awaitable[object]]


def _then(first: Change, second: Change) -> Change:
    """`first`, then `second`: what the API awaits after a device change."""

    async def both() -> None:
        await first()
        await second()

    return both


async def _serve_ingest(
    stack: contextlib.AsyncExitStack,
    supervisor: Supervisor,
    settings: Settings,
    ingest_settings: IngestSettings,
    engine: Engine,
    clock: Clock,
    stop: asyncio.Event,
    embedded: tuple[EmbeddedBroker | None, EmbeddedSource | None],
    http: tuple[Gates, ssl.SSLContext | None],
) -> str:
    """The `ingest` role: the pipeline with no live picture, and its HTTP side (`http`: its readiness gates
    and TLS context)."""
    broker, source = embedded
    gates, tls = http
    feed = start_feed_publisher(stack, supervisor, ingest_settings)
    pipeline = build_pipeline(
        ingest_settings, engine, on_accepted=_ignore, on_committed=None if feed is None else feed.committed
    )
    _admit_devices(broker, pipeline)  # the `api` role's changes arrive by NOTIFY; the broker sweeps each 1 s
    ingest = run_ingest(
        ingest_settings,
        engine,
        on_accepted=_ignore,
        stop=stop,
        source=source,
        pipeline=pipeline,
        on_ready=lambda: gates.open(SUBSCRIBED),
    )
    supervisor.run(ingest, "ingest", critical=True)
    return await serve_ingest_http(stack, settings.api, pipeline, engine, clock, gates, tls)


@dataclass
class _Parts:
    """What the `all` and `api` roles build: the live picture, the incident loop and the API."""

    stack: contextlib.AsyncExitStack
    supervisor: Supervisor
    settings: Settings
    ingest_settings: IngestSettings
    engine: Engine
    clock: Clock
    stop: asyncio.Event
    gates: Gates
    http_tls: ssl.SSLContext | None  # None: plain HTTP

    async def serve_api(
        self, role: Role, broker: EmbeddedBroker | None, source: EmbeddedSource | None
    ) -> str:
        settings, engine, supervisor = self.settings, self.engine, self.supervisor
        sys.setswitchinterval(settings.api.thread_switch_ms / 1000)
        mqtt = self.ingest_settings
        channel = DeviceChannel(mqtt.mqtt_url, f"{mqtt.mqtt_client_id}-notify", ca_file=mqtt.mqtt_tls_ca)
        bus = EventBus(
            self.clock,
            coalesce_s=settings.api.stream_coalesce_s,
            max_queued=settings.api.stream_max_queued,
            replay_max=settings.api.stream_replay_events,
        )
        # api replicas: what only the leader makes (incidents, alarms, roll calls) reaches the others'
        # streams too; the patrol events every replica makes from its own picture go out on MQTT once, from
        # the leader.
        replicas = ReplicaEvents(bus) if role == "api" else None
        leadership: Leadership | None = None
        bus.device_sink = lambda event: channel.send(
            broker_messages(event, leadership, replicas), str(event.get("type"))
        )
        fleet = Fleet(engine, self.clock, settings.api)
        feed = role == "api" and settings.api.api_follow == "feed"
        if feed:  # subscribed before the snapshot loads: nothing committed meanwhile is missed
            args = (self.ingest_settings, settings.api, engine, fleet, self.clock, self.stop)
            await follow_feed(supervisor, *args)
        else:
            await fleet.rebuild(engine, settings.api.index_lookback_s)
        incidents = IncidentService(engine, fleet, bus, self.clock, settings.dispatch, settings.api)
        desk = FieldDesk(engine, fleet, bus, self.clock, settings.field, channel.send)
        incidents_plugin = IncidentsPlugin(incidents)
        if role == "api":  # replicas: one leads the incident loop, the others read (dispatch.leader)
            leadership = incident_leadership(engine, self.clock, settings.dispatch, settings.api.http_port)
            incidents_plugin = LeaderIncidentsPlugin(incidents, leadership, on_deposed=self.stop.set)
        plugins: list[ApiPlugin] = [
            incidents_plugin,
            FieldPlugin(desk, leadership),
            ReportsPlugin(rules_of(settings), leadership=leadership),
        ]
        on_device_message = route_device_messages(supervisor, incidents, fleet, desk, channel, leadership)
        # api role: the ingest workers of other processes hear of registry changes by NOTIFY (store.notify).
        devices_changed: Callable[[], Awaitable[object]] = partial(asyncio.to_thread, notify, engine)
        fleet.duty_changed = devices_changed
        if role == "all":
            pipeline = build_pipeline(
                self.ingest_settings,
                engine,
                on_accepted=fleet.apply_soon,  # small batches now, large ones in slices: bounded loop stalls
                on_device_message=on_device_message,
            )
            plugins.append(ingest_http.IngestRoutes(pipeline))
            # A device disabled, re-bound or given new credentials through this API is refused at once.
            devices_changed = _admit_devices(broker, pipeline)
            fleet.duty_changed = devices_changed  # off duty or back: private from that answer on
            ingest = run_ingest(
                self.ingest_settings,
                engine,
                on_accepted=fleet.apply_soon,
                pipeline=pipeline,
                stop=self.stop,
                source=source,
                on_ready=lambda: self.gates.open(SUBSCRIBED),
            )
            supervisor.run(ingest, "ingest", critical=True)
        else:
            if not feed:
                poll = follow_database(engine, fleet, self.clock, max_fix_age_s=settings.api.max_fix_age_s)
                supervisor.run(poll, "follow-database")
            assert replicas is not None  # the api role's
            follow_replicas(supervisor, mqtt, engine, fleet, replicas, self.stop)
            # The `ingest` role stores fixes; this process hears the devices' replies and alarms itself.
            relay = relay_device_messages(
                self.ingest_settings,
                on_device_message,
                known=fleet.device_enabled,
                stop=self.stop,
                on_ready=lambda: self.gates.open(RELAYING),
            )
            supervisor.run(relay, "device-relay")
        issued = no_broker_to_tell
        if mqtt.mqtt_admin_url:  # the external broker's device logins follow the registry
            logins = BrokerRegistry(mqtt.mqtt_admin_url, engine, ca_file=mqtt.mqtt_tls_ca)
            supervisor.run(logins.run(self.stop), "broker-logins")
            devices_changed, issued = _then(devices_changed, logins.changed), logins.issued
        context = ApiContext(engine, fleet, bus, self.clock, settings.api, devices_changed, issued)
        app = init_app(context, plugins)
        app[GATES_KEY] = self.gates
        supervisor.run(channel.connect(), "device-channel")  # the API does not wait for the broker
        self.stack.push_async_callback(channel.close)
        return await serve_app(self.stack, app, settings.api, self.http_tls)


def _storage_label(report: MigrationReport) -> str:
    if report.flavour.dialect == "sqlite":
        return "sqlite"
    return "postgresql+timescaledb" if report.timescaledb else "postgresql (native partitions)"


def _ignore(_: object) -> None:
    """The ingest role keeps no live picture."""
