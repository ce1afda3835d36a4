"""EMQX's HTTP authenticator, answered from the device registry: the scale-out profile's broker lets a
device in, and gives it its own exact ACL, without anyone adding device users at the broker.

EMQX (5.8 and newer) asks `POST /ingest/v1/broker/login` on every device connection, with the bearer token
OUTPOST_BROKER_LOGIN_TOKEN and the JSON body `{"username", "password", "clientid"}` (docker-compose.yml,
profile `scale`). The user name is the device id and the password its secret, checked against the
registry's hash as every other device login is (ingest.http.auth.identify_device): a device unknown,
disabled, without credentials or with a wrong secret is refused. An admitted device gets, in the same
answer, the rules the embedded broker and Mosquitto apply to it (ingest.broker_acl): publish what a device
sends on its own topics, subscribe to what Outpost sends it, by exact topic, and nothing else; and a login
that lasts OUTPOST_BROKER_LOGIN_EXPIRY_S, so a session opened with a secret since rotated, or by a device
since disabled, ends by then (unlike Mosquitto's dynamic security, which Outpost tells at once; a disabled
device's fixes are refused as soon as ingest hears of the change).

Sessions are bound to who holds them: the profile sets EMQX's `mqtt.clientid_override` to
`username|clientid`, so one device's session (its queued offers) cannot be taken over by another device
and no device can take an ingest worker's. A login whose client id does not begin with its user name and
`|` is refused (`client_id_not_bound`): the override is missing, and the broker must be fixed.

EMQX reads 200 answers only: anything else (a wrong token, a body that is not a login) counts as "ignore",
which at the end of the chain refuses the client. Every answer is counted by outcome.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web
from prometheus_client import Counter

from ingest.broker_acl import device_rules
from ingest.http.auth import DeviceAuth, identify_device
from ingest.http.problems import problem
from ingest.pipeline import Pipeline

log = logging.getLogger(__name__)

LOGIN_PATH = "/ingest/v1/broker/login"
CLIENT_ID_BINDING = "|"  # EMQX's clientid_override joins user name and client id with it
_OFF_WARN_EVERY_S = 60.0

LOGINS = Counter(
    "outpost_ingest_broker_logins",
    "Device logins EMQX asked about (POST /ingest/v1/broker/login), by outcome: allowed, or why refused.",
    ["outcome"],
)


class Login(msgspec.Struct, forbid_unknown_fields=False):
    """What EMQX's authenticator sends (its body template, as docker-compose.yml sets it)."""

    username: str
    password: str
    clientid: str


def emqx_rules(device_id: str) -> list[dict[str, str]]:
    """The device's rules (ingest.broker_acl.device_rules) in EMQX's raw rule form: first match wins, and
    `eq` means the exact topic. The last rule denies everything else, so no broader rule of the broker's
    own file applies to a device."""
    rules = [
        {
            "permission": "allow" if rule.allow else "deny",
            "action": rule.action,
            "topic": f"eq {rule.topic}" if rule.exact else rule.topic,
        }
        for rule in device_rules(device_id)
    ]
    rules.append({"permission": "deny", "action": "all", "topic": "#"})
    return rules


def login_handler(
    pipeline: Pipeline, auth: DeviceAuth, token: str, clock: Callable[[], float] = time.time
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler of LOGIN_PATH, answering EMQX's authenticator that presents `token`."""
    expiry_s = pipeline.settings.broker_login_expiry_s
    expected = f"Bearer {token}".encode()

    async def broker_login(request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected):
            LOGINS.labels("bad_token").inc()
            return problem(request, 401, "the broker's login token is missing or wrong", slug="unauthorized")
        try:
            asked = msgspec.json.decode(await request.read(), type=Login)
        except msgspec.DecodeError as exc:
            LOGINS.labels("bad_request").inc()
            return problem(request, 400, f"not a broker login: {exc}", slug="invalid")
        outcome = await _admit(pipeline, auth, asked)
        LOGINS.labels(outcome).inc()
        if outcome != "allowed":
            log.info("broker login of %r (client %r) refused: %s", asked.username, asked.clientid, outcome)
            return web.json_response({"result": "deny"})
        answer: dict[str, Any] = {
            "result": "allow",
            "is_superuser": False,
            "expire_at": int(clock()) + expiry_s,
            "acl": emqx_rules(asked.username),
        }
        return web.json_response(answer)

    return broker_login


def login_off_handler(
    monotonic: Callable[[], float] = time.monotonic,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler of LOGIN_PATH while OUTPOST_BROKER_LOGIN_TOKEN is empty: 404, and a warning (at most one
    a minute) naming the setting, since a broker asking here means its device logins are all refused."""
    warned_at = -_OFF_WARN_EVERY_S

    async def broker_login_off(request: web.Request) -> web.Response:
        nonlocal warned_at
        LOGINS.labels("off").inc()
        if monotonic() - warned_at >= _OFF_WARN_EVERY_S:
            warned_at = monotonic()
            log.warning(
                "a broker asked %s to log a device in, but OUTPOST_BROKER_LOGIN_TOKEN is empty, so every "
                "device is refused: set it (BROKER_LOGIN_TOKEN in .env for the scale profile)",
                LOGIN_PATH,
            )
        return problem(request, 404, "broker logins are off here: OUTPOST_BROKER_LOGIN_TOKEN is empty")

    return broker_login_off


async def _admit(pipeline: Pipeline, auth: DeviceAuth, asked: Login) -> str:
    """ "allowed", or why the login is refused."""
    if not asked.username:
        return "anonymous"
    if CLIENT_ID_BINDING in asked.username:  # the binding's prefix would be ambiguous
        return "invalid_user_name"
    if not asked.clientid.startswith(asked.username + CLIENT_ID_BINDING):
        log.warning(
            "broker login of %r refused: its client id %r is not bound to it; set EMQX's "
            "mqtt.clientid_override to \"concat([username, '|', clientid])\" (docker-compose.yml)",
            asked.username,
            asked.clientid,
        )
        return "client_id_not_bound"
    principal, reason = await identify_device(
        pipeline.directory, auth, asked.username, asked.password, open_ok=False
    )
    return "allowed" if principal is not None else reason
