"""Migration step 11: the patrol presence rollup; on TimescaleDB a hypertable with a continuous aggregate.

`patrol_presence` (hour, unit, cell, seconds) and `patrol_presence_hours` come from `schemas.tables`
(`create_all` adds only what is missing). Where `fixes` is a TimescaleDB hypertable, `patrol_presence`
becomes one too (weekly chunks: a hundred units make some ten thousand rows an hour) and
`patrol_presence_cells` sums it per cell per hour over all units, as a continuous aggregate with real-time
aggregation on (`materialized_only = false`), refreshed by `store.presence` whenever it materializes hours
and hourly by its policy. Not installable on the development machines: the statements are written from
TimescaleDB's documentation and checked by tests/store/test_presence_tables.py, executed where the
extension exists (the same approach as `store.timescale`).
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from schemas.tables import Flavour, build_metadata

CAGG_STATEMENTS = (
    "SELECT create_hypertable('patrol_presence', by_range('hour', INTERVAL '7 days'),"
    " if_not_exists => TRUE, migrate_data => TRUE)",
    "CREATE MATERIALIZED VIEW IF NOT EXISTS patrol_presence_cells"
    " WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS"
    " SELECT time_bucket(INTERVAL '1 hour', hour) AS hour, cell, sum(seconds) AS seconds"
    " FROM patrol_presence GROUP BY 1, 2 WITH NO DATA",
    "SELECT add_continuous_aggregate_policy('patrol_presence_cells', start_offset => INTERVAL '3 days',"
    " end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '1 hour', if_not_exists => TRUE)",
)


def add_presence_tables(conn: Connection, flavour: Flavour, _settings: object) -> None:
    """Step 11: `patrol_presence`, `patrol_presence_hours`; a hypertable and its aggregate on TimescaleDB."""
    build_metadata(flavour).create_all(conn, checkfirst=True)
    if flavour.hypertable:
        for statement in CAGG_STATEMENTS:
            conn.execute(text(statement))
