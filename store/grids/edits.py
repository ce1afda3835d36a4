"""Writing grids: one version at a time, never rewriting the past (create, change, retire).

A change to the boundary, name or parent closes the current version at `now` and opens the next one from
`now`; writing what is already there changes nothing. The import and the API share `put`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Literal

from shapely.geometry import MultiPolygon
from sqlalchemy import Connection, Engine, text, update

from geo.boundaries import parent_by_area
from geo.grids import Grid, Level
from store.grids.records import (
    GridConflict,
    GridError,
    GridNotFound,
    GridRecord,
    current_by_id,
    current_of,
    encode_geometry,
    next_version,
    same_boundary,
    table,
)
from store.times import utc

Outcome = Literal["created", "unchanged", "new_version"]


def lock(conn: Connection) -> None:
    """Serialise writers of grids (PostgreSQL; a SQLite writer holds the database's write lock anyway)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("LOCK TABLE grids IN SHARE ROW EXCLUSIVE MODE"))


def put(
    conn: Connection, current: GridRecord | None, grid: Grid, now: datetime
) -> tuple[Outcome, GridRecord]:
    """Make the grid's current version (`current`) say `grid`: unchanged, a new version, or a new grid."""
    grid_id, level, name, parent_id, geometry = grid.id, grid.level, grid.name, grid.parent_id, grid.geometry
    if current is not None:
        if current.level != level:
            raise GridConflict(f"grid {grid_id} is a {current.level} grid, not a {level} grid")
        if (
            current.name == name
            and current.parent_id == parent_id
            and same_boundary(current.geometry, geometry)
        ):
            return "unchanged", current
        t = table(conn)
        conn.execute(
            update(t).where(t.c.id == grid_id, t.c.version == current.version).values(valid_to=utc(now))
        )
    made = GridRecord(
        id=grid_id,
        version=next_version(conn, grid_id),
        level=level,
        name=name,
        parent_id=parent_id,
        geometry=geometry,
        valid_from=utc(now),
        valid_to=None,
    )
    conn.execute(
        table(conn)
        .insert()
        .values(
            id=made.id,
            version=made.version,
            level=made.level,
            name=made.name,
            parent_id=made.parent_id,
            geom=encode_geometry(conn, geometry),
            valid_from=made.valid_from,
            valid_to=None,
        )
    )
    return ("created" if current is None else "new_version"), made


def resolve_parent(
    conn: Connection, level: Level, parent_id: str | None, geometry: MultiPolygon
) -> str | None:
    """The parent a grid gets: none for a police grid; for a community grid the named police grid, or the
    one holding the largest share of its area."""
    if level == "police":
        if parent_id is not None:
            raise GridError("a police grid has no parent")
        return None
    police = current_by_id(conn, "police")
    if parent_id is not None:
        if parent_id not in police:
            raise GridError(f"parent {parent_id!r} is not a current police grid")
        return parent_id
    best, _ = parent_by_area(geometry, [r.as_grid() for r in police.values()])
    if best is None:
        raise GridError("the boundary overlaps no police grid: name its parent")
    return best.grid_id


def create_grid(
    engine: Engine,
    *,
    grid_id: str,
    level: Level,
    name: str,
    parent_id: str | None,
    geometry: MultiPolygon,
    now: datetime,
) -> GridRecord:
    """A new grid (or a retired one back, as its next version); GridConflict when the id is current."""
    with engine.begin() as conn:
        lock(conn)
        if current_of(conn, grid_id) is not None:
            raise GridConflict(f"grid {grid_id} exists")
        parent = resolve_parent(conn, level, parent_id, geometry)
        _, made = put(conn, None, Grid(grid_id, level, name, parent, geometry), now)
        return made


def update_grid(
    engine: Engine,
    grid_id: str,
    *,
    name: str | None = None,
    parent_id: str | None = None,
    geometry: MultiPolygon | None = None,
    now: datetime,
) -> tuple[Outcome, GridRecord]:
    """Change a current grid's name, parent or boundary (None: keep); a real change is a new version."""
    with engine.begin() as conn:
        lock(conn)
        current = current_of(conn, grid_id)
        if current is None:
            raise GridNotFound(f"no current grid {grid_id}")
        parent = (
            current.parent_id
            if parent_id is None
            else resolve_parent(conn, current.level, parent_id, current.geometry)
        )
        name = current.name if name is None else name
        wanted = Grid(
            grid_id, current.level, name, parent, current.geometry if geometry is None else geometry
        )
        return put(conn, current, wanted, now)


def retire_grid(engine: Engine, grid_id: str, *, now: datetime) -> GridRecord:
    """Close a grid's current version at `now` (its history stays); a police grid must have no children."""
    with engine.begin() as conn:
        lock(conn)
        current = current_of(conn, grid_id)
        if current is None:
            raise GridNotFound(f"no current grid {grid_id}")
        children = sorted(c.id for c in current_by_id(conn, "community").values() if c.parent_id == grid_id)
        if children:
            shown = ", ".join(children[:5]) + (" …" if len(children) > 5 else "")
            raise GridConflict(
                f"police grid {grid_id} has community grids ({shown}): move or retire them first"
            )
        t = table(conn)
        conn.execute(
            update(t).where(t.c.id == grid_id, t.c.version == current.version).values(valid_to=utc(now))
        )
        return replace(current, valid_to=utc(now))
