"""`outpost demo`: Outpost on the embedded default, with the simulated San Francisco scenario playing
against it over MQTT and HTTP (sim.demo.scenario)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Collection
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from outpost.root import Running, serve
from outpost.settings import Settings
from outpost.supervise import stop_on_signals
from schemas.config import ConfigError
from sim.demo.scenario import DemoOptions, Target, play
from store import access
from store.engine import open_engine

__all__ = ["DemoOptions", "run_demo"]


async def run_demo(
    settings: Settings,
    options: DemoOptions,
    *,
    given: Collection[str] = (),
    stop: asyncio.Event | None = None,
    out: Callable[[str], None] = print,
) -> None:
    """The embedded default plus a simulated San Francisco: units on the road network and real calls.

    `given` names the settings the user set (lower-case, as `read_sources` returns them): a default port
    that another program holds is swapped for a free one, a port the user chose is not."""
    if settings.api.http_tls_cert or settings.ingest.mqtt_tls_cert:
        raise ConfigError(
            "outpost demo runs on loopback without TLS (its simulated devices trust no certificate): unset "
            "OUTPOST_HTTP_TLS_CERT/KEY and OUTPOST_MQTT_TLS_CERT/KEY for it"
        )
    stop = stop or stop_on_signals()
    settings = free_default_ports(settings, given, out)
    # Simulated units register on first contact. Their fixes carry wall-clock times while they drive
    # `speedup` times faster, so the impossible-speed rule is scaled by the same factor.
    demo_ingest = replace(
        settings.ingest,
        register_unknown_devices=True,
        max_speed_mps=settings.ingest.max_speed_mps * max(1.0, options.speedup),
    )
    # The patrol watch's waits follow the demo's pace too, so alerts, gaps and roll calls show in minutes.
    pace = max(1.0, options.speedup)
    demo_api = replace(
        settings.api,
        out_of_grid_dwell_s=settings.api.out_of_grid_dwell_s / pace,
        coverage_gap_s=settings.api.coverage_gap_s / pace,
        device_offline_min_s=settings.api.device_offline_min_s / pace,
        device_offline_max_s=settings.api.device_offline_max_s / pace,
    )
    demo_field = replace(settings.field, rollcall_late_s=settings.field.rollcall_late_s / pace)
    demo_settings = replace(settings, ingest=demo_ingest, api=demo_api, field=demo_field)
    ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(serve(demo_settings, "all", stop=stop, on_ready=ready.set_result))
    running = await _first(ready, server)
    try:
        simulator, user = await asyncio.to_thread(_demo_tokens, settings.store.database_url)
        target = Target(running.http_url, running.mqtt_url, running.storage, simulator, user)
        await play(target, options, stop, out)
    finally:
        stop.set()
        await server


async def _first(ready: asyncio.Future[Running], server: asyncio.Task[None]) -> Running:
    both: set[asyncio.Future[Any]] = {ready, server}
    await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        server.result()  # raises why the server could not start
        raise RuntimeError("Outpost stopped before it was ready")
    return ready.result()


def _demo_tokens(database_url: str) -> tuple[str, str]:
    """One token for the simulated officers and dispatcher, one for the person watching: the audit log
    tells their actions apart."""
    engine = open_engine(database_url, pool_size=1)
    try:
        now = datetime.now(UTC)
        _, simulator = access.create_token(engine, role="admin", name="demo-simulator", now=now)
        _, user = access.create_token(engine, role="admin", name="demo-user", now=now)
        return str(simulator), str(user)
    finally:
        engine.dispose()


def free_default_ports(settings: Settings, given: Collection[str], out: Callable[[str], None]) -> Settings:
    """The demo is self-contained: the embedded broker's or the API's default port, when another program
    holds it (a Mosquitto on 1883, a web server on 8080), is replaced by a free one, and said so. A port set
    in OUTPOST_MQTT_LISTEN or OUTPOST_HTTP_PORT is kept: if it is taken, start-up fails in one line."""
    ingest, api = settings.ingest, settings.api
    if not ingest.mqtt_url and "mqtt_listen" not in given:
        host, _, port = ingest.mqtt_listen.rpartition(":")
        if not _can_listen(host.strip("[]"), int(port)):
            free = _free_port(host.strip("[]"))
            ingest = replace(ingest, mqtt_listen=f"{host}:{free}")
            out(f"port {port} is taken (another MQTT broker?): the demo's broker listens on {host}:{free}")
    if "http_port" not in given and api.http_port and not _can_listen(api.http_host, api.http_port):
        api = replace(api, http_port=_free_port(api.http_host))
        out(f"port {settings.api.http_port} is taken: the demo's API listens on port {api.http_port}")
    return replace(settings, ingest=ingest, api=api)


def _can_listen(host: str, port: int) -> bool:
    # As the servers bind (SO_REUSEADDR): only a socket someone listens on makes this fail.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
