"""Wiring for running past one process: the live change feed between ingest workers and API replicas, the
one replica that leads the incident loop, and what the replicas tell each other (unit changes, the
leader's events).

The root calls these; they only build and start parts (ingest.feed publishes, ingest.feed_listen receives,
dispatch.follow applies), so root.py stays a list of parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

from sqlalchemy import Engine

from dispatch.clock import Clock
from dispatch.events import Event
from dispatch.fleet import Fleet
from dispatch.follow import FeedFollower
from dispatch.incidents.notify import device_messages
from dispatch.leader import Leadership
from dispatch.patrol import event_messages
from dispatch.replica_events import ReplicaEvents
from dispatch.settings import ApiSettings, DispatchSettings
from ingest.feed import FeedPublisher
from ingest.feed_listen import listen_feed, listen_internal
from ingest.settings import IngestSettings
from outpost.supervise import Supervisor
from schemas.topics import EVENTS_FEED_FILTER, FIXES_FEED_FILTER
from store.leader import AdvisoryLease, SoleLease
from store.notify import UNITS_CHANNEL, listen_payloads

log = logging.getLogger(__name__)

# How long a starting replica waits for the broker to acknowledge its feed subscription before it loads
# its snapshot all the same (and relies on its sweeps until the subscription comes up).
_SUBSCRIBE_TIMEOUT_S = 30.0


def start_feed_publisher(
    stack: contextlib.AsyncExitStack, supervisor: Supervisor, ingest: IngestSettings
) -> FeedPublisher | None:
    """The ingest worker's feed publisher, connecting in the background; None when the feed is off or
    there is no external broker for replicas to hear it on."""
    if not (ingest.live_feed and ingest.mqtt_url):
        return None
    feed = FeedPublisher(ingest.mqtt_url, ingest.mqtt_client_id, ca_file=ingest.mqtt_tls_ca)
    supervisor.run(feed.connect(), "live-feed-publisher")
    stack.push_async_callback(feed.close)
    return feed


async def follow_feed(
    supervisor: Supervisor,
    ingest: IngestSettings,
    api: ApiSettings,
    engine: Engine,
    fleet: Fleet,
    clock: Clock,
    stop: asyncio.Event,
) -> FeedFollower:
    """Subscribe to the feed, then load the snapshot, then apply the feed (see dispatch.follow)."""
    follower = FeedFollower(
        engine, fleet, clock, max_fix_age_s=api.max_fix_age_s, sweep_every_s=api.api_follow_sweep_s
    )
    subscribed = asyncio.Event()
    supervisor.run(listen_feed(ingest, follower.on_payload, stop, subscribed=subscribed), "live-feed")
    try:
        await asyncio.wait_for(subscribed.wait(), _SUBSCRIBE_TIMEOUT_S)
    except TimeoutError:
        log.error(
            "the broker did not acknowledge the live feed subscription (%s) within %.0f s: check that its "
            "ACL lets Outpost's service account read it; following by database sweeps meanwhile",
            FIXES_FEED_FILTER,
            _SUBSCRIBE_TIMEOUT_S,
        )
    await follower.load(api.index_lookback_s)
    supervisor.run(follower.apply_forever(), "live-feed-apply")
    supervisor.run(follower.sweep_forever(), "live-feed-sweep")
    return follower


def incident_leadership(
    engine: Engine, clock: Clock, dispatch: DispatchSettings, http_port: int
) -> Leadership:
    """Who leads the incident loop among the `api` replicas: the holder of the PostgreSQL advisory lock;
    on SQLite, the one process there is."""
    name = f"{socket.gethostname()}:{http_port}:{os.getpid()}"
    lease: AdvisoryLease | SoleLease
    lease = SoleLease(name) if engine.dialect.name == "sqlite" else AdvisoryLease(engine, name)
    return Leadership(lease, clock, retry_s=dispatch.incident_lead_retry_s)


def follow_replicas(
    supervisor: Supervisor,
    ingest: IngestSettings,
    engine: Engine,
    fleet: Fleet,
    replicas: ReplicaEvents,
    stop: asyncio.Event,
) -> None:
    """An api replica's ears for the others: the units they change (NOTIFY outpost_units, re-read into the
    picture) and the events only the leader makes (the broker's internal events topic, to the consoles)."""
    supervisor.run(listen_payloads(engine, fleet.follow_units, stop, UNITS_CHANNEL), "follow-units")
    events = listen_internal(
        ingest, replicas.incoming, stop, EVENTS_FEED_FILTER, "events", subscribed=asyncio.Event()
    )
    supervisor.run(events, "replica-events")


def broker_messages(
    event: Event, leadership: Leadership | None, replicas: ReplicaEvents | None
) -> list[tuple[str, bytes]]:
    """What the broker is sent for a bus event: the devices' messages (offers, outcomes), the patrol events
    on `outpost/v1/events/…` (from one process: the leader, when there are replicas), and what the other
    replicas' consoles must hear (dispatch.replica_events)."""
    patrol = event_messages(event) if leadership is None or leadership.leading else []
    relayed = replicas.outgoing(event) if replicas is not None else []
    return [*device_messages(event), *patrol, *relayed]
