"""The scale-out profile of docker-compose.yml (profile `scale`), checked statically as tests/test_deploy.py
checks the rest (Docker does not run here): an EMQX cluster of two nodes, ingest workers sharing one
subscription with a session and a spool each, API replicas with their own MQTT client ids behind a load
balancer whose configuration names every replica, devices kept out of Outpost's internal topics, and
device logins answered by the ingest workers from the registry with every session bound to its user."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest

from ingest.http.broker_login import CLIENT_ID_BINDING, LOGIN_PATH
from schemas.topics import FIXES_FEED_FILTER, INTERNAL_PREFIX
from tests.support.services import REPO
from tests.test_deploy import COMPOSE, ONE_SHOT, SERVICES

SCALE = {name: s for name, s in SERVICES.items() if "scale" in s.get("profiles", [])}
HAPROXY = (REPO / "deploy/scale/haproxy.cfg").read_text(encoding="utf-8")
EMQX_ACL = (REPO / "deploy/scale/emqx-acl.conf").read_text(encoding="utf-8")


EMQX_NODES = {n: s for n, s in SCALE.items() if "EMQX_NODE__NAME" in s.get("environment", {})}


def _of(role: str) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in SCALE.items() if s.get("command") == [role]}


def test_the_profile_has_a_two_node_emqx_cluster_workers_replicas_and_a_balancer() -> None:
    emqx = EMQX_NODES
    assert len(emqx) == 2 and all(s["image"].startswith("emqx/emqx:5") for s in emqx.values())
    names = {s["environment"]["EMQX_NODE__NAME"] for s in emqx.values()}
    assert len(names) == 2
    for service in emqx.values():
        seeds = service["environment"]["EMQX_CLUSTER__STATIC__SEEDS"]
        assert set(re.findall(r"emqx@[\w.-]+", seeds)) == names  # every node knows every node
        host = service["environment"]["EMQX_NODE__NAME"].split("@")[1]
        assert host in service["networks"]["default"]["aliases"]
    assert len(_of("ingest")) >= 2 and len(_of("api")) >= 2
    assert SCALE["lb"]["image"].startswith("haproxy:")
    assert "timescaledb" in SERVICES["db"]["image"]  # the profile shares the TimescaleDB service


def test_workers_share_one_group_but_each_has_its_own_session_and_spool() -> None:
    workers = _of("ingest")
    envs = [w["environment"] for w in workers.values()]
    assert {e["OUTPOST_MQTT_SHARED_GROUP"] for e in envs} == {"ingest"}
    assert all(e["OUTPOST_MQTT_PROTOCOL"] == "5" for e in envs)  # shared subscriptions need MQTT 5
    assert len({e["OUTPOST_MQTT_CLIENT_ID"] for e in envs}) == len(envs)
    spools = [
        v.split(":")[0]
        for w in workers.values()
        for v in w["volumes"]
        if v.endswith(":/var/lib/outpost/spool")
    ]
    assert len(spools) == len(set(spools)) == len(workers)
    assert all(spool in COMPOSE["volumes"] for spool in spools)
    brokers = {re.search(r"@([\w-]+):", e["OUTPOST_MQTT_URL"]).group(1) for e in envs}  # type: ignore[union-attr]
    assert len(brokers) == 2  # spread over both nodes


def test_replicas_have_their_own_client_ids_follow_the_feed_and_are_all_balanced() -> None:
    replicas = _of("api")
    envs = [r["environment"] for r in replicas.values()]
    assert len({e["OUTPOST_MQTT_CLIENT_ID"] for e in envs}) == len(envs)
    assert {e["OUTPOST_API_FOLLOW"] for e in envs} == {"feed"}
    balanced = set(re.findall(r"^\s*server\s+\S+\s+([\w-]+):8080", HAPROXY, re.MULTILINE))
    assert balanced == set(replicas) | set(_of("ingest"))
    assert "retry-on 503" in HAPROXY and "option redispatch" in HAPROXY  # a follower's refusal is retried
    assert "GET /readyz" in HAPROXY
    assert set(SCALE["lb"]["depends_on"]) == set(replicas)


def test_the_brokers_file_grants_only_the_service_account_and_denies_the_internal_topics() -> None:
    rules = [line for line in EMQX_ACL.splitlines() if line.startswith("{")]
    assert rules[0] == '{allow, {username, "outpost"}, all, ["#"]}.'
    assert any(r.startswith("{deny, all") and INTERNAL_PREFIX + "#" in r for r in rules)
    assert FIXES_FEED_FILTER.startswith(INTERNAL_PREFIX)
    assert all(r.startswith("{deny") for r in rules[1:])  # devices get their rules from their login
    assert rules[-1] == "{deny, all}."


def test_devices_log_in_through_the_ingest_workers_with_their_sessions_bound() -> None:
    emqx = list(EMQX_NODES.values())
    workers = _of("ingest")
    for node in emqx:
        env = node["environment"]
        assert env["EMQX_AUTHENTICATION__1__BACKEND"] == "built_in_database"  # the service account
        assert env["EMQX_AUTHENTICATION__2__BACKEND"] == "http"
        assert env["EMQX_AUTHENTICATION__2__METHOD"] == "post"
        url = urlsplit(env["EMQX_AUTHENTICATION__2__URL"])
        assert url.path == LOGIN_PATH
        # ... through the balancer's entry for the ingest workers, which balances every one of them
        frontend = HAPROXY.split("frontend ingest_http", 1)[1].split("backend", 1)[0]
        assert (url.hostname, f":{url.port}") == ("lb", frontend.split("bind", 1)[1].split()[0])
        headers = json.loads(env["EMQX_AUTHENTICATION__2__HEADERS"])
        assert headers["authorization"] == "Bearer ${BROKER_LOGIN_TOKEN:-}"
        # EMQX's placeholders, escaped from compose (which would make them empty): `$$` is a literal `$`
        body = json.loads(env["EMQX_AUTHENTICATION__2__BODY"].replace("$$", "$"))
        assert body == {"username": "${username}", "password": "${password}", "clientid": "${clientid}"}
        assert "$$" in env["EMQX_AUTHENTICATION__2__BODY"]
        assert env["EMQX_MQTT__CLIENTID_OVERRIDE"] == f"concat([username, '{CLIENT_ID_BINDING}', clientid])"
    for worker in workers.values():
        assert worker["environment"]["OUTPOST_BROKER_LOGIN_TOKEN"] == "${BROKER_LOGIN_TOKEN:-}"
    assert all(
        s.get("environment", {}).get("OUTPOST_BROKER_LOGIN_TOKEN") is None for s in _of("api").values()
    )


def test_the_service_account_is_bootstrapped_into_every_node(tmp_path: Path) -> None:
    init = SCALE["emqx-init"]
    assert init["restart"] == "no" and init["entrypoint"][-1] == "/outpost/emqx-init.sh"
    volume = next(v.split(":")[0] for v in init["volumes"] if v.endswith(":/bootstrap"))
    assert volume in COMPOSE["volumes"]
    for node in EMQX_NODES.values():
        env = node["environment"]
        assert node["depends_on"]["emqx-init"]["condition"] == "service_completed_successfully"
        assert env["EMQX_AUTHENTICATION__1__BOOTSTRAP_TYPE"] == "plain"
        mounted = f"{volume}:{PurePosixPath(env['EMQX_AUTHENTICATION__1__BOOTSTRAP_FILE']).parent}:ro"
        assert mounted in node["volumes"]
    # The script itself, as the one-shot runs it (into a folder of the test's instead of the volume).
    target = tmp_path / "outpost-users.csv"
    env = {
        "PATH": "/usr/bin:/bin",
        "EMQX_BOOTSTRAP_FILE": str(target),
        "MQTT_SERVICE_PASSWORD": "3f9c2a7e51d8",
    }
    subprocess.run(["sh", str(REPO / "deploy/scale/emqx-init.sh")], env=env, check=True, capture_output=True)
    assert target.read_text() == "user_id,password,is_superuser\noutpost,3f9c2a7e51d8,false\n"
    assert target.stat().st_mode & 0o077 == 0  # the password is the service's: nobody else reads it
    for bad in ("has,comma", 'quo"te', "new\nline", ""):
        done = subprocess.run(
            ["sh", str(REPO / "deploy/scale/emqx-init.sh")],
            env=env | {"MQTT_SERVICE_PASSWORD": bad},
            capture_output=True,
            text=True,
        )
        assert done.returncode != 0 and "MQTT_SERVICE_PASSWORD" in done.stderr, (bad, done.stderr)


@pytest.mark.parametrize("name", sorted(set(SCALE) - ONE_SHOT))
def test_every_scale_service_restarts_and_is_health_checked(name: str) -> None:
    service = SCALE[name]
    assert service["restart"] == "unless-stopped"
    assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")
