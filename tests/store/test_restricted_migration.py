"""Migration step 13 on both stores: a database from before `fixes.restricted` gains the column, its fixes
read as not restricted, and new fixes are written with it (the hot path's COPY / INSERT OR IGNORE)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from schemas.fix import Fix
from store.engine import open_engine
from store.fixes import FixWriter, fetch_fixes
from store.migrate import migrate
from store.settings import StoreSettings

NOW = datetime.now(UTC).replace(microsecond=0)  # inside retention and the partitions made ahead


def test_step_13_upgrades_an_old_database(store_url: str) -> None:
    engine = open_engine(store_url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE fixes DROP COLUMN restricted"))
        conn.execute(text("DELETE FROM schema_version WHERE version = 13"))
        conn.execute(
            text(
                "INSERT INTO fixes (device_id, ts, received_at, lon, lat, flags)"
                " VALUES ('old', :ts, :ts, -122.4, 37.7, 0)"
            ),
            {"ts": NOW.strftime("%Y-%m-%d %H:%M:%S.%f") if engine.dialect.name == "sqlite" else NOW},
        )
    assert migrate(engine, StoreSettings(database_url=store_url)).applied == (13,)
    engine.dispose()
    fresh = open_engine(store_url)
    private = Fix(device_id="new", ts=NOW, lon=-122.4, lat=37.7, received_at=NOW, restricted=True)
    assert FixWriter(fresh).write([private]) == 1
    assert [(f.device_id, f.restricted) for f in fetch_fixes(fresh)] == [("new", True), ("old", False)]
    assert migrate(fresh, StoreSettings(database_url=store_url)).applied == ()
    fresh.dispose()
