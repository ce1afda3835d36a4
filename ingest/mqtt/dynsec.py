"""Mosquitto's dynamic-security control API, spoken over MQTT: the broker's own logins and ACLs, driven.

The plugin (mosquitto_dynamic_security.so, shipped with Mosquitto 2) keeps its clients, roles and ACLs in a
JSON file the broker owns and takes commands on `$CONTROL/dynamic-security/v1` from a client whose role
allows that topic, answering on `…/response`. Several commands go in one message and are carried out in
order; each answer carries back the command's `correlationData`. Changing or disabling a client also
disconnects its live session ("disconnected by administrative action"), which is what makes a revocation
reach a device that is already connected.

`exchange` is blocking (a paho client with its own network thread, connected for one exchange): the calls
are rare (a credential issued, a device disabled, a periodic check) and run in a worker thread.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from ingest.mqtt.client import BrokerAddress, tls_context

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = CONTROL_TOPIC + "/response"
_PAGE = 1000  # clients per listClients answer: bounds one message for a large fleet


class DynsecError(Exception):
    """The broker could not be reached, refused the admin login, or did not answer in time (one line)."""


@dataclass(frozen=True)
class Answer:
    """The broker's answer to one command: `error` None when it was carried out."""

    command: str
    error: str | None
    data: dict[str, Any] = field(default_factory=dict)


Command = dict[str, Any]


def exchange(address: BrokerAddress, commands: list[Command], *, timeout_s: float = 5.0) -> list[Answer]:
    """Send `commands` in one control message and return the answers, in command order (blocking)."""
    if not commands:
        return []
    tag = secrets.token_hex(8)
    tagged = [{**command, "correlationData": f"{tag}.{i}"} for i, command in enumerate(commands)]
    answers: dict[int, Answer] = {}
    failure: list[str] = []
    done = threading.Event()

    def on_connect(client: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            failure.append(f"the broker refused the admin login ({rc})")
            done.set()
        else:
            client.subscribe(RESPONSE_TOPIC, qos=1)

    def on_subscribe(client: paho.Client, _u: Any, _mid: int, codes: list[Any], _p: Any) -> None:
        if any(code.is_failure for code in codes):
            failure.append(f"the admin account may not read {RESPONSE_TOPIC} ({codes[0]})")
            done.set()
        else:
            client.publish(CONTROL_TOPIC, json.dumps({"commands": tagged}), qos=1)

    def on_message(_c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        for answer in _answers(message.payload, tag):
            answers[answer[0]] = answer[1]
        if len(answers) == len(tagged):
            done.set()

    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=f"outpost-dynsec-{tag}", protocol=MQTTProtocolVersion.MQTTv5
    )
    if address.username is not None:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set_context(tls_context(address))
    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    try:
        client.connect(address.host, address.port, keepalive=30)
    except OSError as exc:
        raise DynsecError(f"cannot reach the broker at {address.host}:{address.port}: {exc}") from None
    client.loop_start()
    try:
        if not done.wait(timeout_s):
            raise DynsecError(
                f"the broker at {address.host}:{address.port} did not answer in {timeout_s:g} s"
            )
    finally:
        client.disconnect()
        client.loop_stop()
    if failure:
        raise DynsecError(failure[0])
    return [answers[i] for i in range(len(tagged))]


def list_clients(address: BrokerAddress, *, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """Every client the plugin knows (username, textname, textdescription, disabled, roles), page by page."""
    clients: list[dict[str, Any]] = []
    while True:
        command = {"command": "listClients", "verbose": True, "count": _PAGE, "offset": len(clients)}
        (answer,) = exchange(address, [command], timeout_s=timeout_s)
        if answer.error is not None:
            raise DynsecError(f"listClients: {answer.error}")
        page = answer.data.get("clients", [])
        clients.extend(page)
        if len(page) < _PAGE or len(clients) >= int(answer.data.get("totalCount", 0)):
            return clients


def _answers(payload: bytes | bytearray, tag: str) -> list[tuple[int, Answer]]:
    """The answers in a response message that belong to the exchange tagged `tag`, by command index."""
    try:
        responses = json.loads(payload).get("responses", [])
    except (ValueError, AttributeError):
        return []
    found = []
    for response in responses if isinstance(responses, list) else []:
        got_tag, _, index = str(response.get("correlationData", "")).partition(".")
        if got_tag == tag and index.isdigit():
            answer = Answer(
                str(response.get("command", "")), response.get("error"), response.get("data") or {}
            )
            found.append((int(index), answer))
    return found
