"""One incident leader: the replica holding the lease runs the incident loop; the others only read.

Incident state and its timers (offer timeouts, SLA deadlines, automatic re-dispatch, arrival detection) are
single-writer. Every `outpost api` replica tries the lease (store.leader: a PostgreSQL advisory lock on a
connection of its own) every `incident_lead_retry_s`; the one holding it starts the incident service,
which re-arms every stored offer timeout and SLA deadline from the database (offers already sent are
not sent again: only their timeouts are armed, and an expiring one offers the *next* unit).

Roll calls are the same kind of state (open ones and their deadlines are held in memory by the desk that
started them), and so are the device messages that act on the field desk: the leader alone starts roll
calls, runs the desk's timers (roll call deadlines, automatic check-ins) and takes the devices' status
reports, check-ins and roll-call answers (dispatch.field.plugin, outpost.root).

The others serve every read, and refuse the writes that need the leader (POST, PUT, PATCH, DELETE under
/v1/incidents and /v1/rollcalls) with 503, `Retry-After: 1` and the leader's name: nothing was done, so
the client (or the load balancer, see deploy/haproxy.cfg) retries on another replica, with the same
Idempotency-Key. They also ignore device messages, which the leader hears on its own MQTT session. What
only the leader then publishes reaches the others' consoles through dispatch.replica_events.

A leader that loses its lease (its database session dropped) stops its timers and then asks the process
to stop (`on_deposed`): a replica that was once leader restarts clean as a follower rather than carry
half-stopped incident state. Meanwhile another replica has taken the lease and resumed from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from aiohttp import web

from dispatch.blocking import run_db
from dispatch.clock import Clock
from dispatch.incidents.plugin import IncidentsPlugin
from dispatch.incidents.service import IncidentService
from dispatch.problems import Handler, Unavailable

log = logging.getLogger(__name__)

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_LEADER_WRITES = ("/v1/incidents", "/v1/rollcalls")
_NAME_CACHE_S = 1.0  # a burst of refused writes asks the database for the leader's name once a second


class Lease(Protocol):
    """The lock only one replica holds (store.leader). Blocking methods: called in worker threads."""

    @property
    def name(self) -> str: ...

    def try_acquire(self) -> bool:
        """Take it if free; whether this replica holds it now."""
        ...

    def held(self) -> bool:
        """Whether this replica still holds it."""
        ...

    def holder(self) -> str | None:
        """Who holds it, if anyone."""
        ...

    def release(self) -> None:
        """Let it go."""
        ...


class Leadership:
    """Tries the lease until it holds it, then watches it; `leading` says which side this replica is on."""

    def __init__(self, lease: Lease, clock: Clock, *, retry_s: float) -> None:
        self._lease, self._clock, self._retry_s = lease, clock, retry_s
        self.leading = False
        self.elections = 0
        self._holder: tuple[float, str | None] = (-_NAME_CACHE_S, None)
        self._led = asyncio.Event()  # set once this replica took the lease (it never leads twice)

    @property
    def name(self) -> str:
        """This replica's name (what the others show as the leader when it leads)."""
        return self._lease.name

    async def lead(self) -> None:
        """Return once this replica holds the lease (trying every `retry_s`)."""
        while not await run_db(self._lease.try_acquire):
            await self._clock.sleep(self._retry_s)
        self.leading = True
        self.elections += 1
        self._led.set()
        log.info("this replica leads the incident loop", extra={"replica": self.name})

    async def wait_leading(self) -> None:
        """Return once this replica leads (the incident plugin's `lead` takes the lease)."""
        await self._led.wait()

    async def hold(self) -> None:
        """Return once the lease is lost (checked every `retry_s`)."""
        while await run_db(self._lease.held):
            await self._clock.sleep(self._retry_s)
        self.leading = False
        log.error("this replica lost the incident lead", extra={"replica": self.name})

    async def leader(self) -> str | None:
        """The current leader's name (cached for a second), or None."""
        if self.leading:
            return self.name
        asked_s, name = self._holder
        if time.monotonic() - asked_s >= _NAME_CACHE_S:
            name = await run_db(self._lease.holder)
            self._holder = (time.monotonic(), name)
        return name

    def release(self) -> None:
        """Let the lease go (blocking, brief)."""
        self.leading = False
        self._lease.release()


class LeaderIncidentsPlugin(IncidentsPlugin):
    """The incident API whose loop runs only while this replica leads; followers refuse its writes."""

    def __init__(
        self, service: IncidentService, leadership: Leadership, on_deposed: Callable[[], None]
    ) -> None:
        super().__init__(service)
        self.leadership = leadership
        self._on_deposed = on_deposed

    def setup(self, app: web.Application) -> None:
        """The routes, the leadership's life, and the refusal of writes while following."""
        super().setup(app)
        app.middlewares.append(self._writes_need_the_leader)

    async def _lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        running = asyncio.get_running_loop().create_task(self._run(app), name="incident-lead")
        try:
            yield
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
            await asyncio.to_thread(self.leadership.release)

    async def _run(self, app: web.Application) -> None:
        await self.leadership.lead()
        try:
            lifecycle = super()._lifecycle(app)  # start (re-arming from the database), purge, stop
            await anext(lifecycle)
            try:
                await self.leadership.hold()
            finally:
                with contextlib.suppress(StopAsyncIteration):
                    await anext(lifecycle)
        except Exception:
            # Starting the loop failed (the database went away as this replica took the lead): holding the
            # lock with no timers armed would stop every other replica from taking over.
            log.exception("the incident loop could not run; giving the lead up")
            await asyncio.to_thread(self.leadership.release)
        self._on_deposed()

    @web.middleware
    async def _writes_need_the_leader(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if (
            self.leadership.leading
            or request.method in _READ_METHODS
            or not request.path.startswith(_LEADER_WRITES)
        ):
            return await handler(request)
        leader = await self.leadership.leader()
        raise Unavailable(
            f"this replica does not lead the incident loop; {leader or 'no replica'} does: retry",
            leader=leader,
            retry_after_s=1,
        )
