"""What the incident loop needs from its neighbours, as Protocols (the composition root passes the real ones).

`FleetPort` is the part of `dispatch.fleet.Fleet` the loop uses; `Publisher` the part of
`dispatch.events.EventBus`. Keeping them narrow lets the service be read (and tested) without the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Protocol, Unpack

from geo import Filters, NearestResult, UnitPosition


class FleetPort(Protocol):
    """The live picture: nearest units, positions, atomic status changes, move notifications."""

    def nearest(self, lon: float, lat: float, k: int, **filters: Unpack[Filters]) -> NearestResult:
        """The k nearest units matching the filters, exactly by great-circle distance."""
        ...

    def position(self, unit_id: str) -> UnitPosition | None:
        """The unit's live (fused) position and attributes, or None."""
        ...

    async def compare_and_set_status(
        self, unit_id: str, expected: Collection[str], new: str, *, actor: str
    ) -> bool:
        """Set the unit's status to `new` only if it is one of `expected` now (atomic in the database)."""
        ...

    def subscribe(self, callback: Callable[[Any], None]) -> Callable[[], None]:
        """Call `callback` with every fleet event (moves among them); returns the unsubscribe function."""
        ...


class Publisher(Protocol):
    """Where events go: the live stream for consoles and the device sink."""

    def publish(self, event: dict[str, Any]) -> None:
        """Deliver an event (never blocks)."""
        ...
