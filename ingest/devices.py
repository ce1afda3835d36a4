"""The device directory: every registered device in memory, so validating a fix never waits on the database.

Loaded at start, reloaded every `refresh_s`, and on a miss (a message naming a device we do not know:
perhaps registered a moment ago) at most every `miss_refresh_s`, so a flood of unknown ids costs one query
per interval, not one per message. A copy is kept in the spool folder: if the database is down when
ingest starts, the last known directory is used rather than rejecting every device as unknown.

With `register_unknown`, a miss registers the device (and a unit of the same id) in the database and
adds it here at once; while the database is down the registration is retried in the background and the
device's fixes are accepted meanwhile (fixes do not reference the device row).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import ParamSpec, TypeVar

from sqlalchemy import Engine

from ingest import metrics
from ingest.device_info import DeviceInfo
from ingest.duty import is_off_duty
from schemas.accounts import is_reserved
from store import devices as queries
from store.devices import DirectoryEntry
from store.errors import StoreUnavailable, is_unavailable

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

_RETRY_S = 2.0


class DeviceDirectory:
    """Device id → what validation and HTTP authentication need. All methods run on the event loop."""

    def __init__(
        self,
        engine: Engine,
        *,
        refresh_s: float = 60.0,
        miss_refresh_s: float = 2.0,
        register_unknown: bool = False,
        cache_path: Path | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._refresh_s = refresh_s
        self._miss_refresh_s = miss_refresh_s
        self.register_unknown = register_unknown
        self._cache_path = cache_path
        self._clock = clock
        self._monotonic = monotonic
        self._infos: dict[str, DeviceInfo] = {}
        self._secrets: dict[str, str] = {}
        self._last_load_s = float("-inf")
        self._to_register: dict[str, None] = {}  # registered here, not yet in the database
        self._wake = asyncio.Event()
        self.loaded = False

    def get(self, device_id: str) -> DeviceInfo | None:
        """The device, or None if unknown."""
        return self._infos.get(device_id)

    def secret_hash(self, device_id: str) -> str | None:
        """The device's credentials hash, if it has credentials."""
        return self._secrets.get(device_id)

    def __len__(self) -> int:
        return len(self._infos)

    def without_credentials(self) -> int:
        """Enabled devices with no credentials: refused (`no_credentials`) unless the station runs open."""
        return sum(1 for i in self._infos.values() if i.enabled and not i.has_credentials)

    # ------------------------------------------------------------------------------------------ loading
    async def load(self) -> bool:
        """Reload from the database; False (directory unchanged) if it is unavailable."""
        now = datetime.fromtimestamp(self._clock(), UTC)
        self._last_load_s = self._monotonic()
        try:
            entries = await asyncio.to_thread(_guarded, queries.load_directory, self._engine, now=now)
        except StoreUnavailable as exc:
            log.warning("device directory not reloaded: database unavailable", extra={"error": str(exc)})
            return False
        self._replace(entries)
        self.loaded = True
        if self._cache_path is not None:
            await asyncio.to_thread(_write_cache, self._cache_path, entries)
        return True

    async def load_at_start(self, retry_s: float = _RETRY_S) -> None:
        """Load from the database; if it is down, from the cached copy; with neither, wait for the database
        (nothing is acknowledged meanwhile: the broker keeps the backlog)."""
        while not await self.load():
            cached = _read_cache(self._cache_path) if self._cache_path is not None else None
            if cached is not None:
                self._replace(cached)
                self.loaded = True
                log.warning(
                    "using the cached device directory until the database is back",
                    extra={"devices": len(cached)},
                )
                return
            await asyncio.sleep(retry_s)

    def miss_refresh_due(self) -> bool:
        """Whether a miss may trigger a reload now (rate limit)."""
        return self._monotonic() - self._last_load_s >= self._miss_refresh_s

    def _replace(self, entries: list[DirectoryEntry]) -> None:
        infos = {e.device_id: _info(e) for e in entries}
        # A device registered here whose registration has not reached the database yet stays known.
        for device_id in self._to_register:
            if device_id not in infos and device_id in self._infos:
                infos[device_id] = self._infos[device_id]
        self._infos = infos
        self._secrets = {e.device_id: e.credentials_hash for e in entries if e.credentials_hash}

    # ------------------------------------------------------------------------------------------ registering
    def register(self, device_id: str) -> DeviceInfo | None:
        """Know `device_id` from now on (bound to a unit of the same id); the database row follows.

        None when the id cannot name a unit (more than 64 characters) or is reserved for the broker's
        service accounts (`schemas.accounts`): such a device stays unknown."""
        if len(device_id) > 64 or is_reserved(device_id):
            return None
        info = DeviceInfo(device_id, True, device_id, "other")
        self._infos[device_id] = info
        self._to_register[device_id] = None
        self._wake.set()
        return info

    async def run(self, stop: asyncio.Event) -> None:
        """Periodic reloads, and the registrations still to write."""
        next_load_s = self._monotonic() + self._refresh_s
        while not stop.is_set():
            try:
                if self._to_register:
                    await self._write_registrations()
                if self._monotonic() >= next_load_s:
                    next_load_s = self._monotonic() + self._refresh_s
                    await self.load()
            except Exception:  # a bug must not end the refreshes: the directory would silently go stale
                log.exception("device directory refresh failed")
            timeout_s = _RETRY_S if self._to_register else max(next_load_s - self._monotonic(), 0.0)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(self._wake, stop), timeout_s)

    async def _write_registrations(self) -> None:
        now = datetime.fromtimestamp(self._clock(), UTC)
        for device_id in list(self._to_register):
            try:
                entry = await asyncio.to_thread(
                    _guarded, queries.register_unknown, self._engine, device_id, now=now
                )
            except StoreUnavailable:
                return  # retried in _RETRY_S
            del self._to_register[device_id]
            metrics.DEVICES_REGISTERED.inc()
            if entry is not None:
                self._infos[device_id] = _info(entry)
                if entry.credentials_hash:
                    self._secrets[device_id] = entry.credentials_hash
            log.info("registered unknown device", extra={"device_id": device_id})


def _info(e: DirectoryEntry) -> DeviceInfo:
    return DeviceInfo(
        e.device_id,
        e.enabled,
        e.unit_id,
        e.kind,
        off_duty=is_off_duty(e.unit_status),
        has_credentials=bool(e.credentials_hash),
    )


async def _first(event: asyncio.Event, stop: asyncio.Event) -> None:
    wait_event = asyncio.ensure_future(event.wait())
    wait_stop = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((wait_event, wait_stop), return_when=asyncio.FIRST_COMPLETED)
    finally:
        wait_event.cancel()
        wait_stop.cancel()


def _guarded(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a registry query; a database that cannot be reached becomes StoreUnavailable."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        if is_unavailable(exc):
            raise StoreUnavailable(str(exc)) from exc
        raise


def _write_cache(path: Path, entries: list[DirectoryEntry]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    # It holds credential hashes: readable by ingest's user only.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump([asdict(e) for e in entries], f)
    tmp.replace(path)


def _read_cache(path: Path) -> list[DirectoryEntry] | None:
    try:
        return [DirectoryEntry(**row) for row in json.loads(path.read_text(encoding="utf-8"))]
    except (OSError, ValueError, TypeError):
        return None
