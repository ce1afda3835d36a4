"""How fast FixWriter stores fixes, against a raw binary COPY into a plain table measured in the same run.

    .venv/bin/python benchmarks/bench_copy.py [--rows 200000] [--batch 2000] [--devices 1000]

Starts its own PostgreSQL cluster (tests.support.services.PgCluster, fsync on), migrates a database (native
daily partitions here, since TimescaleDB is not installed), and prints rows/s for:
  baseline   psycopg binary COPY of the same rows into a plain table (no keys, no indexes), commit per batch;
  direct     the same COPY straight into `fixes` of a second database: keys, indexes, partitions, generated
             geometry, but not idempotent (a redelivered fix would fail the whole batch);
  FixWriter  COPY into the TEMP staging table + INSERT … ON CONFLICT DO NOTHING into `fixes`, one commit each;
  replay     FixWriter again on the same batches: every row a duplicate (a redelivered backlog).
FixWriter/baseline is the whole price of storing a fix properly; FixWriter/direct is the price of idempotency.
OUTPOST_BENCH_QUICK=1 runs 40,000 rows. The last line is the figures as JSON (benchmarks/run_all.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schemas.fix import Fix
from schemas.tables.telemetry import FIX_COLUMNS
from store.engine import open_engine
from store.fixes import _STAGING_DDL, _STAGING_TYPES, FixWriter, _row
from store.migrate import migrate
from store.settings import StoreSettings
from tests.support.services import PgCluster

_BASELINE_DDL = _STAGING_DDL.replace("TEMP TABLE IF NOT EXISTS fix_staging", "TABLE baseline").replace(
    " ON COMMIT DELETE ROWS", ""
)


def make_batches(rows: int, batch: int, devices: int) -> list[list[Fix]]:
    """Fixes of `devices` devices reporting every second over the last hours, cut into batches."""
    start = datetime.now(UTC) - timedelta(hours=2)
    fixes = [
        Fix(
            device_id=f"dev-{i % devices:05d}",
            ts=start + timedelta(seconds=i // devices),
            lon=-122.4 + (i % 97) / 1e4,
            lat=37.7 + (i % 89) / 1e4,
            received_at=start,
            accuracy_m=5.0,
            speed_mps=1.5,
            heading_deg=90.0,
            battery_pct=80.0,
            seq=i // devices,
        )
        for i in range(rows)
    ]
    return [fixes[i : i + batch] for i in range(0, rows, batch)]


def timed(label: str, batches: list[list[Fix]], store: Callable[[list[Fix]], object]) -> float:
    """Rows/s of `store` over all batches but the first (warm-up: connection, staging table, plans)."""
    store(batches[0])
    began = time.perf_counter()
    for b in batches[1:]:
        store(b)
    elapsed = time.perf_counter() - began
    rate = sum(map(len, batches[1:])) / elapsed
    print(f"{label:<10} {rate:>10,.0f} rows/s  ({elapsed:.2f} s)", flush=True)
    return rate


def raw_copy(conn: psycopg.Connection[object], table: str) -> Callable[[list[Fix]], None]:
    """Binary COPY of a batch into `table`, one commit per batch: the floor any writer is measured against."""
    sql = f"COPY {table} ({', '.join(FIX_COLUMNS)}) FROM STDIN (FORMAT BINARY)"

    def store(batch: list[Fix]) -> None:
        with conn.cursor() as cur, cur.copy(sql) as copy:
            copy.set_types(_STAGING_TYPES)
            for f in batch:
                copy.write_row(_row(f, f.ts, f.received_at))
        conn.commit()

    return store


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    quick = os.environ.get("OUTPOST_BENCH_QUICK") == "1"
    parser.add_argument("--rows", type=int, default=40_000 if quick else 200_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--devices", type=int, default=1000)
    args = parser.parse_args()
    batches = make_batches(args.rows + args.batch, args.batch, args.devices)  # + the warm-up batch

    cluster = PgCluster().start()
    try:
        urls = {}
        for name in ("bench", "direct"):
            cluster.psql(f"CREATE DATABASE {name}")
            urls[name] = cluster.url(name)
            engine = open_engine(urls[name], pool_size=1)
            migrate(engine, StoreSettings(database_url=urls[name]))
            engine.dispose()
        print(f"{args.rows:,} fixes, batches of {args.batch}, {args.devices} devices, PostgreSQL, fsync on")
        with psycopg.connect(urls["bench"]) as conn:
            conn.execute(_BASELINE_DDL)
            conn.commit()
            baseline = timed("baseline", batches, raw_copy(conn, "baseline"))
        with psycopg.connect(urls["direct"]) as conn:
            direct = timed("direct", batches, raw_copy(conn, "fixes"))
        engine = open_engine(urls["bench"], pool_size=1)
        writer = FixWriter(engine)
        stored = timed("FixWriter", batches, writer.write)
        replay = timed("replay", batches, writer.write)
        engine.dispose()
    finally:
        cluster.close()
    print(
        f"ratio FixWriter/baseline {stored / baseline:.2f}  FixWriter/direct {stored / direct:.2f}"
        f"  replay/baseline {replay / baseline:.2f}"
    )
    print(
        json.dumps(
            {
                "rows": args.rows,
                "batch": args.batch,
                "baseline_rows_per_s": round(baseline),
                "direct_rows_per_s": round(direct),
                "fixwriter_rows_per_s": round(stored),
                "replay_rows_per_s": round(replay),
                "ratio_fixwriter_baseline": round(stored / baseline, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
