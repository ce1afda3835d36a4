"""EMQX's HTTP authenticator answered from the registry (POST /ingest/v1/broker/login), against a real
PostgreSQL: who is let in, who is refused and why (counted), and that the ACL handed to EMQX allows
exactly what the embedded broker's rules allow, for the device's own topics and for hostile ones."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from ingest.broker_acl import Principal, may_publish, may_subscribe
from ingest.http.broker_login import LOGIN_PATH, emqx_rules
from schemas.topics import matches
from store import registry
from tests.ingest.ingest_harness import TEST_SECRET, register
from tests.ingest.test_broker_registry import IDS, candidate_topics
from tests.ingest.test_http import serving

TOKEN = "emqx-login-token-for-tests"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
EXPIRY_S = 600


def login(username: str, password: str = TEST_SECRET, clientid: str | None = None) -> dict[str, str]:
    """EMQX's body, its client id already bound by `mqtt.clientid_override` unless given."""
    return {"username": username, "password": password, "clientid": clientid or f"{username}|phone-app"}


def logins(outcome: str) -> float:
    return REGISTRY.get_sample_value("outpost_ingest_broker_logins_total", {"outcome": outcome}) or 0.0


def serve(engine: Engine, tmp_path: Path, **overrides: Any) -> Any:
    overrides.setdefault("broker_login_token", TOKEN)
    return serving(engine, tmp_path, broker_login_expiry_s=EXPIRY_S, **overrides)


async def test_the_route_is_off_without_a_token_and_says_which_setting(
    pg_engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    register(pg_engine, "login-off")
    before = logins("off")
    async with serve(pg_engine, tmp_path, broker_login_token="") as (client, _):
        for _ in range(3):  # a broker configured for it asks, and asks again
            response = await client.post(LOGIN_PATH, json=login("login-off"), headers=BEARER)
            assert response.status == 404
            assert "allow" not in await response.text()
    assert logins("off") == before + 3
    warnings = [r for r in caplog.records if "OUTPOST_BROKER_LOGIN_TOKEN is empty" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"  # once a minute, not per login


async def test_a_device_with_its_secret_is_let_in_with_its_own_rules(
    pg_engine: Engine, tmp_path: Path
) -> None:
    register(pg_engine, "login-ok")
    before = logins("allowed")
    async with serve(pg_engine, tmp_path) as (client, _):
        asked_s = time.time()
        response = await client.post(LOGIN_PATH, json=login("login-ok"), headers=BEARER)
        assert response.status == 200
        assert response.content_type == "application/json"
        answer = await response.json()
    assert answer["result"] == "allow"
    assert answer["is_superuser"] is False
    assert asked_s + EXPIRY_S - 1 <= answer["expire_at"] <= time.time() + EXPIRY_S
    assert answer["acl"] == emqx_rules("login-ok")
    assert logins("allowed") == before + 1


async def test_a_device_registered_a_moment_ago_is_found(pg_engine: Engine, tmp_path: Path) -> None:
    async with serve(pg_engine, tmp_path) as (client, _):
        register(pg_engine, "login-new")  # after the directory was loaded
        response = await client.post(LOGIN_PATH, json=login("login-new"), headers=BEARER)
        assert (await response.json())["result"] == "allow"


@pytest.mark.parametrize(
    ("body", "outcome"),
    [
        (login("login-refused", password="not-the-secret"), "bad_secret"),
        (login("login-refused", password=""), "bad_secret"),
        (login("login-disabled"), "disabled"),
        (login("login-no-secret"), "no_credentials"),
        (login("login-never-registered"), "no_credentials"),
        (login("outpost"), "reserved_user_name"),  # the service account is the broker's own user
        (login("outpost-admin"), "reserved_user_name"),
        (login("$SYS"), "reserved_user_name"),
        (login("", clientid="|x"), "anonymous"),
        (login("login-refused", clientid="login-refused"), "client_id_not_bound"),  # no override
        (login("login-refused", clientid="outpost-ingest-1"), "client_id_not_bound"),  # a worker's session
        (login("login-refused", clientid="login-refused-2|x"), "client_id_not_bound"),
        (login("login-refused", clientid="other|login-refused|x"), "client_id_not_bound"),
        (login("a|b", clientid="a|b|c"), "invalid_user_name"),
    ],
)
async def test_refusals_are_denied_and_counted(
    pg_engine: Engine, tmp_path: Path, body: dict[str, str], outcome: str
) -> None:
    for device_id in ("login-refused", "login-disabled", "login-no-secret"):
        if registry.get_device(pg_engine, device_id) is None:
            register(pg_engine, device_id, secret=None if device_id == "login-no-secret" else TEST_SECRET)
    registry.update_device(pg_engine, "login-disabled", enabled=False)
    before = logins(outcome)
    async with serve(pg_engine, tmp_path) as (client, _):
        response = await client.post(LOGIN_PATH, json=body, headers=BEARER)
        assert response.status == 200
        assert await response.json() == {"result": "deny"}
    assert logins(outcome) == before + 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-of-some-length"},
        {"Authorization": TOKEN},
        BEARER | {"Authorization": f"Basic {TOKEN}"},
    ],
)
async def test_without_the_token_nothing_is_answered(
    pg_engine: Engine, tmp_path: Path, headers: dict[str, str]
) -> None:
    register(pg_engine, "login-token")
    before = logins("bad_token")
    async with serve(pg_engine, tmp_path) as (client, _):
        response = await client.post(LOGIN_PATH, json=login("login-token"), headers=headers)
        assert response.status == 401  # EMQX: ignore, so the chain ends in a refusal
        assert "allow" not in await response.text()
    assert logins("bad_token") == before + 1


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[]",
        b'{"username": "login-bad"}',
        b'{"username": 7, "password": "x", "clientid": "7|x"}',
        b'{"username": "login-bad", "password": null, "clientid": "login-bad|x"}',
        b'{"username": "login-bad", "password": "' + b"x" * 5000 + b'", "clientid": "login-bad|x"',
    ],
)
async def test_a_body_that_is_not_a_login_is_a_400(pg_engine: Engine, tmp_path: Path, raw: bytes) -> None:
    before = logins("bad_request")
    async with serve(pg_engine, tmp_path) as (client, _):
        response = await client.post(
            LOGIN_PATH, data=raw, headers=BEARER | {"Content-Type": "application/json"}
        )
        assert response.status == 400
        assert response.content_type == "application/problem+json"
    assert logins("bad_request") == before + 1


# ---- the rules EMQX is given, against the embedded broker's ------------------------------------------------


def emqx_allows(rules: list[dict[str, str]], action: str, topic: str) -> bool | None:
    """EMQX's evaluation of a client's rules (emqx_authz_client_info, v2): the first rule whose action and
    topic match decides; `eq` compares the text; otherwise the rule's filter is matched level by level,
    the asked topic's own wildcards taken as plain words. None: no rule matched (the next source decides)."""
    for rule in rules:
        if rule["action"] not in (action, "all"):
            continue
        pattern = rule["topic"]
        hit = topic == pattern[3:] if pattern.startswith("eq ") else _filter_matches(pattern, topic)
        if hit:
            return rule["permission"] == "allow"
    return None


def _filter_matches(pattern: str, topic: str) -> bool:
    return matches(topic.split("/"), pattern.split("/"))  # MQTT's matching, wildcards of `topic` as words


def test_the_filter_matcher_itself() -> None:
    assert _filter_matches("a/#", "a") and _filter_matches("a/#", "a/b/c") and _filter_matches("#", "x/y")
    assert not _filter_matches("a/#", "ab/c") and not _filter_matches("a/b", "a/b/c")
    assert emqx_allows([{"permission": "deny", "action": "all", "topic": "#"}], "publish", "a") is False
    assert (
        emqx_allows([{"permission": "allow", "action": "publish", "topic": "eq a/+"}], "publish", "a/b")
        is None
    )


@pytest.mark.parametrize("device_id", IDS)
def test_emqx_is_given_exactly_the_embedded_brokers_rules(device_id: str) -> None:
    rules, device = emqx_rules(device_id), Principal("device", device_id)
    assert rules[-1] == {"permission": "deny", "action": "all", "topic": "#"}  # nothing falls through
    for topic in candidate_topics():
        if "+" not in topic and "#" not in topic:  # a published topic is a name, never a filter
            assert emqx_allows(rules, "publish", topic) is may_publish(device, topic), ("publish", topic)
        assert emqx_allows(rules, "subscribe", topic) is may_subscribe(device, topic), ("subscribe", topic)
    assert any(emqx_allows(rules, "publish", t) for t in candidate_topics())  # not all denied
