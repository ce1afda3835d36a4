"""Queries of patrol grids: versioned boundaries of police and community grids (PostgreSQL and SQLite).

`records`: the table, the records and the reads (current, at a time, one grid, its history, the in-memory
index); `edits`: create, change, retire (a change is a new version, the past is never rewritten);
`imports`: a GeoJSON FeatureCollection checked whole, then written in one transaction. Callers import
everything from here, as `from store import grids`.
"""

from __future__ import annotations

from store.grids.edits import Outcome, create_grid, retire_grid, update_grid
from store.grids.imports import (
    CHECK_SHARE_BELOW,
    FeatureError,
    ImportReport,
    ParentShare,
    grid_id_for,
    import_grids,
)
from store.grids.records import (
    GridConflict,
    GridError,
    GridNotFound,
    GridRecord,
    get_grid,
    history,
    list_grids,
    load_index,
)

__all__ = [
    "CHECK_SHARE_BELOW",
    "FeatureError",
    "GridConflict",
    "GridError",
    "GridNotFound",
    "GridRecord",
    "ImportReport",
    "Outcome",
    "ParentShare",
    "create_grid",
    "get_grid",
    "grid_id_for",
    "history",
    "import_grids",
    "list_grids",
    "load_index",
    "retire_grid",
    "update_grid",
]
