"""The composition root: reads the settings once, opens storage, and wires ingest, the fleet and the API.

This is the one module allowed to import both `ingest` and `dispatch` (see the import-linter contracts).
Roles: `run` is everything in one process (with the embedded MQTT broker when no OUTPOST_MQTT_URL is set);
`ingest` and `api` are the production roles, run separately and scaled on the broker and the database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from aiohttp import web
from sqlalchemy import Engine

from dispatch.app import ApiContext, ApiPlugin, init_app
from dispatch.auth import TokenAuthority, auth_middleware
from dispatch.clock import Clock, SystemClock
from dispatch.events import EventBus
from dispatch.fleet import Fleet
from dispatch.follow import follow_database
from dispatch.incidents.alarms import raise_alarm
from dispatch.incidents.notify import device_messages, outcome_message
from dispatch.incidents.plugin import IncidentsPlugin
from dispatch.incidents.service import DeviceReply, IncidentService
from dispatch.problems import problems_middleware
from dispatch.settings import ApiSettings, DispatchSettings
from ingest import http as ingest_http
from ingest.broker import EmbeddedBroker
from ingest.embedded import EmbeddedSource
from ingest.mqtt.publisher import Publisher
from ingest.pipeline import OnDeviceMessage, Pipeline
from ingest.relay import relay_device_messages
from ingest.runner import build_pipeline, embedded_source, mqtt_url_of, run_ingest
from ingest.settings import IngestSettings
from schemas.config import load, read_sources, redact_url
from schemas.storage import partitions
from schemas.storage.engine import open_engine
from schemas.storage.migrate import MigrationReport, migrate
from schemas.storage.settings import StoreSettings

log = logging.getLogger(__name__)

Role = Literal["all", "ingest", "api"]
T = TypeVar("T")

# Storage maintenance runs this often (s): partitions are made days ahead, so hourly is plenty.
_MAINTENANCE_EVERY_S = 3600.0


@dataclass(frozen=True)
class Settings:
    """Every concern's settings, read once at start."""

    store: StoreSettings
    ingest: IngestSettings
    api: ApiSettings
    dispatch: DispatchSettings


SETTINGS_CLASSES = (StoreSettings, IngestSettings, ApiSettings, DispatchSettings)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read OUTPOST_* variables (and the OUTPOST_CONFIG TOML file) into frozen settings."""
    sources = read_sources(environ)
    return Settings(
        store=load(StoreSettings, sources),
        ingest=load(IngestSettings, sources),
        api=load(ApiSettings, sources),
        dispatch=load(DispatchSettings, sources),
    )


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
    clock = clock or SystemClock()
    stop = stop or _stop_on_signals()
    engine = open_engine(settings.store.database_url, pool_size=settings.store.database_pool_size)
    try:
        report = await asyncio.to_thread(migrate, engine, settings.store)
        async with contextlib.AsyncExitStack() as stack:
            broker_url, embedded, source = await _broker(stack, settings.ingest, role)
            # amqtt speaks MQTT 3.1.1 only; an external broker gets MQTT 5 (shared subscriptions) by default.
            protocol = "3.1.1" if embedded else settings.ingest.mqtt_protocol
            ingest_settings = replace(settings.ingest, mqtt_url=broker_url, mqtt_protocol=protocol)
            tasks = _Tasks()
            stack.push_async_callback(tasks.cancel_all)
            if role == "ingest":
                pipeline = build_pipeline(ingest_settings, engine, on_accepted=_ignore)
                tasks.start(
                    run_ingest(
                        ingest_settings,
                        engine,
                        on_accepted=_ignore,
                        stop=stop,
                        source=source,
                        pipeline=pipeline,
                    ),
                    "ingest",
                )
                http_url = await _serve_ingest_http(stack, settings.api, pipeline, engine, clock)
            else:
                http_url = await _serve_api(
                    stack, tasks, settings, ingest_settings, engine, clock, role, stop, source
                )
            # One role keeps the store: partitions ahead, retention of fixes and dead letters.
            if role != "api":
                tasks.start(_maintain_storage(engine, settings.store), "storage-maintenance")
            running = Running(http_url, broker_url, embedded, _storage_label(report))
            log.info(
                "outpost ready",
                extra={
                    "role": role,
                    "http": http_url,
                    "mqtt": redact_url(broker_url),
                    "storage": running.storage,
                },
            )
            if on_ready is not None:
                on_ready(running)
            await tasks.wait_until(stop)
    finally:
        engine.dispose()


async def _broker(
    stack: contextlib.AsyncExitStack, ingest: IngestSettings, role: Role
) -> tuple[str, bool, EmbeddedSource | None]:
    """The broker URL to use, starting the embedded one when no external broker is configured; with it, the
    in-process source ingest reads device messages from (acknowledged only once durable)."""
    if ingest.mqtt_url or role == "api":
        return mqtt_url_of(ingest), False, None
    source = embedded_source(ingest)
    broker = await stack.enter_async_context(EmbeddedBroker(ingest.mqtt_listen, ingest=source))
    return broker.url, True, source


async def _serve_api(
    stack: contextlib.AsyncExitStack,
    tasks: _Tasks,
    settings: Settings,
    ingest_settings: IngestSettings,
    engine: Engine,
    clock: Clock,
    role: Role,
    stop: asyncio.Event,
    source: EmbeddedSource | None = None,
) -> str:
    notifier = _Notifier(ingest_settings.mqtt_url, f"{ingest_settings.mqtt_client_id}-notify")
    bus = EventBus(
        clock,
        coalesce_s=settings.api.stream_coalesce_s,
        max_queued=settings.api.stream_max_queued,
        device_sink=notifier.sink,
    )
    fleet = Fleet(engine, clock, settings.api)
    await fleet.rebuild(engine, settings.api.index_lookback_s)
    incidents = IncidentService(engine, fleet, bus, clock, settings.dispatch, settings.api)
    plugins: list[ApiPlugin] = [IncidentsPlugin(incidents)]
    if role == "all":
        pipeline = build_pipeline(
            ingest_settings,
            engine,
            on_accepted=fleet.apply_soon,  # small batches now, large ones in slices: bounded loop stalls
            on_device_message=_device_messages(incidents, fleet, tasks, notifier),
        )
        plugins.append(_IngestHttp(pipeline))
        tasks.start(
            run_ingest(
                ingest_settings,
                engine,
                on_accepted=fleet.apply_soon,
                pipeline=pipeline,
                stop=stop,
                source=source,
            ),
            "ingest",
        )
    else:
        follower = follow_database(engine, fleet, clock, max_fix_age_s=settings.api.max_fix_age_s)
        tasks.start(follower, "follow-database")
        # The `ingest` role stores fixes; this process hears the devices' replies and alarms itself.
        tasks.start(
            relay_device_messages(
                ingest_settings,
                _device_messages(incidents, fleet, tasks, notifier),
                known=lambda device_id: _enabled(fleet, device_id),
                stop=stop,
            ),
            "device-relay",
        )
    app = init_app(
        ApiContext(engine=engine, fleet=fleet, bus=bus, clock=clock, settings=settings.api), plugins
    )
    tasks.start(notifier.connect(), "device-notifier")  # the API does not wait for the broker
    stack.push_async_callback(notifier.close)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, settings.api.http_host, settings.api.http_port)
    await site.start()
    return _site_url(runner, settings.api.http_host)


async def _serve_ingest_http(
    stack: contextlib.AsyncExitStack, api: ApiSettings, pipeline: Pipeline, engine: Engine, clock: Clock
) -> str:
    """The ingest role's HTTP side: phones' endpoints (/ingest/…), /healthz, and /metrics behind a token."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "role": "ingest"})

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    authority = TokenAuthority(engine, clock, api.token_cache_s)
    app = web.Application(
        client_max_size=pipeline.settings.max_payload_bytes + 1024,
        middlewares=[problems_middleware, auth_middleware(authority)],
    )
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.add_routes(ingest_http.routes(pipeline))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    await web.TCPSite(runner, api.http_host, api.http_port).start()
    return _site_url(runner, api.http_host)


def _site_url(runner: web.AppRunner, host: str) -> str:
    port = next(iter(runner.addresses))[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://{shown}:{port}"


class _IngestHttp:
    """Ingest's device endpoints (/ingest/…) as an API plugin."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.routes = ingest_http.routes(pipeline)
        self.openapi_paths = ingest_http.OPENAPI_PATHS

    def setup(self, app: web.Application) -> None:
        """Nothing to attach: the pipeline runs under the ingest task."""


class _Notifier:
    """Offers to the units' devices over MQTT. It connects in the background, retrying, so a broker that is
    down when Outpost starts delays the notifications instead of silencing them for good; once connected, the
    publisher reconnects by itself. Offers also reach consoles on the live stream and time out as usual."""

    def __init__(self, url: str, client_id: str) -> None:
        self._url, self._client_id = url, client_id
        self._publisher: Publisher | None = None

    async def connect(self) -> None:
        delay_s = 1.0
        while self._publisher is None:
            publisher = Publisher(self._url, client_id=self._client_id)
            try:
                await publisher.connect(timeout_s=5.0)
            except (OSError, TimeoutError) as exc:
                log.warning("device notifications wait for the broker (%s); retrying in %.0f s", exc, delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 30.0)
                continue
            self._publisher = publisher

    def sink(self, event: dict[str, object]) -> None:
        self.send(device_messages(event), str(event.get("type")))

    def send(self, messages: list[tuple[str, bytes]], what: str) -> None:
        if not messages:
            return
        if self._publisher is None:
            log.warning("broker unreachable: %s not sent to the devices", what)
            return
        for topic, payload in messages:
            self._publisher.publish(topic, payload, qos=1)

    async def close(self) -> None:
        if self._publisher is not None:
            await self._publisher.close()


def _device_messages(
    incidents: IncidentService, fleet: Fleet, tasks: _Tasks, notifier: _Notifier
) -> OnDeviceMessage:
    """Replies to offers and SOS alarms arriving from devices over MQTT or HTTP; the running task of each
    is returned so HTTP can tell the device its outcome, which also goes to the device over MQTT."""

    def handle(device_id: str, kind: str, payload: bytes) -> asyncio.Task[DeviceReply] | None:
        if kind == "reply":
            outcome = incidents.handle_device_reply(device_id, payload)
        elif kind == "alarm":
            outcome = raise_alarm(incidents, fleet, device_id, payload)
        else:
            return None
        return tasks.start(_answered(device_id, kind, outcome, notifier), f"{kind}-{device_id}")

    return handle


async def _answered(
    device_id: str, kind: str, outcome: Awaitable[DeviceReply], notifier: _Notifier
) -> DeviceReply:
    """The outcome, sent to the device's offers topic and logged when refused."""
    reply = await outcome
    if not reply.ok:
        log.warning("device %s refused: %s", kind, reply.detail, extra={"device_id": device_id})
    message = outcome_message(device_id, kind, reply.ok, reply.detail, reply.offer_id)
    notifier.send([message], f"{kind} outcome")
    return reply


def _enabled(fleet: Fleet, device_id: str) -> bool:
    device = fleet.device(device_id)
    return device is not None and device.enabled


async def _maintain_storage(engine: Engine, store: StoreSettings) -> None:
    """Now and hourly: partitions ahead and expired ones dropped (PostgreSQL), expired rows deleted (SQLite),
    old dead letters deleted (every store; TimescaleDB's own jobs expire its chunks)."""
    while True:
        try:
            await asyncio.to_thread(partitions.run_maintenance, engine, store, datetime.now(UTC))
        except Exception:
            log.exception("storage maintenance failed; retrying in an hour")
        await asyncio.sleep(_MAINTENANCE_EVERY_S)


TOOLS = {
    "simulate": "publish a simulated or replayed fleet to any MQTT broker (San Francisco roads, random walk, "
    "or Cabspotting-style traces)",
    "loadtest": "drive a running Outpost with a device fleet and a dispatcher load; report stored, lost, "
    "duplicated, rejected and latency percentiles",
}


def add_tool_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    """The options of one device-side tool."""
    if name == "simulate":
        from ingest.simulate.cli import add_simulate_arguments

        add_simulate_arguments(parser)
    else:
        from ingest.loadtest.cli import add_loadtest_arguments

        add_loadtest_arguments(parser)


async def run_tool(name: str, args: argparse.Namespace) -> int:
    """Run one device-side tool with its parsed options."""
    if name == "simulate":
        from ingest.simulate.cli import run_simulate

        return await run_simulate(args)
    from ingest.loadtest.cli import run_loadtest

    return await run_loadtest(args)


def _storage_label(report: MigrationReport) -> str:
    if report.flavour.dialect == "sqlite":
        return "sqlite"
    return "postgresql+timescaledb" if report.timescaledb else "postgresql (native partitions)"


def _ignore(_: object) -> None:
    """The ingest role keeps no live picture."""


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


class _Tasks:
    """Background tasks of one run: a failure of any long-running one stops the whole process."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()
        self.failed: asyncio.Future[BaseException | None] | None = None

    def start(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        log.error("task %s failed", task.get_name(), exc_info=task.exception())
        if self.failed is not None and not self.failed.done() and task.get_name() in ("ingest",):
            self.failed.set_result(task.exception())

    async def wait_until(self, stop: asyncio.Event) -> None:
        self.failed = asyncio.get_running_loop().create_future()
        stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        await asyncio.wait({stopping, self.failed}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        stop.set()
        ingest = [t for t in self._tasks if t.get_name() == "ingest"]
        if ingest:  # ingest finishes its last batch and acknowledges it before the session closes
            await asyncio.wait(ingest, timeout=30)
        if self.failed.done():
            raise RuntimeError("ingest failed") from self.failed.result()
        self.failed.cancel()

    async def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# ---------------------------------------------------------------------------------------------------- demo
@dataclass(frozen=True)
class DemoOptions:
    """`outpost demo` options."""

    units: int = 30
    speedup: float = 10.0
    traces: str | None = None
    duration_s: float = 0.0  # 0: until Ctrl-C
    auxiliary_share: float = 0.3  # share of units that are auxiliaries (P1 needs police + auxiliary)


async def run_demo(
    settings: Settings,
    options: DemoOptions,
    *,
    stop: asyncio.Event | None = None,
    out: Callable[[str], None] = print,
) -> None:
    """The embedded default plus a simulated San Francisco: units on the road network and real calls."""
    from pathlib import Path

    import aiohttp

    from dispatch.demo import CommandRoom, DemoCall
    from ingest.simulate.incidents import feed_from_now
    from ingest.simulate.run import SimulateOptions, make_source, simulate
    from schemas.storage import access

    stop = stop or _stop_on_signals()
    # Simulated units register on first contact. Their fixes carry wall-clock times while they drive
    # `speedup` times faster, so the impossible-speed rule is scaled by the same factor.
    demo_ingest = replace(
        settings.ingest,
        register_unknown_devices=True,
        max_speed_mps=settings.ingest.max_speed_mps * max(1.0, options.speedup),
    )
    demo_settings = replace(settings, ingest=demo_ingest)
    ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(serve(demo_settings, "all", stop=stop, on_ready=ready.set_result))
    running = await _first(ready, server)
    token = await asyncio.to_thread(_demo_token, settings.store.database_url, access)
    sim_options = SimulateOptions(
        mqtt_url=running.mqtt_url,
        source="traces" if options.traces else "roads",
        devices=options.units,
        speedup=options.speedup,
        traces=Path(options.traces) if options.traces else None,
        client_id="outpost-demo-fleet",
    )
    source = make_source(sim_options)
    drive_to = getattr(source, "send_to", None)
    release = getattr(source, "release", None)
    _print_demo_banner(out, running, token, options)
    async with aiohttp.ClientSession() as http:
        room = CommandRoom(
            http,
            running.http_url,
            token,
            drive_to=drive_to or (lambda unit, lon, lat: False),
            release=release or (lambda unit: None),
            handling_s=120.0 / options.speedup,
            answer_s=4.0 / options.speedup,
        )
        feed = feed_from_now(options.speedup)

        async def calls() -> None:
            async for call in feed.follow():
                rec = call.incident
                await room.report(
                    DemoCall(call.ref, rec.lon, rec.lat, rec.category, rec.descript, rec.address)
                )

        background = [
            asyncio.create_task(simulate(sim_options, source=source), name="demo-fleet"),
            asyncio.create_task(room.respond(), name="demo-room"),
            asyncio.create_task(calls(), name="demo-calls"),
            asyncio.create_task(_assign_kinds(http, running.http_url, token, options), name="demo-kinds"),
        ]
        try:
            await _summarise(http, running.http_url, token, room, options, stop, out)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            stop.set()
            await server


async def _first(ready: asyncio.Future[Running], server: asyncio.Task[None]) -> Running:
    both: set[asyncio.Future[Any]] = {ready, server}
    await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        server.result()  # raises why the server could not start
        raise RuntimeError("Outpost stopped before it was ready")
    return ready.result()


def _demo_token(database_url: str, access: Any) -> str:
    engine = open_engine(database_url, pool_size=1)
    try:
        _, token = access.create_token(engine, role="admin", name="demo", now=datetime.now(UTC))
        return str(token)
    finally:
        engine.dispose()


def _print_demo_banner(
    out: Callable[[str], None], running: Running, token: str, options: DemoOptions
) -> None:
    fleet = f"replaying {options.traces}" if options.traces else f"{options.units} patrol units on SF roads"
    out(f"Outpost demo: {fleet}, real SFPD calls of 30 May 2008, {options.speedup:g}x faster than real time")
    out(f"  API            {running.http_url}   (storage: {running.storage})")
    out(f"  MQTT           {redact_url(running.mqtt_url)}   (point mosquitto_pub or OwnTracks here)")
    out(f"  OpenAPI        {running.http_url}/openapi.json")
    out(f"  live stream    curl -N -H 'Authorization: Bearer {token}' {running.http_url}/v1/stream")
    out(
        "  nearest unit   curl -H 'Authorization: Bearer " + token + "' "
        f"'{running.http_url}/v1/units/nearest?lon=-122.4194&lat=37.7793&k=3'"
    )
    out("Ctrl-C stops the demo; the data stays in ./outpost-data/.")


async def _assign_kinds(http: Any, base: str, token: str, options: DemoOptions) -> None:
    """Make a share of the registered units auxiliaries, as a community patrol mixes both."""
    done: set[str] = set()
    headers = {"Authorization": f"Bearer {token}"}
    every = max(1, round(1 / options.auxiliary_share)) if options.auxiliary_share > 0 else 0
    while every:
        async with http.get(f"{base}/v1/units", params={"limit": "1000"}, headers=headers) as resp:
            units = (await resp.json()).get("units", []) if resp.status == 200 else []
        for i, unit in enumerate(sorted(u["id"] for u in units)):
            if unit not in done and i % every == every - 1:
                async with http.patch(f"{base}/v1/units/{unit}", json={"kind": "auxiliary"}, headers=headers):
                    done.add(unit)
        await asyncio.sleep(5.0)


async def _summarise(
    http: Any,
    base: str,
    token: str,
    room: Any,
    options: DemoOptions,
    stop: asyncio.Event,
    out: Callable[[str], None],
) -> None:
    from dispatch.demo import snapshot, summary_line

    started = datetime.now(UTC)
    last_fixes, last_t = 0.0, time.monotonic()
    deadline = time.monotonic() + options.duration_s if options.duration_s > 0 else None
    while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=2.0)
        try:
            snap = await snapshot(http, base, token)
        except Exception as exc:  # the summary must never bring the demo down
            log.debug("summary failed: %s", exc)
            continue
        now_t = time.monotonic()
        rate = (snap.fixes_stored - last_fixes) / max(now_t - last_t, 1e-6)
        last_fixes, last_t = snap.fixes_stored, now_t
        out(summary_line(snap, room.stats, rate, started, datetime.now(UTC)))
