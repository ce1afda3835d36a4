"""The composition root: reads the settings once, opens storage, and wires ingest, the fleet and the API.

This is the one module allowed to import both `ingest` and `dispatch` (see the import-linter contracts).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from dispatch.settings import ApiSettings, DispatchSettings
from ingest.settings import IngestSettings
from schemas.config import load, read_sources
from schemas.storage.engine import open_engine
from schemas.storage.migrate import MigrationReport, migrate
from schemas.storage.settings import StoreSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """Every concern's settings, read once at start."""

    store: StoreSettings
    ingest: IngestSettings
    api: ApiSettings
    dispatch: DispatchSettings


SETTINGS_CLASSES = (StoreSettings, IngestSettings, ApiSettings, DispatchSettings)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read OUTPOST_* variables (and the OUTPOST_CONFIG TOML file) into frozen settings."""
    sources = read_sources(environ)
    return Settings(
        store=load(StoreSettings, sources),
        ingest=load(IngestSettings, sources),
        api=load(ApiSettings, sources),
        dispatch=load(DispatchSettings, sources),
    )


def run_migrate(settings: Settings) -> MigrationReport:
    """Apply the schema to the configured database."""
    engine = open_engine(settings.store.database_url, pool_size=1)
    try:
        return migrate(engine, settings.store)
    finally:
        engine.dispose()
