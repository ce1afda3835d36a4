"""Patrol grids: police districts and the community grids inside them, versioned by validity interval.

One row per version of a grid's boundary. The current version of a grid has `valid_to` NULL; a changed
boundary closes it (valid_to = the change) and adds the next version (valid_from = the same instant), so a
report about the past takes the version valid then. A retired grid has no open version.

On PostgreSQL the boundary is a PostGIS `geometry(MultiPolygon,4326)` with a GiST index (QGIS reads the
table as it is); on SQLite it is the same MultiPolygon as WKB, and `geo` does the spatial work.
"""

from __future__ import annotations

import sqlalchemy as sa

from schemas.tables.columns import instant, name, word
from schemas.tables.flavour import Flavour
from schemas.tables.registry import one_of
from schemas.values import END

# Coarse first; geo.grids.LEVELS spells the same values out (tests/geo/test_grids.py checks).
GRID_LEVELS = ("police", "community")
# Ids travel in URL paths: a safe alphabet (import derives them from names, see store.grids).
GRID_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}" + END


def define(md: sa.MetaData, flavour: Flavour) -> sa.Table:
    """Add `grids` to `md`."""
    return sa.Table(
        "grids",
        md,
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        word("level"),
        name(),
        # The police grid of a community grid (NULL for police grids). Not a foreign key: the id names a
        # grid, not one of its versions, and a parent may be versioned independently.
        sa.Column("parent_id", sa.String(64)),
        sa.Column("geom", flavour.area("MULTIPOLYGON"), nullable=False),
        instant("valid_from", nullable=False),
        instant("valid_to"),  # NULL: current
        sa.PrimaryKeyConstraint("id", "version", name="pk_grids"),
        one_of("grids", "level", GRID_LEVELS),
        sa.CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="ck_grids_interval"),
        sa.CheckConstraint(
            "(level = 'police' AND parent_id IS NULL) OR (level = 'community' AND parent_id IS NOT NULL)",
            name="ck_grids_parent",
        ),
        sa.Index("ix_grids_current", "level", "parent_id", "valid_to"),
    )
