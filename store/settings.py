"""Storage settings: where the truth lives and how long it is kept."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from msgspec import Meta

from schemas.config import matching, one_of


@dataclass(frozen=True)
class StoreSettings:
    """Read from OUTPOST_* variables by the composition root (see outpost.settings)."""

    # `postgresql://user:pass@host:port/db` for production (PostGIS required, TimescaleDB used when present),
    # or `sqlite:///path/to/file.db` for the embedded default (a file: an in-memory database would lose
    # every fix it acknowledged).
    database_url: Annotated[
        str,
        matching(
            r"^(?:postgresql://|sqlite:///(?!:memory:)).",
            "`postgresql://…` or `sqlite:///<file>`",
            "postgresql://outpost:secret@db:5432/outpost",
            "sqlite:///./outpost-data/outpost.db",
        ),
    ] = "sqlite:///./outpost-data/outpost.db"
    # Connections in the pool. Ingest holds one while flushing; raising it helps many concurrent API calls.
    database_pool_size: Annotated[int, Meta(ge=1, le=1000)] = 8
    # Fixes older than this are dropped (partitions or TimescaleDB chunks), days. Raising it costs disk.
    retention_days: Annotated[int, Meta(ge=1, le=36500)] = 90
    # Partitions created ahead of time, days (native partitioning only). A fix for a day with no partition
    # would land in the default partition; creating ahead keeps it empty.
    partition_ahead_days: Annotated[int, Meta(ge=1, le=366)] = 3
    # TimescaleDB only: chunks older than this are compressed (smaller, slower to update), days.
    compress_after_days: Annotated[int, Meta(ge=1, le=36500)] = 7
    # TimescaleDB for `fixes` (PostgreSQL only): `auto` uses it when the server can enable it and falls back
    # to native daily partitions with a one-line warning when it is installed but cannot be enabled (not in
    # shared_preload_libraries); `required` refuses to start without it; `off` never tries.
    timescaledb: Annotated[str, one_of("auto", "required", "off")] = "auto"
