"""Accepted fixes and dead-lettered messages."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from geoalchemy2 import Geometry

from schemas.tables.columns import instant, serial_id
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
    "restricted",
)


def define(md: sa.MetaData, flavour: Flavour) -> None:
    """Add `fixes` and `rejected_messages` to `md`."""
    columns: list[sa.Column[object]] = [
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("unit_id", sa.String(64)),
        instant("ts", nullable=False),
        instant("received_at", nullable=False),
        sa.Column("lon", sa.Float(53), nullable=False),
        sa.Column("lat", sa.Float(53), nullable=False),
        sa.Column("accuracy_m", sa.Float(24)),
        sa.Column("speed_mps", sa.Float(24)),
        sa.Column("heading_deg", sa.Float(24)),
        sa.Column("altitude_m", sa.Float(24)),
        sa.Column("battery_pct", sa.Float(24)),
        sa.Column("seq", sa.BigInteger),
        sa.Column("flags", sa.Integer, nullable=False, server_default="0"),
        # A fix taken while its unit was off duty (OUTPOST_OFF_DUTY_FIXES=restricted): kept, but read back
        # only by an admin who states a reason (audited); migration step 13 added it to older databases.
        sa.Column("restricted", sa.Boolean, nullable=False, server_default=sa.false()),
    ]
    if flavour.spatial:
        columns.append(_geom_column(flavour))
    kwargs: dict[str, Any] = {}
    if flavour.partitioned:
        kwargs["postgresql_partition_by"] = "RANGE (ts)"
    sa.Table(
        "fixes",
        md,
        *columns,
        # Unique on (device_id, ts): a redelivered message or a replayed device buffer is a no-op.
        sa.PrimaryKeyConstraint("device_id", "ts", name="pk_fixes"),
        sa.Index("ix_fixes_unit_ts", "unit_id", "ts"),
        sa.Index("ix_fixes_ts", "ts"),
        **kwargs,
    )
    sa.Table(
        "rejected_messages",
        md,
        serial_id(),
        instant("received_at", nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("device_id", sa.String(128)),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("raw", sa.LargeBinary, nullable=False),
        sa.Index("ix_rejected_received_at", "received_at"),
    )


# The one expression that turns a fix's numbers into its point; the hypertable path writes it explicitly.
GEOM_EXPRESSION = "ST_SetSRID(ST_MakePoint(lon, lat), 4326)"


def _geom_column(flavour: Flavour) -> sa.Column[object]:
    # No GiST index: it would tax every insert, and the queries on history (tracks, heat maps) are bounded
    # by time and unit first.
    geometry = Geometry("POINT", srid=4326, spatial_index=False)
    if flavour.hypertable:
        # A plain column that the writer fills from lon/lat (store.fixes): TimescaleDB 2.22-2.25
        # stored NULL in generated columns of rows inserted into compressed chunks (timescaledb #8926, #9314),
        # which is exactly where late fixes from offline buffers land. NOT NULL makes any writer that forgets
        # it fail loudly instead of storing a fix without a point.
        return sa.Column("geom", geometry, nullable=False)
    # Generated, so COPY writes plain numbers and no writer can get it wrong.
    return sa.Column("geom", geometry, sa.Computed(GEOM_EXPRESSION, persisted=True))
