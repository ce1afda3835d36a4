"""Supervision of one run: its tasks live in one `asyncio.TaskGroup`, and the run stops on a signal, on
request, or when a critical task (ingest) fails.

A task that is not critical (the follower, a device's reply) is logged when it fails and the run goes on;
its caller still sees the failure through the future `spawn` returns. At stop, ingest finishes its last
batch and acknowledges it before the rest is cancelled, so the broker session closes with nothing owed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long ingest may take at stop to make its open batch durable and acknowledge it (s).
_DRAIN_TIMEOUT_S = 30.0


class IngestFailedError(RuntimeError):
    """The ingest task died: the process stops rather than run on without storing fixes."""


class Supervisor:
    """Starts the run's tasks in its task group and waits for the end of the run."""

    def __init__(self, group: asyncio.TaskGroup) -> None:
        self._group = group
        self._tasks: set[asyncio.Task[None]] = set()
        self._critical: set[asyncio.Task[None]] = set()
        self._failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    def run(self, coro: Coroutine[Any, Any, object], name: str, *, critical: bool = False) -> None:
        """Run `coro` for the run's lifetime; if `critical`, its failure stops the run."""
        task = self._start(self._guarded(coro, name, critical, None), name)
        if critical:
            self._critical.add(task)

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Future[T]:
        """Run a short piece of work (a device's reply); its result or failure arrives on the future."""
        result: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._start(self._guarded(coro, name, False, result), name)
        return result

    def cancel_rest(self) -> None:
        """Cancel every task still running (the task group then awaits them)."""
        for task in self._tasks:
            task.cancel()

    def _start(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = self._group.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def wait_until(self, stop: asyncio.Event) -> None:
        """Return once `stop` is set (after the critical tasks drained), or raise `IngestFailedError`."""
        stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        both: set[asyncio.Future[Any]] = {stopping, self._failed}
        await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        stop.set()
        if self._critical:
            await asyncio.wait(self._critical, timeout=_DRAIN_TIMEOUT_S)
        if self._failed.done():
            raise IngestFailedError("ingest failed") from self._failed.result()

    async def _guarded(
        self, coro: Coroutine[Any, Any, T], name: str, critical: bool, result: asyncio.Future[T] | None
    ) -> None:
        # Nothing escapes into the task group, which would cancel every other task of the run.
        try:
            value = await coro
        except asyncio.CancelledError:
            if result is not None:
                result.cancel()
            raise
        except Exception as exc:
            log.error("task %s failed", name, exc_info=exc)
            if result is not None:
                result.set_exception(exc)
            if critical and not self._failed.done():
                self._failed.set_result(exc)
            return
        if result is not None:
            result.set_result(value)


@contextlib.asynccontextmanager
async def supervised() -> AsyncIterator[Supervisor]:
    """A supervisor whose tasks are all cancelled and awaited when the block ends."""
    try:
        async with asyncio.TaskGroup() as group:
            supervisor = Supervisor(group)
            try:
                yield supervisor
            finally:
                supervisor.cancel_rest()
    except BaseExceptionGroup as failed:
        # The tasks never raise into the group (`_guarded`): what it carries is the block's own error (an
        # address in use, a database away). The caller sees that error itself, as it would without a group.
        if len(failed.exceptions) == 1:
            raise failed.exceptions[0] from None
        raise


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
