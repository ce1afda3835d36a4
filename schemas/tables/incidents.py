"""Incidents and the dispatch loop. Owned by the incident workflow; see dispatch/incidents."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import MetaData

if TYPE_CHECKING:
    from schemas.tables import Flavour


def define(md: MetaData, flavour: Flavour) -> None:
    """Add the incident tables to `md`."""
