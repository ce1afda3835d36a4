"""Settings: environment over TOML file over defaults, clear errors, and no password in anything printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from outpost.settings import load_settings
from schemas.config import ConfigError, redact_url


def test_environment_wins_over_the_file_which_wins_over_defaults(tmp_path: Path) -> None:
    config = tmp_path / "outpost.toml"
    config.write_text('[outpost]\nhttp_port = 9000\nretention_days = 30\nmqtt_url = "mqtt://b:1883"\n')
    settings = load_settings({"OUTPOST_CONFIG": str(config), "OUTPOST_HTTP_PORT": "9100"})
    assert settings.api.http_port == 9100
    assert settings.store.retention_days == 30
    assert settings.ingest.mqtt_url == "mqtt://b:1883"
    assert settings.ingest.batch_max_fixes == 2000


def test_a_bad_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="OUTPOST_HTTP_PORT"):
        load_settings({"OUTPOST_HTTP_PORT": "eighty"})
    with pytest.raises(ConfigError, match="OUTPOST_REGISTER_UNKNOWN_DEVICES"):
        load_settings({"OUTPOST_REGISTER_UNKNOWN_DEVICES": "maybe"})


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mqtt://dev-7:s3cret@broker:1883", "mqtt://dev-7:***@broker:1883"),
        ("postgresql://outpost:pw@db/outpost", "postgresql://outpost:***@db/outpost"),
        ("sqlite:///./outpost-data/outpost.db", "sqlite:///./outpost-data/outpost.db"),
        ("mqtt://127.0.0.1:1883", "mqtt://127.0.0.1:1883"),
    ],
)
def test_printed_urls_never_carry_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown
