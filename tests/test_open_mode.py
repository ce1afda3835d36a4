"""Open mode at start (issue 15, item 1): said with one WARNING line whenever it runs, and refused with one
line and exit 2, naming both settings, when a listener devices reach is not loopback, unless
OUTPOST_OPEN_MODE_ON_NETWORK insists."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.settings import IngestSettings
from outpost.open_mode import check_open_mode
from schemas.config import ConfigError
from tests.support.services import REPO

OPEN = IngestSettings(register_unknown_devices=True)


def test_closed_mode_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        check_open_mode(IngestSettings(mqtt_listen="0.0.0.0:1883"), "0.0.0.0")
    assert caplog.records == []


def test_open_mode_on_loopback_runs_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        check_open_mode(OPEN, "127.0.0.1")
        check_open_mode(IngestSettings(register_unknown_devices=True, mqtt_listen="[::1]:1883"), "localhost")
    assert len(caplog.records) == 2
    line = caplog.records[0].getMessage()
    assert "OUTPOST_REGISTER_UNKNOWN_DEVICES=true" in line and "without credentials" in line, line


@pytest.mark.parametrize(
    ("mqtt_listen", "http_host", "named"),
    [
        ("127.0.0.1:1883", "0.0.0.0", "'0.0.0.0' (OUTPOST_HTTP_HOST)"),
        (":1883", "127.0.0.1", "'0.0.0.0' (OUTPOST_MQTT_LISTEN)"),  # no host: every interface
        ("10.0.0.5:1883", None, "'10.0.0.5' (OUTPOST_MQTT_LISTEN)"),
        ("127.0.0.1:1883", "station.example.org", "'station.example.org' (OUTPOST_HTTP_HOST)"),
    ],
)
def test_open_mode_on_a_network_listener_is_refused_naming_both_settings(
    mqtt_listen: str, http_host: str | None, named: str
) -> None:
    settings = IngestSettings(register_unknown_devices=True, mqtt_listen=mqtt_listen)
    with pytest.raises(ConfigError) as refused:
        check_open_mode(settings, http_host)
    line = str(refused.value)
    assert "\n" not in line and named in line, line
    assert "OUTPOST_REGISTER_UNKNOWN_DEVICES=true" in line and "OUTPOST_OPEN_MODE_ON_NETWORK=true" in line


def test_the_second_setting_lets_it_run_with_the_warning_naming_the_exposed_listener(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = IngestSettings(register_unknown_devices=True, open_mode_on_network=True, mqtt_listen=":1883")
    with caplog.at_level(logging.WARNING):
        check_open_mode(settings, "0.0.0.0")
    (record,) = caplog.records
    assert "'0.0.0.0' (OUTPOST_HTTP_HOST)" in record.getMessage()


def test_an_external_broker_is_not_our_listener() -> None:
    check_open_mode(IngestSettings(register_unknown_devices=True, mqtt_url="mqtt://broker:1883"), "127.0.0.1")


@pytest.mark.parametrize("command", [["run"], ["demo", "--duration", "1"]])
def test_the_real_command_stops_with_one_line_and_status_2(command: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    env.update(
        PYTHONPATH=str(REPO),
        OUTPOST_DATABASE_URL=f"sqlite:///{tmp_path / 'outpost.db'}",
        OUTPOST_REGISTER_UNKNOWN_DEVICES="true",  # `outpost demo` sets it itself
        OUTPOST_HTTP_HOST="0.0.0.0",
        OUTPOST_HTTP_PORT="0",
        OUTPOST_MQTT_LISTEN="127.0.0.1:0",
    )
    done = subprocess.run(
        [sys.executable, "-m", "outpost.cli", *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("outpost: configuration error: OUTPOST_REGISTER_UNKNOWN_DEVICES=true"), last
    assert "OUTPOST_HTTP_HOST" in last and "OUTPOST_OPEN_MODE_ON_NETWORK=true" in last, last
