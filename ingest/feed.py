"""The ingest side of the live change feed: every batch the database committed, published for the API.

`outpost api` replicas keep their live picture from this feed (dispatch.follow) instead of polling the
database. The writer is wrapped (`CommittedFeed`): once `FixWriter.write` returns, the batch is committed,
and only then is it handed to `FeedPublisher.committed`, from the worker thread the write ran in; the
publisher encodes it and publishes it on the event loop, QoS 1, one message per committed write. A write
split by a refused fix (ingest.write) publishes each part that went in; a spooled batch is published when
the drain commits it. Duplicates (a redelivered batch stored again) are published again, harmlessly.

A feed message lost (the broker down, this worker killed between commit and PUBACK) costs a replica
freshness, never truth: replicas notice the gap in `seq` and sweep the database, and sweep it periodically
anyway. The feed therefore never holds back ingest: it does not wait for PUBACKs.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence

from ingest.mqtt.publisher import Publisher
from ingest.ports import FixStore
from schemas.backoff import Backoff
from schemas.feed import encode_batch
from schemas.fix import Fix, RejectedMessage
from schemas.topics import fixes_feed_topic

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S = 5.0
_RETRY_MIN_S, _RETRY_MAX_S = 1.0, 30.0
# Batches the MQTT client may hold unacknowledged (a broker away): beyond, they are skipped, not queued
# without bound; readers see the gap in seq and read the database instead.
_MAX_PENDING_BATCHES = 2000


class CommittedFeed:
    """A FixStore that hands every batch it committed to `on_committed` (called in the writer's thread)."""

    def __init__(self, writer: FixStore, on_committed: Callable[[Sequence[Fix]], None]) -> None:
        self._writer = writer
        self._on_committed = on_committed

    def write(self, fixes: Sequence[Fix]) -> int:
        """Write (and commit) `fixes`, then hand them on; what the wrapped writer returns."""
        stored = self._writer.write(fixes)
        if fixes:
            self._on_committed(fixes)
        return stored

    def write_rejected(self, rows: Sequence[RejectedMessage]) -> None:
        """Dead letters are not part of the feed."""
        self._writer.write_rejected(rows)


class FeedPublisher:
    """Publishes committed batches on `outpost/internal/v1/fixes/{worker}`, QoS 1, in commit order."""

    def __init__(self, url: str, client_id: str, *, ca_file: str = "") -> None:
        """`ca_file`: the certificates an mqtts:// `url` trusts (empty: the system's trust store)."""
        # A fresh worker name each start: `seq` restarts at 1, and readers must not take that for a gap.
        self.worker = f"{client_id}.{secrets.token_hex(4)}"
        self._url, self._client_id, self._ca_file = url, f"{client_id}-feed", ca_file
        self._topic = fixes_feed_topic(self.worker)
        self._publisher: Publisher | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._seq = 0
        self.published = 0  # batches handed to the MQTT client
        self.unsent = 0  # batches committed while the broker had not answered yet (readers sweep them up)

    async def connect(self) -> None:
        """Connect, retrying with backoff until the broker answers; paho reconnects by itself after that."""
        self._loop = asyncio.get_running_loop()
        backoff = Backoff(_RETRY_MIN_S, _RETRY_MAX_S)
        while self._publisher is None:
            publisher = Publisher(self._url, client_id=self._client_id, protocol="5", ca_file=self._ca_file)
            try:
                await publisher.connect(timeout_s=_CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError, ConnectionError) as exc:
                delay_s = backoff.failed()
                log.warning("the live feed waits for the broker (%s); retrying in %.0f s", exc, delay_s)
                await asyncio.sleep(delay_s)
                continue
            self._publisher = publisher

    def committed(self, fixes: Sequence[Fix]) -> None:
        """`CommittedFeed`'s callback: thread-safe, never blocks, never raises."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self.unsent += 1
            return
        try:
            loop.call_soon_threadsafe(self._publish, list(fixes))
        except RuntimeError:  # the loop closed meanwhile (shutting down): readers sweep these up
            self.unsent += 1

    def _publish(self, fixes: list[Fix]) -> None:
        self._seq += 1  # also for a batch not sent: the next one then shows readers the gap
        publisher = self._publisher
        if publisher is None or publisher.pending >= _MAX_PENDING_BATCHES:
            self.unsent += 1
            return
        publisher.publish(self._topic, encode_batch(self.worker, self._seq, fixes), qos=1)
        self.published += 1

    async def close(self) -> None:
        """Deliver what is queued (briefly), then disconnect."""
        if self._publisher is None:
            return
        try:
            await self._publisher.flush(timeout_s=2.0)
        except TimeoutError:
            log.warning("live feed: %d messages not acknowledged at stop", self._publisher.pending)
        await self._publisher.close()
