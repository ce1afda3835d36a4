"""The collector policy: survivors are collected once more and frozen, so no pause walks the live picture."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from dispatch.collector import GC_NEVER, GC_THRESHOLD0, GcPolicy, freeze_survivors, reclaim_frozen
from tests.dispatch.conftest import LiveApi


class Node:
    """A GC-tracked object that can sit in a reference cycle."""

    def __init__(self) -> None:
        self.other: Node | None = None


def _walked(obj: object) -> bool:
    """Whether a collection of some generation would walk `obj` (frozen objects are in none of them)."""
    return any(o is obj for generation in range(3) for o in gc.get_objects(generation))


@pytest.fixture(autouse=True)
def _thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


def test_freeze_survivors_frees_cycles_and_freezes_survivors() -> None:
    a, b = Node(), Node()
    a.other, b.other = b, a
    dead = Node()
    dead.other = dead
    del dead

    assert freeze_survivors() >= 1  # the self-referencing node
    assert not _walked(a)
    assert not _walked(b)
    assert a.other is b  # frozen, not copied or cleared


def test_a_cycle_frozen_while_alive_is_freed_by_the_reclaim() -> None:
    a, b = Node(), Node()
    a.other, b.other = b, a
    freeze_survivors()  # a and b are in use: frozen
    gone = weakref.ref(a)
    del a, b  # now cyclic garbage, in the permanent generation
    freeze_survivors()
    assert gone() is not None  # the price of freezing
    assert reclaim_frozen() >= 2
    assert gone() is None


async def test_policy_freezes_what_survives_while_it_runs() -> None:
    task = asyncio.create_task(GcPolicy.run(interval_s=0))
    await asyncio.sleep(0)
    assert gc.get_threshold() == (GC_THRESHOLD0, GC_NEVER, GC_NEVER)
    survivor = Node()
    assert _walked(survivor)
    for _ in range(3):
        await asyncio.sleep(0)
    assert not _walked(survivor)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_thresholds_come_back_after_the_last_app_stops() -> None:
    gc.set_threshold(700, 10, 10)
    first = asyncio.create_task(GcPolicy.run(interval_s=60))
    second = asyncio.create_task(GcPolicy.run(interval_s=60))
    await asyncio.sleep(0)

    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    assert gc.get_threshold() == (GC_THRESHOLD0, GC_NEVER, GC_NEVER)  # the second app still runs
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0  # the collector sees everything again


async def test_the_api_runs_the_policy(sqlite_api: LiveApi) -> None:
    # The benchmark and the service both build the API with init_app, so both run the same policy.
    await asyncio.sleep(0)
    assert gc.get_threshold() == (GC_THRESHOLD0, GC_NEVER, GC_NEVER)
    assert any(t.get_name() == "gc-policy" for t in asyncio.all_tasks())
