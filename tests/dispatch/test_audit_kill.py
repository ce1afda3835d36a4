"""kill -9 of a real `outpost run` right after N audited reads were answered: every one of the N is in the
audit log after the restart and `outpost audit verify` passes (both stores). The negative control runs the
old fire-and-forget writer (tests/dispatch/audit_fire_and_forget.py) and must lose records."""

from __future__ import annotations

import json
import os
import signal
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from store import access
from store.engine import open_engine
from tests.sim import outpost_process
from tests.sim.outpost_process import OutpostProcess, missing_commands
from tests.support.services import Mosquitto

pytestmark = pytest.mark.slow

READS = 120


@pytest.fixture(autouse=True)
def _outpost_runs() -> None:
    reason = missing_commands()
    if reason:
        pytest.skip(reason)


def _call(process: OutpostProcess, method: str, path: str, body: object = None) -> tuple[int, bytes]:
    request = urllib.request.Request(
        process.http_url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {process.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read()


def _answered_then_killed(url: str, mosquitto: Mosquitto, workdir: Path) -> set[str]:
    """Start outpost, answer READS nearest queries (8 in flight), kill -9; the subjects answered."""
    process = OutpostProcess(url, mosquitto.url, workdir).start()
    try:
        _call(process, "POST", "/v1/units", {"id": "u1", "name": "A", "kind": "police"})
        subjects = [f"point:{4 + i / 1000:.6f},50.850000" for i in range(READS)]

        def read(i: int) -> int:
            return _call(process, "GET", f"/v1/units/nearest?lon={4 + i / 1000:.3f}&lat=50.85")[0]

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(read, range(READS))) == [200] * READS
        os.kill(process.pid, signal.SIGKILL)  # no flush, no goodbye
        assert process.proc is not None
        process.proc.wait()
    finally:
        process.close()
    return set(subjects)


def _audited_after_restart(url: str, mosquitto: Mosquitto, workdir: Path) -> set[str]:
    """Restart the real `outpost` (which ships any journal), check the chain, return the nearest subjects."""
    with OutpostProcess(url, mosquitto.url, workdir) as process:
        _call(process, "GET", "/v1/audit?action=nearest&limit=1")  # waits for what the restart shipped
        print(process._cli("audit", "verify"))  # raises unless it exits 0
    engine = open_engine(url, pool_size=1)
    try:
        entries = access.read_audit(engine, access.AuditQuery(action="nearest"), limit=10 * READS)
    finally:
        engine.dispose()
    return {e.subject for e in entries}


def test_every_answered_read_survives_kill_9(store_url: str, mosquitto: Mosquitto, tmp_path: Path) -> None:
    answered = _answered_then_killed(store_url, mosquitto, tmp_path)
    audited = _audited_after_restart(store_url, mosquitto, tmp_path)
    assert answered - audited == set()
    assert len(audited) == READS


def test_negative_control_the_fire_and_forget_writer_loses_reads(
    store_url: str, mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patched:
        patched.setattr(
            outpost_process, "_OUTPOST", [sys.executable, "-m", "tests.dispatch.audit_fire_and_forget"]
        )
        answered = _answered_then_killed(store_url, mosquitto, tmp_path)
    audited = _audited_after_restart(store_url, mosquitto, tmp_path)
    assert answered - audited, "the fire-and-forget writer lost nothing: this test cannot see a loss"
