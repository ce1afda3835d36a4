"""What every part of the field desk shares: the store, the live picture, the bus, the clock, the settings,
the channel to devices, the refusals, and the current grids (cached, reloaded on a miss and every minute)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine

from dispatch.blocking import run_db
from dispatch.clock import Clock
from dispatch.events import EventBus
from dispatch.field.answers import Refusals
from dispatch.field.downlink import DeviceSender
from dispatch.fleet import Fleet
from dispatch.settings import FieldSettings
from geo.grids import Grid, GridIndex
from store import grids, registry

# The grids are read again at most this often (s), and whenever a grid is asked for that they lack.
_GRIDS_REFRESH_S = 60.0


@dataclass
class FieldContext:
    """The field desk's collaborators (the composition root passes the real ones)."""

    engine: Engine
    fleet: Fleet
    bus: EventBus
    clock: Clock
    settings: FieldSettings
    send: DeviceSender
    refusals: Refusals = field(init=False)
    _grids: GridIndex | None = field(default=None, init=False)
    _grids_at_s: float = field(default=float("-inf"), init=False)

    def __post_init__(self) -> None:
        self.refusals = Refusals(self.engine)

    def now(self) -> datetime:
        """The app clock's now, as an aware UTC datetime."""
        return datetime.fromtimestamp(self.clock.now(), UTC)

    async def bound_unit(self, device_id: str) -> str | None:
        """The unit the device is bound to now (the store's bindings are the truth), or None."""
        return await run_db(registry.unit_for_device, self.engine, device_id, self.now())

    def cached_grid(self, grid_id: str) -> tuple[GridIndex, Grid] | None:
        """The grid from the grids already read (no database call: the hot path's), or None."""
        index = self._grids
        return (index, index.get(grid_id)) if index is not None and grid_id in index else None

    async def grid(self, grid_id: str) -> tuple[GridIndex, Grid] | None:
        """The current grid with this id and the index holding it, or None when no current grid has it."""
        index = self._grids
        stale = self.clock.now() - self._grids_at_s > _GRIDS_REFRESH_S
        if index is None or stale or grid_id not in index:
            index = self._grids = await run_db(grids.load_index, self.engine)
            self._grids_at_s = self.clock.now()
        return (index, index.get(grid_id)) if grid_id in index else None
