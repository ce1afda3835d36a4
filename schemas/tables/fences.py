"""Geofences: arbitrary areas (a school, an event, a hospital) whose enter, exit and dwell are events.

A fence is a polygon or a circle. Both store the area as it is on the ground (`geom`, a circle as its
polygon, see `geo.fences.circle`), so every reader treats them alike; a circle also keeps its centre and
radius so the API can answer what was asked. PostgreSQL holds `geometry(Geometry,4326)` with a GiST index
(QGIS reads it); SQLite the same as WKB.
"""

from __future__ import annotations

import sqlalchemy as sa

from schemas.tables.columns import instant, name, text_id, word
from schemas.tables.flavour import Flavour
from schemas.tables.registry import one_of
from schemas.values import END

FENCE_KINDS = ("polygon", "circle")
# Ids travel in URL paths: the grids' safe alphabet.
FENCE_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}" + END
_CIRCLE = "(kind = 'circle') = (radius_m IS NOT NULL AND center_lon IS NOT NULL AND center_lat IS NOT NULL)"


def define(md: sa.MetaData, flavour: Flavour) -> sa.Table:
    """Add `geofences` to `md`."""
    return sa.Table(
        "geofences",
        md,
        text_id(),
        name(),
        word("kind"),
        sa.Column("geom", flavour.area("GEOMETRY"), nullable=False),
        sa.Column("center_lon", sa.Float),  # circles only
        sa.Column("center_lat", sa.Float),
        sa.Column("radius_m", sa.Float),
        sa.Column("dwell_s", sa.Float),  # NULL: the setting OUTPOST_FENCE_DWELL_S
        instant("created_at", nullable=False),
        instant("updated_at", nullable=False),
        one_of("geofences", "kind", FENCE_KINDS),
        sa.CheckConstraint(_CIRCLE, name="ck_geofences_circle"),
    )
