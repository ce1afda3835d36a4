"""OUTPOST_THREAD_SWITCH_MS: the serving process hands the interpreter lock to worker threads that soon."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.outpost_run import running_outpost


@pytest.fixture
def python_default() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    yield
    sys.setswitchinterval(before)


CASES = [({}, 0.0005), ({"OUTPOST_THREAD_SWITCH_MS": "2"}, 0.002)]


@pytest.mark.parametrize(("setting", "expected_s"), CASES)
async def test_outpost_run_sets_the_switch_interval(
    python_default: None, tmp_path: Path, setting: dict[str, str], expected_s: float
) -> None:
    assert sys.getswitchinterval() == pytest.approx(0.005)
    async with running_outpost(f"sqlite:///{tmp_path / 'outpost.db'}", tmp_path, **setting):
        assert sys.getswitchinterval() == pytest.approx(expected_s)
