"""What a plugin needs of the replicas' leadership (dispatch.leader.Leadership): to wait until this
replica leads. A plugin whose work is single-writer (the field desk's timers, the monthly report's
schedule) starts it only then; without a leadership (one process: the `all` role) it starts at once."""

from __future__ import annotations

from typing import Protocol


class Leading(Protocol):
    """Whether this replica leads."""

    async def wait_leading(self) -> None:
        """Return once this replica leads."""
        ...


async def when_leading(leadership: Leading | None) -> None:
    """Return once this replica leads (at once without a leadership)."""
    if leadership is not None:
        await leadership.wait_leading()
