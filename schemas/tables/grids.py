"""Patrol grids: police districts and the community grids inside them, versioned by validity interval.

One row per version of a grid's boundary. The current version of a grid has `valid_to` NULL; a changed
boundary closes it (valid_to = the change) and adds the next version (valid_from = the same instant), so a
report about the past takes the version valid then. A retired grid has no open version.

On PostgreSQL the boundary is a PostGIS `geometry(MultiPolygon,4326)` with a GiST index (QGIS reads the
table as it is); on SQLite it is the same MultiPolygon as WKB, and `geo` does the spatial work.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from schemas.tables.flavour import Flavour
from schemas.tables.registry import one_of

# Coarse first; geo.grids.LEVELS spells the same values out (tests/geo/test_grids.py checks).
GRID_LEVELS = ("police", "community")
# Ids travel in URL paths: a safe alphabet (import derives them from names, see store.grids).
GRID_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"


def define(md: MetaData, flavour: Flavour) -> Table:
    """Add `grids` to `md`."""
    return Table(
        "grids",
        md,
        Column("id", String(64), nullable=False),
        Column("version", Integer, nullable=False),
        Column("level", String(16), nullable=False),
        Column("name", Text, nullable=False),
        # The police grid of a community grid (NULL for police grids). Not a foreign key: the id names a
        # grid, not one of its versions, and a parent may be versioned independently.
        Column("parent_id", String(64)),
        Column("geom", flavour.area("MULTIPOLYGON"), nullable=False),
        Column("valid_from", DateTime(timezone=True), nullable=False),
        Column("valid_to", DateTime(timezone=True)),  # NULL: current
        PrimaryKeyConstraint("id", "version", name="pk_grids"),
        one_of("grids", "level", GRID_LEVELS),
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="ck_grids_interval"),
        CheckConstraint(
            "(level = 'police' AND parent_id IS NULL) OR (level = 'community' AND parent_id IS NOT NULL)",
            name="ck_grids_parent",
        ),
        Index("ix_grids_current", "level", "parent_id", "valid_to"),
    )
