"""The `outpost` command's log lines carry the `extra` fields, on the console and as JSON lines."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from outpost.logs import ConsoleFormatter, JsonFormatter, configure_logging
from schemas.config import ConfigError


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def _record(**extra: object) -> logging.LogRecord:
    logger = logging.getLogger("ingest.test")
    return logger.makeRecord(
        "ingest.test", logging.WARNING, __file__, 1, "fix %s", ("rejected",), None, extra=extra
    )


def test_console_lines_show_the_extra_fields() -> None:
    line = ConsoleFormatter().format(_record(device_id="cam-7", reason="too_old", count=3))
    assert line.endswith("WARNING ingest.test fix rejected device_id='cam-7' reason='too_old' count=3")


def test_json_lines_are_one_object_with_the_extra_fields() -> None:
    entry = json.loads(JsonFormatter().format(_record(device_id="cam-7", count=3)))
    assert (
        entry["message"] == "fix rejected"
        and entry["level"] == "WARNING"
        and entry["logger"] == "ingest.test"
    )
    assert entry["device_id"] == "cam-7" and entry["count"] == 3
    assert entry["time"].endswith("+00:00")


def test_json_lines_carry_the_traceback_in_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    text = JsonFormatter().format(record)
    assert "\n" not in text and "ValueError: boom" in json.loads(text)["exception"]


def test_an_unknown_format_or_level_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTPOST_LOG_FORMAT", "xml")
    with pytest.raises(ConfigError, match="OUTPOST_LOG_FORMAT"):
        configure_logging("INFO")
    with pytest.raises(ConfigError, match="log-level"):
        configure_logging("LOUD", "console")


def test_the_cli_writes_json_lines_when_asked(tmp_path: Path) -> None:
    env = {
        "OUTPOST_LOG_FORMAT": "json",
        "OUTPOST_DATABASE_URL": f"sqlite:///{tmp_path}/outpost.db",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-m", "outpost.cli", "migrate"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    entries = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    migrated = [e for e in entries if e["logger"] == "store.migrate"]
    assert migrated and migrated[0]["dialect"] == "sqlite"
