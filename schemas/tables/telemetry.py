"""Accepted fixes and dead-lettered messages."""

from __future__ import annotations

from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Computed,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from schemas.tables.flavour import Flavour

# The hot path COPYs exactly these columns, in this order (see store.fixes).
FIX_COLUMNS = (
    "device_id",
    "unit_id",
    "ts",
    "received_at",
    "lon",
    "lat",
    "accuracy_m",
    "speed_mps",
    "heading_deg",
    "altitude_m",
    "battery_pct",
    "seq",
    "flags",
)


def define(md: MetaData, flavour: Flavour) -> None:
    """Add `fixes` and `rejected_messages` to `md`."""
    columns: list[Column[object]] = [
        Column("device_id", String(128), nullable=False),
        Column("unit_id", String(64)),
        Column("ts", DateTime(timezone=True), nullable=False),
        Column("received_at", DateTime(timezone=True), nullable=False),
        Column("lon", Float(53), nullable=False),
        Column("lat", Float(53), nullable=False),
        Column("accuracy_m", Float(24)),
        Column("speed_mps", Float(24)),
        Column("heading_deg", Float(24)),
        Column("altitude_m", Float(24)),
        Column("battery_pct", Float(24)),
        Column("seq", BigInteger),
        Column("flags", Integer, nullable=False, server_default="0"),
    ]
    if flavour.spatial:
        columns.append(_geom_column(flavour))
    kwargs: dict[str, Any] = {}
    if flavour.partitioned:
        kwargs["postgresql_partition_by"] = "RANGE (ts)"
    Table(
        "fixes",
        md,
        *columns,
        # Unique on (device_id, ts): a redelivered message or a replayed device buffer is a no-op.
        PrimaryKeyConstraint("device_id", "ts", name="pk_fixes"),
        Index("ix_fixes_unit_ts", "unit_id", "ts"),
        Index("ix_fixes_ts", "ts"),
        **kwargs,
    )
    Table(
        "rejected_messages",
        md,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("received_at", DateTime(timezone=True), nullable=False),
        Column("source", Text, nullable=False),
        Column("device_id", String(128)),
        Column("reasons", JSON, nullable=False),
        Column("raw", LargeBinary, nullable=False),
        Index("ix_rejected_received_at", "received_at"),
    )


# The one expression that turns a fix's numbers into its point; the hypertable path writes it explicitly.
GEOM_EXPRESSION = "ST_SetSRID(ST_MakePoint(lon, lat), 4326)"


def _geom_column(flavour: Flavour) -> Column[object]:
    # No GiST index: it would tax every insert, and the queries on history (tracks, heat maps) are bounded
    # by time and unit first.
    geometry = Geometry("POINT", srid=4326, spatial_index=False)
    if flavour.hypertable:
        # A plain column that the writer fills from lon/lat (store.fixes): TimescaleDB 2.22-2.25
        # stored NULL in generated columns of rows inserted into compressed chunks (timescaledb #8926, #9314),
        # which is exactly where late fixes from offline buffers land. NOT NULL makes any writer that forgets
        # it fail loudly instead of storing a fix without a point.
        return Column("geom", geometry, nullable=False)
    # Generated, so COPY writes plain numbers and no writer can get it wrong.
    return Column("geom", geometry, Computed(GEOM_EXPRESSION, persisted=True))
