"""What the target database can do: the one fact every table module needs, kept in a leaf they all import."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Flavour:
    """What the target database can do, decided by asking it (see `store.migrate`)."""

    dialect: str  # "postgresql" | "sqlite"
    # Native declarative partitioning of `fixes` by day (PostgreSQL without TimescaleDB).
    partitioned: bool = False
    # `fixes` is a TimescaleDB hypertable (see store.timescale for what that changes).
    hypertable: bool = False

    @property
    def spatial(self) -> bool:
        return self.dialect == "postgresql"
