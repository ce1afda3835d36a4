"""The external broker's device logins and ACLs, kept equal to Outpost's device registry.

With OUTPOST_MQTT_ADMIN_URL set, Mosquitto's dynamic-security plugin (ingest.mqtt.dynsec) holds, for every
device, a client (user name = device id, password = its secret) and a role of its own carrying the rules
the embedded broker applies (ingest.broker_acl): publish only what a device sends, on its own topics
(and an OwnTracks id's `owntracks/user/device`), subscribe only to what Outpost sends it, by exact topic.
Nobody adds device passwords by hand, and a registered id can never be a service account's (reserved ids
are refused at registration; the service accounts live on another listener).

The registry keeps only a hash of a secret, so the secret itself is pushed when it is issued (`issued`).
Everything else follows from the registry (`sync`): a client is enabled only while its device is enabled
and the broker holds the registry's current secret. Each client carries a fingerprint of the hash its
secret was issued with (its text description): a secret rotated while the broker was away is noticed,
and the stale login disabled rather than left working. Mosquitto disconnects a client when it is disabled
or its password changes, so a revocation also ends a live session.

Clients Outpost manages are marked (text name MANAGED); any other client in the plugin's file (the admin
account) is never touched.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine

from ingest.aio import first_of
from ingest.broker_acl import device_rules
from ingest.mqtt.client import parse_mqtt_url
from ingest.mqtt.dynsec import Answer, Command, DynsecError, exchange, list_clients
from ingest.settings import IngestSettings
from schemas.accounts import is_reserved
from schemas.config import ConfigError, redact_url
from store.devices import DirectoryEntry, load_directory
from store.leader import BROKER_ADMIN, taking_turns

log = logging.getLogger(__name__)
T = TypeVar("T")

MANAGED = "outpost device"
_SYNC_PERIOD_S = 60.0  # the plugin's file edited by hand, a change missed: found within this
_RETRY_S = 2.0  # while the broker cannot be told, try again this often
_CHANGE_WAIT_S = 5.0  # an API answer waits at most this long for the broker to take a change
# Answers that mean "already so" in an issuance's idempotent sequence of commands.
_ALREADY = {("createRole", "Role already exists")}
_ALREADY |= {("createClient", "Client already exists")}


def fingerprint(credentials_hash: str) -> str:
    """What a client's text description holds: which issued secret the broker has (not the secret)."""
    return "outpost:" + hashlib.sha256(credentials_hash.encode()).hexdigest()[:32]


def role_name(device_id: str) -> str:
    return f"outpost-device:{device_id}"


def device_acls(device_id: str) -> list[dict[str, Any]]:
    """The device's own rules (ingest.broker_acl.device_rules), in the plugin's terms: anything not allowed
    is denied by default, and a deny outranks the allows (priority 1)."""
    return [
        _acl(
            "publishClientSend" if rule.action == "publish" else "subscribeLiteral",
            rule.topic,
            allow=rule.allow,
            priority=0 if rule.allow else 1,
        )
        for rule in device_rules(device_id)
    ]


def issue_commands(
    device_id: str, secret: str, credentials_hash: str, enabled: bool
) -> tuple[list[Command], list[Command]]:
    """Create the device's client with `secret` and its role with today's rules; then, only if the
    client already existed (or must start disabled), update it. Two steps because the plugin rewrites its
    whole file on every change: a new device costs two rewrites instead of four. The role is never
    deleted and made again: Mosquitto 2.0's deleteRole kicks the role's clients while it walks their list
    and crashed the broker in our tests (SIGSEGV, 2.0.11); so a role keeps the rules it was created with
    (rules that change between Outpost versions need an addRoleACL/removeRoleACL step of their own)."""
    role = role_name(device_id)
    client = {
        "username": device_id,
        "password": secret,
        "textname": MANAGED,
        "textdescription": fingerprint(credentials_hash),
        "roles": [{"rolename": role}],
    }
    create = [
        {"command": "createRole", "rolename": role, "acls": device_acls(device_id)},
        {"command": "createClient", **client},
    ]
    update = [
        {"command": "modifyClient", **client},  # new password, role, fingerprint; drops its session
        _switch(device_id, enabled),
    ]
    return create, update


def plan(
    clients: Iterable[Mapping[str, Any]], entries: Mapping[str, DirectoryEntry]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The enable/disable commands that bring the managed `clients` in line with the registry `entries`,
    and the devices that should log in but whose secret the broker never received (issue it again)."""
    commands, held = [], set()
    for client in clients:
        if client.get("textname") != MANAGED:
            continue
        username = str(client.get("username"))
        held.add(username)
        entry = entries.get(username)
        wanted = entry is not None and _may_log_in(entry, client)
        if wanted == bool(client.get("disabled", False)):
            commands.append(_switch(username, wanted))
    unpushed = [e.device_id for e in entries.values() if _should_log_in(e) and e.device_id not in held]
    return commands, sorted(unpushed)


def check_broker_admin(settings: IngestSettings) -> None:
    """OUTPOST_MQTT_ADMIN_URL makes sense only beside an external broker, and must be a broker URL."""
    if not settings.mqtt_admin_url:
        return
    if not settings.mqtt_url:
        raise ConfigError(
            "OUTPOST_MQTT_ADMIN_URL is set but OUTPOST_MQTT_URL is empty: the embedded broker reads the "
            "registry itself; unset OUTPOST_MQTT_ADMIN_URL, or point OUTPOST_MQTT_URL at the external broker"
        )
    try:
        parse_mqtt_url(settings.mqtt_admin_url)
    except ValueError:
        shown = redact_url(settings.mqtt_admin_url)
        raise ConfigError(
            f"OUTPOST_MQTT_ADMIN_URL={shown!r}: "
            "expected mqtt://user:password@host:port (a host and a valid port)"
        ) from None


class BrokerRegistry:
    """Pushes issued secrets to the broker and keeps its device clients enabled exactly as the registry."""

    def __init__(self, admin_url: str, engine: Engine, *, ca_file: str = "") -> None:
        """`ca_file`: the certificates an mqtts:// `admin_url` trusts (empty: the system's trust store)."""
        self._address = parse_mqtt_url(admin_url, ca_file)
        self._engine = engine
        self._lock = asyncio.Lock()  # one exchange at a time: a view and the broker never diverge mid-way
        self._view: dict[str, dict[str, Any]] | None = None  # managed clients, as listed and since changed
        self._stale = asyncio.Event()  # a change the broker has not taken yet
        self._warned: set[str] = set()

    async def issued(self, device_id: str, secret: str, credentials_hash: str, enabled: bool) -> bool:
        """Give the broker the device's new secret; False when it could not be told (it is then disabled
        there as soon as the broker answers again, since it holds an older secret)."""
        if is_reserved(device_id):
            return False
        create, update = issue_commands(device_id, secret, credentials_hash, enabled)
        async with self._lock:
            try:
                answers = await self._exchange(create)
                if answers[-1].error is not None or not enabled:  # it existed, or must start disabled
                    answers += await self._exchange(update)
            except DynsecError as exc:
                log.error("the broker did not take device %s's new secret: %s", device_id, exc)
                self._stale.set()
                return False
            failed = [a for a in answers if a.error is not None and (a.command, a.error) not in _ALREADY]
            if failed:
                first = failed[0]
                log.error(
                    "the broker refused device %s's new secret: %s: %s", device_id, first.command, first.error
                )
                self._stale.set()
                return False
            if self._view is not None:
                self._view[device_id] = {
                    "username": device_id,
                    "textname": MANAGED,
                    "textdescription": fingerprint(credentials_hash),
                    "disabled": not enabled,
                }
            self._warned.discard(device_id)
        return True

    async def changed(self) -> None:
        """The registry changed (a device disabled, enabled, re-keyed): bring the broker in line now,
        waiting a bounded time; if it cannot be told, `run` keeps trying."""
        try:
            await asyncio.wait_for(self.sync(), _CHANGE_WAIT_S)
        except (DynsecError, TimeoutError) as exc:
            log.warning(
                "the broker has not taken a device change yet (retrying every %g s): %s", _RETRY_S, exc
            )
            self._stale.set()

    async def sync(self, *, full: bool = False) -> int:
        """Enable and disable device clients as the registry says; `full` lists the broker's clients again
        instead of trusting the view kept since. Returns the number of clients switched."""
        async with self._lock:
            if full or self._view is None:
                clients = await asyncio.to_thread(self._alone, list_clients, self._address)
                self._view = {str(c["username"]): dict(c) for c in clients if c.get("textname") == MANAGED}
            rows = await asyncio.to_thread(load_directory, self._engine, now=datetime.now(UTC))
            commands, unpushed = plan(self._view.values(), {e.device_id: e for e in rows})
            answers = await self._exchange(commands)
            switched = self._apply(commands, answers)
        for device_id in sorted(set(unpushed) - self._warned):
            log.warning(
                "device %s has credentials the broker never received (issued before OUTPOST_MQTT_ADMIN_URL "
                "was set, or while the broker was away): it cannot log in over MQTT until they are issued "
                "again (POST /v1/devices/{id}/credentials)",
                device_id,
            )
        self._warned = set(unpushed)
        return switched

    async def run(self, stop: asyncio.Event) -> None:
        """Sync at start, every minute, and at once after a change the broker did not take."""
        failing = ""  # the last failure said, until the broker answers again
        while not stop.is_set():
            self._stale.clear()
            try:
                switched = await self.sync(full=True)
            except DynsecError as exc:
                if str(exc) != failing:  # said once, not every retry
                    log.error(
                        "cannot keep the broker's device logins (OUTPOST_MQTT_ADMIN_URL, retrying every "
                        "%g s): %s",
                        _RETRY_S,
                        exc,
                    )
                failing = str(exc)
                self._stale.set()
            else:
                if failing:
                    log.info("the broker's device logins are kept again")
                failing = ""
                if switched:
                    log.info("broker device logins brought in line with the registry: %d switched", switched)
            wait_s = _RETRY_S if self._stale.is_set() else _SYNC_PERIOD_S
            await first_of(stop.wait(), self._stale.wait(), asyncio.sleep(wait_s))

    async def _exchange(self, commands: list[Command]) -> list[Answer]:
        return await asyncio.to_thread(self._alone, exchange, self._address, commands)

    def _alone(self, call: Callable[..., T], *args: Any) -> T:
        """`call` while no other process of this database talks to the broker's admin: replicas log in as
        the same admin, and on the device listener the client id is the user name, so two at once would
        knock each other off (blocking: from a worker thread)."""
        with taking_turns(self._engine, BROKER_ADMIN):
            return call(*args)

    def _apply(self, commands: list[dict[str, Any]], answers: list[Answer]) -> int:
        assert self._view is not None
        switched = 0
        for command, answer in zip(commands, answers, strict=True):
            if answer.error is not None:
                log.warning(
                    "the broker refused %s %s: %s", command["command"], command["username"], answer.error
                )
                self._stale.set()
                continue
            self._view[command["username"]]["disabled"] = command["command"] == "disableClient"
            switched += 1
        return switched


def _should_log_in(entry: DirectoryEntry) -> bool:
    return entry.enabled and entry.credentials_hash is not None and not is_reserved(entry.device_id)


def _may_log_in(entry: DirectoryEntry, client: Mapping[str, Any]) -> bool:
    """Enabled in the registry, and the broker holds the registry's current secret."""
    issued = entry.credentials_hash or ""  # never empty once _should_log_in holds
    return _should_log_in(entry) and client.get("textdescription") == fingerprint(issued)


def _switch(username: str, enabled: bool) -> dict[str, Any]:
    return {"command": "enableClient" if enabled else "disableClient", "username": username}


def _acl(kind: str, topic: str, *, allow: bool = True, priority: int = 0) -> dict[str, Any]:
    return {"acltype": kind, "topic": topic, "allow": allow, "priority": priority}
