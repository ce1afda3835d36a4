"""The audit log of reads and changes: a request's answer leaves only once its record is durable.

Handlers call `record` (synchronous: the entry joins the open batch). One committer task writes the open
batch in one transaction, chained (`store.audit_chain`), while the next batch fills: a group commit, so a
read costs no database round trip of its own (at 1,000 requests/s each commit carries what arrived during
the one before). The `durable_answers` middleware holds each response until the batches holding its
request's records are durable, and `settle_before_headers` does the same for a response a handler starts
itself (the event stream), before its headers leave.

Before each commit the committer yields the event loop a few turns, and again while they bring new records,
for `gather_s` at most: the requests whose bytes have already arrived are handled and join this commit
instead of the next. A lone request costs a few turns (measured: at most 5 % of its rate); 16 in flight
put 4.2 records in a commit instead of 3.2, so a commit's fixed cost (~0.16 ms of this process's CPU, and
the database's) is paid less often: 0.60 of the unaudited rate instead of 0.49 (benchmarks/bench_audit.py).

When the database cannot take a batch, it is appended to the local journal (`dispatch.audit_journal`,
fsynced) and the requests are answered; the journal is shipped, oldest first, before the next batch once
the database is back. With `audit_required` the requests are refused instead (503), and their records are
journaled all the same, marked `"answer": "refused"` (the attempt is worth knowing).
When neither can take it, the requests get 503 and the records wait for the next attempt. Nothing is
dropped: with `audit_max_pending` records unsettled, new requests are refused before they run.

A change is recorded before it is made (`dispatch.audit_changes`): its request is durable first, or it
is refused with nothing changed; what is recorded after that is answered with the change whatever the
audit's fate (the change is made: a 503 would tell the caller otherwise), durable all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import Counter
from sqlalchemy import Engine

from dispatch import audit_changes
from dispatch.audit_changes import CHANGE_ANSWERED, CHANGE_REQUESTED
from dispatch.audit_journal import AuditJournal
from dispatch.auth import PRINCIPAL_KEY, READ_METHODS
from dispatch.blocking import run_db
from dispatch.clock import Clock
from dispatch.problems import Unavailable, answered_status
from store import access

log = logging.getLogger(__name__)

AUDIT_WRITTEN = Counter("outpost_audit_written_total", "Audit entries written to the database")
AUDIT_COMMITS = Counter("outpost_audit_commits_total", "Audit batches committed (group commits)")
AUDIT_JOURNALED = Counter("outpost_audit_journaled_total", "Audit entries fsynced to the local journal")
AUDIT_REFUSED = Counter("outpost_audit_refused_total", "Requests refused because their audit was not durable")

_IDLE_SHIP_S = 0.1  # the shortest wait between shipments of the journal while nothing is recorded
# Turns of the event loop a commit gives the requests already received: one to read their sockets, one to
# run their handlers, one spare (a handler awaiting the token cache).
_GATHER_TURNS = 3


class _StillRefusedError(Exception):
    """The database refused the audit a moment ago: the batch goes to the journal without trying again."""


class _Batch:
    """Entries committed together, and how that ended for the requests waiting on them."""

    def __init__(self) -> None:
        self.entries: list[access.AuditEntry] = []
        self.settled = asyncio.Event()
        self.refusal: str | None = None

    async def wait(self, *, refuse: bool = True) -> None:
        await self.settled.wait()
        if refuse and self.refusal is not None:
            AUDIT_REFUSED.inc()
            raise Unavailable(self.refusal)


# The batches holding the records of the request being handled (None outside a request).
_HELD: contextvars.ContextVar[set[_Batch] | None] = contextvars.ContextVar("audit_held", default=None)
# The id of the change request being handled, carried by each of its records (None: not a change).
_CHANGE: contextvars.ContextVar[str | None] = contextvars.ContextVar("audit_change", default=None)


class AuditLog:
    """Record entries; commit them in groups; say when a request's entries are durable."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        journal: AuditJournal,
        *,
        required: bool,
        window_s: float,
        gather_s: float = 0.0,
        retry_s: float,
        max_pending: int,
    ) -> None:
        self._engine = engine
        self._appender = access.AuditAppender(engine)
        self._clock = clock
        self._journal = journal
        self._required = required
        self._window_s = window_s
        self._gather_s = gather_s
        self._retry_s = retry_s
        self._max_pending = max_pending
        self._open = _Batch()
        self._writing: _Batch | None = None
        self._unsettled = 0
        self._wake = asyncio.Event()
        self._next_ship_s = 0.0  # the event loop's time of the next attempt to ship the journal

    def record(self, actor: str, action: str, subject: str, detail: dict[str, Any] | None = None) -> None:
        """Add one entry, stamped with the clock's time, to the next commit; the request's answer waits."""
        at = datetime.fromtimestamp(self._clock.now(), UTC)
        change = _CHANGE.get()
        if change is not None:
            detail = {**(detail or {}), "request": change}
        self._open.entries.append(access.AuditEntry(at, actor, action, subject, detail))
        self._unsettled += 1
        held = _HELD.get()
        if held is not None:
            held.add(self._open)
        self._wake.set()

    @property
    def pending(self) -> int:
        """Entries recorded and not yet durable."""
        return self._unsettled

    def admit(self) -> None:
        """Refuse a request (503) while `max_pending` entries wait: backpressure instead of loss."""
        if self._unsettled >= self._max_pending:
            AUDIT_REFUSED.inc()
            raise Unavailable(f"the audit log is {self._unsettled} records behind; retry")

    async def settle(self, *, refuse: bool = True) -> None:
        """Wait until the entries this request recorded are settled; Unavailable when they cannot be made
        durable or `audit_required` refuses the answer (unless `refuse` is False: the answer leaves)."""
        held = _HELD.get()
        if not held:
            return
        batches = list(held)
        held.clear()
        for batch in batches:
            await batch.wait(refuse=refuse)

    async def flush(self) -> None:
        """Wait until every entry recorded so far is durable (Unavailable when it cannot be)."""
        for batch in (self._writing, self._open):
            if batch is not None and batch.entries and not batch.settled.is_set():
                self._wake.set()
                await batch.wait()

    async def run(self) -> None:
        """Commit batch after batch for as long as the app runs."""
        while True:
            if self._journal.holds_records and not self._open.entries:
                # Nothing recorded: ship the journal on its own.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(self._retry_s, _IDLE_SHIP_S))
            else:
                await self._wake.wait()
            self._wake.clear()
            if self._window_s and self._open.entries:
                await asyncio.sleep(self._window_s)  # a latency bound, not station time: not the clock's
            if self._gather_s and self._open.entries:
                await self._gather()
            batch, self._open = self._open, _Batch()
            self._writing = batch
            try:
                await self._commit(batch)
            except Exception:  # a bug must not leave requests waiting forever, nor lose the batch
                log.exception("audit commit failed unexpectedly; %d records kept", len(batch.entries))
                if not batch.settled.is_set():
                    self._open.entries[:0] = batch.entries
                    self._settle(batch, "the audit log failed unexpectedly", durable=False)
            finally:
                self._writing = None

    async def _gather(self) -> None:
        """Yield the loop while each round of turns brings records, until `gather_s` has passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._gather_s  # a latency bound: not the clock's time
        seen = 0
        while len(self._open.entries) > seen and loop.time() < deadline:
            seen = len(self._open.entries)
            for _ in range(_GATHER_TURNS):
                await asyncio.sleep(0)

    async def _commit(self, batch: _Batch) -> None:
        try:
            if self._journal.holds_records:
                # Older records first, so the chain keeps their order; while the database has refused them,
                # new batches join them (an fsync) without a connection attempt each; retried every retry_s.
                now_s = asyncio.get_running_loop().time()
                if now_s < self._next_ship_s:
                    raise _StillRefusedError("the journal is not shipped yet")
                self._next_ship_s = now_s + self._retry_s
                await self._ship()
            if batch.entries:
                await run_db(self._appender.write, batch.entries)
        except Exception as exc:  # whatever stops the database: the journal takes the batch
            if not isinstance(exc, _StillRefusedError):
                log.warning("the database refuses the audit; journaling to %s: %s", self._journal.path, exc)
            if batch.entries:
                await self._fall_back(batch)
            return
        AUDIT_WRITTEN.inc(len(batch.entries))
        AUDIT_COMMITS.inc(bool(batch.entries))
        self._settle(batch, None)

    async def _ship(self) -> None:
        try:
            entries = await asyncio.to_thread(self._journal.read)
        except OSError:  # kept for a later attempt; the database takes the new records meanwhile
            log.error("audit journal %s cannot be read", self._journal.path, exc_info=True)
            return
        written = await run_db(access.write_audit_once, self._engine, entries)
        await asyncio.to_thread(self._journal.clear)
        if written:
            AUDIT_WRITTEN.inc(len(entries))
        log.info("audit journal shipped: %d records (%s)", len(entries), "written" if written else "were in")

    async def _fall_back(self, batch: _Batch) -> None:
        entries = [_refused(e) for e in batch.entries] if self._required else batch.entries
        try:
            await asyncio.to_thread(self._journal.append, entries)
        except OSError:
            log.error("audit journal %s cannot be written either", self._journal.path, exc_info=True)
            self._open.entries[:0] = [_refused(e) for e in batch.entries]  # kept for the next attempt
            why = "the audit log can be written neither to the database nor to its journal"
            self._settle(batch, why, durable=False)
            await asyncio.sleep(self._retry_s)
            self._wake.set()
            return
        AUDIT_JOURNALED.inc(len(entries))
        why = "the audit record cannot reach the database (OUTPOST_AUDIT_REQUIRED)"
        self._settle(batch, why if self._required else None)

    def _settle(self, batch: _Batch, refusal: str | None, *, durable: bool = True) -> None:
        if durable:  # in the database or the journal
            self._unsettled -= len(batch.entries)
        batch.refusal = refusal
        batch.settled.set()

    async def lifecycle(self) -> AsyncIterator[None]:
        """Run the committer while the app runs; make what remains durable at shutdown (for cleanup_ctx)."""
        task = asyncio.create_task(self.run(), name="audit-commit")
        try:
            yield
        finally:
            try:
                await self.flush()
            except Unavailable:
                log.error("audit entries not durable at shutdown: %d", self.pending)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await asyncio.to_thread(self._appender.close)


def _refused(entry: access.AuditEntry) -> access.AuditEntry:
    detail = entry.detail or {}
    if detail.get("answer") == "refused" or ("request" in detail and entry.action != CHANGE_REQUESTED):
        return entry  # refused already, or made after its change was recorded: answered whatever comes
    return dataclasses.replace(entry, detail={**(entry.detail or {}), "answer": "refused"})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def durable_answers(audit: AuditLog) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Middleware: a response leaves once the audit entries its request recorded are durable."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        api = request.path.startswith("/v1/")
        if api:
            audit.admit()
        held = _HELD.set(set())
        try:
            if api and request.method not in READ_METHODS:
                return await _change(audit, request, handler)
            return await _answer(audit, request, handler)
        finally:
            _HELD.reset(held)

    return middleware


async def _answer(audit: AuditLog, request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except Exception:
        # An error answer waits for its records as well; an audit that cannot be written does not replace
        # the handler's own error.
        with contextlib.suppress(Unavailable):
            await audit.settle()
        raise
    await audit.settle()
    return response


async def _change(audit: AuditLog, request: web.Request, handler: Handler) -> web.StreamResponse:
    """The request is durable before the handler runs (or it is refused, 503, with nothing changed); the
    answer waits for the records made after it, and leaves whatever their fate."""
    principal = request.get(PRINCIPAL_KEY)
    actor = principal.actor if principal is not None else "anonymous"
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    subject = audit_changes.subject_of(request.rel_url.raw_path)
    change = _CHANGE.set(secrets.token_hex(8))
    try:
        body = await request.read()
        detail = audit_changes.requested(request.method, route, body)
        audit.record(actor, CHANGE_REQUESTED, subject, detail)
        await audit.settle()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except Exception as exc:
            status = answered_status(exc)
            raise
        finally:
            audit.record(actor, CHANGE_ANSWERED, subject, {"status": status})
            await audit.settle(refuse=False)
    finally:
        _CHANGE.reset(change)


def settle_before_headers(audit: AuditLog) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """on_response_prepare hook: a response started inside its handler waits the same way. The safety net:
    such a handler should await `settle()` before `prepare`, so that a refusal is a clean 503; a refusal
    here keeps the answer from leaving but breaks the response (aiohttp has begun it)."""

    async def hook(_request: web.Request, _response: web.StreamResponse) -> None:
        await audit.settle()

    return hook
