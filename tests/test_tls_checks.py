"""outpost.tls_checks: the TLS settings are checked together at start; a combination that cannot work is
one ConfigError naming the settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from outpost.settings import load_settings
from outpost.tls_checks import check_tls
from schemas.config import ConfigError
from tests.support.tls import self_signed


def _check(**env: str) -> object:
    settings = load_settings(env)
    return check_tls(settings.api, settings.ingest)


def test_the_http_context_comes_back_and_nothing_set_is_plain(tmp_path: Path) -> None:
    pair = self_signed(tmp_path, "api")
    assert _check() is None
    assert _check(OUTPOST_HTTP_TLS_CERT=str(pair.cert), OUTPOST_HTTP_TLS_KEY=str(pair.key)) is not None


def test_the_embedded_brokers_pair_is_checked(tmp_path: Path) -> None:
    pair, other = self_signed(tmp_path, "mqtt"), self_signed(tmp_path, "other")
    assert _check(OUTPOST_MQTT_TLS_CERT=str(pair.cert), OUTPOST_MQTT_TLS_KEY=str(pair.key)) is None
    with pytest.raises(ConfigError, match=r"^OUTPOST_MQTT_TLS_KEY=.*does not belong"):
        _check(OUTPOST_MQTT_TLS_CERT=str(pair.cert), OUTPOST_MQTT_TLS_KEY=str(other.key))


def test_an_embedded_pair_beside_an_external_broker_is_refused(tmp_path: Path) -> None:
    pair = self_signed(tmp_path, "mqtt")
    with pytest.raises(ConfigError, match=r"^OUTPOST_MQTT_TLS_CERT and OUTPOST_MQTT_TLS_KEY are the"):
        _check(
            OUTPOST_MQTT_URL="mqtts://broker:8883",
            OUTPOST_MQTT_TLS_CERT=str(pair.cert),
            OUTPOST_MQTT_TLS_KEY=str(pair.key),
        )


def test_trust_for_a_broker_not_reached_over_tls_is_refused(tmp_path: Path) -> None:
    pair = self_signed(tmp_path, "ca")
    with pytest.raises(ConfigError, match=r"^OUTPOST_MQTT_TLS_CA is set but neither OUTPOST_MQTT_URL"):
        _check(OUTPOST_MQTT_URL="mqtt://broker:1883", OUTPOST_MQTT_TLS_CA=str(pair.cert))
    with pytest.raises(ConfigError, match=r"^OUTPOST_MQTT_TLS_CA is set"):
        _check(OUTPOST_MQTT_TLS_CA=str(pair.cert))  # the embedded broker
    assert _check(OUTPOST_MQTT_URL="mqtts://broker:8883", OUTPOST_MQTT_TLS_CA=str(pair.cert)) is None
    admin = "mqtts://admin:pw@broker:8883"
    assert (
        _check(
            OUTPOST_MQTT_URL="mqtt://b:1883", OUTPOST_MQTT_ADMIN_URL=admin, OUTPOST_MQTT_TLS_CA=str(pair.cert)
        )
        is None
    )


def test_a_ca_file_that_is_not_one_is_named(tmp_path: Path) -> None:
    pair = self_signed(tmp_path, "ca")
    with pytest.raises(ConfigError, match=f"^OUTPOST_MQTT_TLS_CA={pair.key}: no PEM certificate"):
        _check(OUTPOST_MQTT_URL="mqtts://broker:8883", OUTPOST_MQTT_TLS_CA=str(pair.key))
