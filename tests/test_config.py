"""Settings: environment over TOML file over defaults, every value checked against the range its field
declares, one clear line for a bad one, and no password in anything printed.

The bound cases are generated from the declarations themselves (`settings_of`): a setting added with a
range is tested at its bounds without anyone writing a test for it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.mqtt.subscriber import resolve_protocol
from ingest.pipeline import UNSAFE_MODES
from outpost.cli import main
from outpost.settings import (
    SETTINGS_CLASSES,
    Setting,
    env_text,
    field_comments,
    load_settings,
    settings_of,
)
from schemas.config import SECRET_SETTINGS, ConfigError, redact_setting, redact_url
from tests.support.services import REPO

SETTINGS = [s for cls in SETTINGS_CLASSES for s in settings_of(cls)]
BY_NAME = {s.name: s for s in SETTINGS}


def _part(settings: Any, name: str) -> Any:
    """The loaded value of field `name`, whichever concern owns it."""
    for part in (getattr(settings, f.name) for f in dataclasses.fields(settings)):
        if hasattr(part, name):
            return getattr(part, name)
    raise KeyError(name)


def _bound_cases(s: Setting) -> Iterator[tuple[str, bool]]:
    """(value as written in the environment, accepted?) at and just beyond each declared bound."""
    m = s.meta
    if s.base is int:
        for bound, inside, outside in ((m.ge, 0, -1), (m.gt, 1, 0), (m.le, 0, 1), (m.lt, -1, 0)):
            if bound is not None:
                yield str(int(bound) + inside), True
                yield str(int(bound) + outside), False
    elif s.base is float:
        # (bound, the way out of the range, the bound itself allowed?)
        edges = (
            (m.ge, -math.inf, True),
            (m.gt, -math.inf, False),
            (m.le, math.inf, True),
            (m.lt, math.inf, False),
        )
        for bound, outward, closed in edges:
            if bound is not None:
                yield repr(float(bound)), closed
                step = outward if closed else -outward
                yield repr(math.nextafter(float(bound), step)), not closed
        yield from (("nan", False), ("inf", False), ("-inf", False))
    elif s.base is bool:
        yield from (("true", True), ("false", True), ("1", True), ("0", True), ("maybe", False), ("2", False))
    elif s.base is str:
        if m.min_length is not None:
            yield "x" * m.min_length, True
            if m.min_length > 0:
                yield "x" * (m.min_length - 1), False
        if m.max_length is not None:
            yield "x" * m.max_length, True
            yield "x" * (m.max_length + 1), False
        examples = [str(e) for e in m.examples or ()]
        yield from ((e, True) for e in examples)
        if m.pattern is not None:
            junk = ["", "nonsense", "x y", *(f"x{e}" for e in examples), *(f"{e}x y" for e in examples)]
            yield from ((j, False) for j in dict.fromkeys(junk) if not re.search(m.pattern, j))
    elif s.base is tuple:
        yield from ((str(e), True) for e in m.examples or ())


CASES = [(s.variable, value, ok) for s in SETTINGS for value, ok in _bound_cases(s)]


def _case_id(variable: str, value: str, ok: bool) -> str:
    shown = repr(value) if len(value) <= 40 else f"<{len(value)} chars>"
    return f"{variable}={shown}-{'ok' if ok else 'refused'}"


def test_every_setting_declares_what_it_allows_and_what_it_means() -> None:
    comments = {name: text for cls in SETTINGS_CLASSES for name, text in field_comments(cls).items()}
    for s in SETTINGS:
        assert comments.get(s.name), f"{s.variable} has no comment saying what it means"
        m = s.meta
        if s.base in (int, float):
            assert (m.ge is not None or m.gt is not None) and (m.le is not None or m.lt is not None), (
                s.variable
            )
        elif s.base is str:
            assert m.pattern is not None or m.min_length is not None, s.variable
        elif s.base is tuple:
            assert m.extra and m.examples, f"{s.variable}: say what its entries are and give examples"
        assert s.allowed and s.allowed != "any text", s.variable
        assert [ok for _s, ok in _bound_cases(s)].count(False) or s.base is tuple, s.variable


@pytest.mark.parametrize("s", SETTINGS, ids=[s.variable for s in SETTINGS])
def test_every_default_is_allowed_and_reads_back_as_itself(s: Setting) -> None:
    assert _part(load_settings({s.variable: env_text(s.default)}), s.name) == s.default


@pytest.mark.parametrize(("variable", "value", "ok"), CASES, ids=[_case_id(*case) for case in CASES])
def test_each_bound_is_kept(
    variable: str, value: str, ok: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if ok:
        loaded = _part(load_settings({variable: value}), variable[len("OUTPOST_") :].lower())
        if isinstance(loaded, int | float) and not isinstance(loaded, bool):
            assert loaded == float(value)
        return
    for key in list(os.environ):
        if key.startswith("OUTPOST_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv(variable, value)
    assert main(["config"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith(f"outpost: configuration error: {variable}=")
    assert repr(redact_setting(variable, value)) in err
    assert f"expected {BY_NAME[variable[len('OUTPOST_') :].lower()].allowed}" in err


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OUTPOST_MAX_SPEED_MPS", "nan"),
        ("OUTPOST_BATCH_MAX_FIXES", "-5"),
        ("OUTPOST_HTTP_PORT", "99999"),
        ("OUTPOST_MQTT_PROTOCOL", "4"),
        ("OUTPOST_SLA_S", "P1=240"),
    ],
)
def test_the_real_command_stops_with_one_line_and_status_2(variable: str, value: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    env.update(PYTHONPATH=str(REPO), **{variable: value})
    done = subprocess.run(
        [sys.executable, "-m", "outpost.cli", "config"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and variable in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_environment_wins_over_the_file_which_wins_over_defaults(tmp_path: Path) -> None:
    config = tmp_path / "outpost.toml"
    config.write_text('[outpost]\nhttp_port = 9000\nretention_days = 30\nmqtt_url = "mqtt://b:1883"\n')
    settings = load_settings({"OUTPOST_CONFIG": str(config), "OUTPOST_HTTP_PORT": "9100"})
    assert settings.api.http_port == 9100
    assert settings.store.retention_days == 30
    assert settings.ingest.mqtt_url == "mqtt://b:1883"
    assert settings.ingest.batch_max_fixes == 2000


def test_values_from_the_file_are_checked_too(tmp_path: Path) -> None:
    config = tmp_path / "outpost.toml"
    config.write_text("mqtt_protocol = 5\nmax_speed_mps = 50\nauto_dispatch_priorities = ['P1']\n")
    settings = load_settings({"OUTPOST_CONFIG": str(config)})
    assert settings.ingest.mqtt_protocol == "5"
    assert settings.ingest.max_speed_mps == 50.0
    assert settings.dispatch.auto_dispatch_priorities == ("P1",)
    for line, variable in [
        ("http_port = 99999", "OUTPOST_HTTP_PORT"),
        ("batch_max_fixes = true", "OUTPOST_BATCH_MAX_FIXES"),
        ("batch_max_fixes = 20.5", "OUTPOST_BATCH_MAX_FIXES"),
        ("max_speed_mps = nan", "OUTPOST_MAX_SPEED_MPS"),
        ("register_unknown_devices = 'maybe'", "OUTPOST_REGISTER_UNKNOWN_DEVICES"),
    ]:
        config.write_text(line + "\n")
        with pytest.raises(ConfigError, match=variable):
            load_settings({"OUTPOST_CONFIG": str(config)})


def test_a_bad_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="OUTPOST_HTTP_PORT='eighty': expected an integer from 0 to 65535"):
        load_settings({"OUTPOST_HTTP_PORT": "eighty"})
    with pytest.raises(ConfigError, match="OUTPOST_REGISTER_UNKNOWN_DEVICES"):
        load_settings({"OUTPOST_REGISTER_UNKNOWN_DEVICES": "maybe"})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OUTPOST_AUTO_DISPATCH_PRIORITIES", "P1,P9"),
        ("OUTPOST_UNITS_NEEDED", "P1=police+dragon"),
        ("OUTPOST_UNITS_NEEDED", "P1="),
        ("OUTPOST_SLA_S", "P1=240/300/600/900"),
        ("OUTPOST_SLA_S", "P1=a,P2=1,P3=1,P4=1"),
        ("OUTPOST_SLA_S", "P1=0,P2=1,P3=1,P4=1"),
        ("OUTPOST_SLA_S", "P1=1/1/1/1/1,P2=1,P3=1,P4=1"),
        ("OUTPOST_SLA_S", ""),
    ],
)
def test_a_bad_list_entry_stops_start_too(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        load_settings({variable: value})


def test_allowed_values_are_the_ones_the_code_knows() -> None:
    assert tuple(BY_NAME["unsafe_disable_safeguard"].meta.examples or ()) == UNSAFE_MODES
    for protocol in BY_NAME["mqtt_protocol"].meta.examples or ():
        assert resolve_protocol(str(protocol), "mqtt://b:1883") in ("5", "3.1.1")


def test_a_refused_url_is_shown_without_its_password() -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({"OUTPOST_DATABASE_URL": "postgres://outpost:s3cret@db/outpost"})
    assert "s3cret" not in str(refused.value)
    assert "OUTPOST_DATABASE_URL='postgres://outpost:***@db/outpost'" in str(refused.value)


@pytest.mark.parametrize("token", ["too-short", "sixteen or more but spaced", "x" * 257])
def test_a_refused_token_is_never_shown(token: str) -> None:
    assert {s.name for s in SETTINGS if s.name in SECRET_SETTINGS} == SECRET_SETTINGS  # each one exists
    with pytest.raises(ConfigError) as refused:
        load_settings({"OUTPOST_BROKER_LOGIN_TOKEN": token})
    assert token not in str(refused.value)
    assert "OUTPOST_BROKER_LOGIN_TOKEN='***'" in str(refused.value)


def test_the_config_command_never_prints_a_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OUTPOST_BROKER_LOGIN_TOKEN", "a-real-token-0123456789")
    assert main(["config"]) == 0
    printed = capsys.readouterr().out
    assert "a-real-token-0123456789" not in printed
    assert "OUTPOST_BROKER_LOGIN_TOKEN=***" in printed


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mqtt://dev-7:s3cret@broker:1883", "mqtt://dev-7:***@broker:1883"),
        ("postgresql://outpost:pw@db/outpost", "postgresql://outpost:***@db/outpost"),
        ("sqlite:///./outpost-data/outpost.db", "sqlite:///./outpost-data/outpost.db"),
        ("mqtt://127.0.0.1:1883", "mqtt://127.0.0.1:1883"),
        ("mqtt://dev-7:s3cret@broker:18x3", "mqtt://dev-7:***@broker:18x3"),  # a bad port still hides it
    ],
)
def test_printed_urls_never_carry_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("variable", "value", "ok"),
    [
        ("OUTPOST_MQTT_LISTEN", "0.0.0.0:65535", True),
        ("OUTPOST_MQTT_LISTEN", "0.0.0.0:0", True),
        ("OUTPOST_MQTT_LISTEN", "0.0.0.0:65536", False),
        ("OUTPOST_MQTT_LISTEN", "0.0.0.0:99999", False),
        ("OUTPOST_MQTT_LISTEN", "0.0.0.0", False),
        ("OUTPOST_MQTT_SHARED_GROUP", "g" * 256, True),
        ("OUTPOST_MQTT_SHARED_GROUP", "g" * 257, False),
        ("OUTPOST_MQTT_SHARED_GROUP", "a/b", False),
        ("OUTPOST_MQTT_URL", "tcp://broker:1883", False),
        ("OUTPOST_DATABASE_URL", "sqlite:///", False),
    ],
)
def test_what_a_pattern_allows(variable: str, value: str, ok: bool) -> None:
    if ok:
        load_settings({variable: value})
    else:
        with pytest.raises(ConfigError, match=variable):
            load_settings({variable: value})
