"""`python -m outpost.ingest_only`: the ingest pipeline alone, configured by OUTPOST_* variables, until
SIGTERM or SIGINT, with no HTTP side; the chaos tests and the ingest benchmark run it as a subprocess they
can kill -9. (`outpost ingest` is the production role, with /healthz, /metrics and the phones' endpoints.)"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from prometheus_client import start_http_server
from sqlalchemy import Engine

from dispatch.clock import SystemClock
from dispatch.events import EventBus
from dispatch.fleet import Fleet
from dispatch.patrol import Patrol
from dispatch.settings import ApiSettings
from ingest.runner import run_ingest
from ingest.settings import IngestSettings
from outpost.logs import configure_logging
from outpost.open_mode import check_open_mode
from outpost.settings import load, read_sources
from outpost.supervise import stop_on_signals
from outpost.tls_checks import check_tls
from schemas.config import ConfigError
from store.engine import open_engine
from store.settings import StoreSettings


def main(argv: Sequence[str] | None = None) -> int:
    """Run ingest alone until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m outpost.ingest_only", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--metrics-port", type=int, default=0, help="serve /metrics on 127.0.0.1:PORT")
    parser.add_argument(
        "--live-picture",
        action="store_true",
        help="feed the accepted fixes to a live picture with its patrol watch (the grids and geofences "
        "stored), as `outpost run` does; the ingest benchmark's grids comparison",
    )
    args = parser.parse_args(argv)
    try:
        configure_logging(args.log_level)
        sources = read_sources()
        settings, store = load(IngestSettings, sources), load(StoreSettings, sources)
        api = load(ApiSettings, sources)
        check_open_mode(settings, None)  # no HTTP side here: the broker's listener only
        check_tls(api, settings)
    except ConfigError as exc:
        print(f"outpost.ingest_only: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.metrics_port:
        start_http_server(args.metrics_port, addr="127.0.0.1")
    engine = open_engine(store.database_url, pool_size=store.database_pool_size)
    try:
        asyncio.run(_run(settings, engine, api if args.live_picture else None))
    finally:
        engine.dispose()
    return 0


async def _run(settings: IngestSettings, engine: Engine, api: ApiSettings | None) -> None:
    if api is None:
        await run_ingest(settings, engine, on_accepted=lambda fixes: None, stop=stop_on_signals())
        return
    clock = SystemClock()
    fleet = Fleet(engine, clock, api)
    await fleet.rebuild(engine, api.index_lookback_s)
    patrol = Patrol(engine, fleet, EventBus(clock), clock, api)
    await patrol.reload()
    try:
        await run_ingest(settings, engine, on_accepted=fleet.apply_soon, stop=stop_on_signals())
    finally:
        patrol.stop()


if __name__ == "__main__":
    sys.exit(main())
