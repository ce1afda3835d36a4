"""Storage settings: where the truth lives and how long it is kept."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StoreSettings:
    """Read from OUTPOST_* variables by the composition root (see outpost.settings)."""

    # `postgresql://user:pass@host:port/db` for production (PostGIS required, TimescaleDB used when present),
    # or `sqlite:///path/to/file.db` for the embedded default.
    database_url: str = "sqlite:///./outpost-data/outpost.db"
    # Connections in the pool. Ingest holds one while flushing; raising it helps many concurrent API calls.
    database_pool_size: int = 8
    # Fixes older than this are dropped (partitions or TimescaleDB chunks). Raising it costs disk.
    retention_days: int = 90
    # Partitions created ahead of time (native partitioning only). A fix for a day with no partition would
    # land in the default partition; creating ahead keeps it empty.
    partition_ahead_days: int = 3
    # TimescaleDB only: chunks older than this are compressed (smaller, slower to update).
    compress_after_days: int = 7
