"""The ingest side of the live feed: a batch is handed on only once the database committed it, and what a
worker publishes reaches a replica's subscription, in order, over a real Mosquitto."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from ingest.feed import CommittedFeed, FeedPublisher
from ingest.feed_listen import listen_feed
from ingest.settings import IngestSettings
from schemas.feed import FeedBatch, decode_batch
from schemas.fix import Fix
from store.engine import open_engine
from store.fixes import FixWriter, count_fixes
from tests.ingest.ingest_harness import wait_for
from tests.support.services import Mosquitto

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _fixes(n: int, first: int = 0) -> list[Fix]:
    return [Fix(f"d{i}", T0, 4.35, 50.85, T0) for i in range(first, first + n)]


def test_a_batch_is_handed_on_after_its_commit_and_not_when_the_write_fails(sqlite_url: str) -> None:
    engine = open_engine(sqlite_url, pool_size=1)
    seen: list[tuple[int, int]] = []  # (fixes in the batch, rows committed when it was handed on)

    def on_committed(fixes: Sequence[Fix]) -> None:
        seen.append((len(fixes), count_fixes(engine)))  # another connection: sees committed rows only

    writer = CommittedFeed(FixWriter(engine), on_committed)
    try:
        assert writer.write(_fixes(3)) == 3
        assert seen == [(3, 3)]
        engine.dispose()
        broken = CommittedFeed(FixWriter(open_engine("sqlite:////nonexistent/dir/x.db")), on_committed)
        with pytest.raises(Exception):  # noqa: B017 (whatever the store raises, nothing is handed on)
            broken.write(_fixes(2, first=10))
        assert seen == [(3, 3)]
    finally:
        engine.dispose()


@pytest.mark.timeout(60)
async def test_committed_batches_reach_a_subscribed_replica_in_order(mosquitto: Mosquitto) -> None:
    settings = IngestSettings(mqtt_url=mosquitto.url, mqtt_protocol="5", mqtt_client_id="replica-a")
    received: list[FeedBatch] = []
    stop, subscribed = asyncio.Event(), asyncio.Event()
    listening = asyncio.create_task(
        listen_feed(settings, lambda p: received.append(decode_batch(p)), stop, subscribed=subscribed)
    )
    publisher = FeedPublisher(mosquitto.url, "ingest-a")
    try:
        await subscribed.wait()
        await publisher.connect()
        for n in range(50):  # as the writer's thread would: committed() from another thread
            await asyncio.to_thread(publisher.committed, _fixes(20, first=n * 20))
        await wait_for(lambda: len(received) == 50, 30, "every batch on the feed")
    finally:
        await publisher.close()
        stop.set()
        await listening
    assert [b.seq for b in received] == list(range(1, 51))
    assert {b.worker for b in received} == {publisher.worker}
    assert [f.device_id for b in received for f in b.fixes] == [f"d{i}" for i in range(1000)]
    assert publisher.unsent == 0
