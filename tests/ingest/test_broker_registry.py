"""The external broker's device logins: the rules pushed to Mosquitto's dynamic-security plugin say what
the embedded broker's ACL says, and the plan switches exactly the logins the registry disagrees with.
The plugin itself is exercised on a real Mosquitto in tests/e2e/test_broker_logins.py."""

from __future__ import annotations

from typing import Any

import pytest
from paho.mqtt.client import topic_matches_sub

from ingest.broker_acl import Principal, may_publish, may_subscribe
from ingest.broker_registry import MANAGED, check_broker_admin, device_acls, fingerprint, plan
from ingest.settings import IngestSettings
from schemas.config import ConfigError
from store.devices import DirectoryEntry

IDS = ("cam-7", "alice/phone", "alice")
KINDS = ("fix", "reply", "alarm", "status", "checkin", "answer", "offers", "rollcall", "cmd", "x")


def candidate_topics() -> list[str]:
    """Topics and filters to ask a broker's device rules about (also tests/ingest/test_broker_login.py):
    the device's own, its neighbours' (ids that extend it), Outpost's internal ones, wildcards."""
    topics = ["#", "outpost/internal/v1/fixes/cam-7", "outpost/internal/#", "outpost/v1/events/incidents"]
    topics += ["owntracks/alice", "$SYS/broker/clients", "outpost/v1/devices/+/fix", "outpost/v1/devices/#"]
    for device_id in (*IDS, "cam-70", "alice/phone2"):
        topics += [f"outpost/v1/devices/{device_id}/{kind}" for kind in KINDS]
        topics += [f"outpost/v1/devices/{device_id}/+", f"outpost/v1/devices/{device_id}/#"]
        topics += [f"outpost/v1/devices/{device_id}", f"outpost/v1/devices/{device_id}/fix/more"]
        topics += [f"owntracks/{device_id}", f"owntracks/{device_id}/cmd", f"owntracks/{device_id}/event"]
        topics += [f"owntracks/{device_id}/waypoint/1", f"owntracks/{device_id}/#"]
    return topics


def plugin_allows(acls: list[dict[str, Any]], kind: str, topic: str) -> bool:
    """The plugin's decision: the highest-priority matching rule of `kind` wins; no match denies."""
    for acl in sorted(acls, key=lambda a: -a["priority"]):
        if acl["acltype"] != kind:
            continue
        literal = kind == "subscribeLiteral"
        if acl["topic"] == topic if literal else topic_matches_sub(acl["topic"], topic):
            return bool(acl["allow"])
    return False


@pytest.mark.parametrize("device_id", IDS)
def test_the_broker_rules_are_the_embedded_brokers(device_id: str) -> None:
    acls = device_acls(device_id)
    principal = Principal("device", device_id)
    for topic in candidate_topics():
        if "+" not in topic and "#" not in topic:  # a publish names a topic, never a filter
            assert plugin_allows(acls, "publishClientSend", topic) == may_publish(principal, topic), topic
        assert plugin_allows(acls, "subscribeLiteral", topic) == may_subscribe(principal, topic), topic


def entry(device_id: str, *, enabled: bool = True, key: str | None = "h1") -> DirectoryEntry:
    return DirectoryEntry(device_id, "phone", enabled, None, key)


def client(username: str, *, key: str = "h1", disabled: bool = False, name: str = MANAGED) -> dict[str, Any]:
    return {"username": username, "textname": name, "textdescription": fingerprint(key), "disabled": disabled}


def test_the_plan_switches_only_the_logins_the_registry_disagrees_with() -> None:
    clients = [
        client("steady"),
        client("disabled-here"),
        client("enabled-again", disabled=True),
        client("rotated-while-away", key="old"),
        client("deleted"),
        client("outpost-broker", name=""),  # the admin account: not Outpost's to switch
        client("stays-off", disabled=True),
    ]
    entries = {
        e.device_id: e
        for e in (
            entry("steady"),
            entry("disabled-here", enabled=False),
            entry("enabled-again"),
            entry("rotated-while-away", key="new"),
            entry("stays-off", enabled=False),
            entry("never-pushed"),
            entry("no-credentials", key=None),
        )
    }
    commands, unpushed = plan(clients, entries)
    assert sorted((c["command"], c["username"]) for c in commands) == [
        ("disableClient", "deleted"),
        ("disableClient", "disabled-here"),
        ("disableClient", "rotated-while-away"),
        ("enableClient", "enabled-again"),
    ]
    assert unpushed == ["never-pushed"]


def test_the_fingerprint_tells_secrets_apart_without_holding_them() -> None:
    assert fingerprint("h1") == fingerprint("h1") != fingerprint("h2")
    assert "h1" not in fingerprint("h1")


@pytest.mark.parametrize(
    ("mqtt_url", "admin_url", "named"),
    [
        ("", "mqtt://outpost-broker:s@broker:1883", "OUTPOST_MQTT_URL is empty"),
        ("mqtt://broker:1884", "mqtt://outpost-broker:s@broker:99999", "OUTPOST_MQTT_ADMIN_URL="),
    ],
)
def test_a_broker_admin_that_cannot_work_is_one_line(mqtt_url: str, admin_url: str, named: str) -> None:
    settings = IngestSettings(mqtt_url=mqtt_url, mqtt_admin_url=admin_url)
    with pytest.raises(ConfigError, match=named) as caught:
        check_broker_admin(settings)
    assert ":s@" not in str(caught.value)  # the password is never shown
    check_broker_admin(IngestSettings(mqtt_url=mqtt_url))  # unset: nothing to check
