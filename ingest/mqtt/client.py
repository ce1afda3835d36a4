"""What the publisher, the subscriber and the dynamic-security admin share: the broker's address, the TLS
context for an mqtts:// one, a paho client set up for it, and running paho's socket callbacks on the event
loop (paho's "external loop" mode)."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from ingest.tls import client_context

C = TypeVar("C", bound=paho.Client)

CA_SETTING = "OUTPOST_MQTT_TLS_CA"  # the setting of BrokerAddress.ca_file, named in errors

# paho's socket callbacks: (client, userdata, socket).
SocketCallback = Callable[[paho.Client, Any, Any], None]


@dataclass(frozen=True)
class BrokerAddress:
    """A parsed mqtt:// or mqtts:// URL."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None
    ca_file: str = ""  # with tls: the PEM certificates trusted (OUTPOST_MQTT_TLS_CA); empty: the system's


def parse_mqtt_url(url: str, ca_file: str = "") -> BrokerAddress:
    """Parse mqtt://[user:password@]host[:port] (default 1883) or mqtts://… (default 8883); `ca_file`: the
    certificates an mqtts:// connection trusts (empty: the system's trust store)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"unsupported MQTT URL scheme {parts.scheme!r} in {url!r}: use mqtt:// or mqtts://")
    tls = parts.scheme in ("mqtts", "ssl")
    if not parts.hostname:
        raise ValueError(f"no host in MQTT URL {url!r}")
    return BrokerAddress(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        ca_file=ca_file,
    )


def tls_context(address: BrokerAddress) -> ssl.SSLContext:
    """The TLS context of a connection to the mqtts:// `address` (ConfigError if its CA file is unusable)."""
    return client_context((CA_SETTING, address.ca_file), address.host)


def new_client(
    factory: Callable[..., C],
    address: BrokerAddress,
    client_id: str,
    *,
    v5: bool,
    on_socket_open: SocketCallback,
    on_socket_close: SocketCallback,
    on_register_write: SocketCallback,
    on_unregister_write: SocketCallback,
    **options: Any,
) -> C:
    """A paho client (`factory`: paho.Client or a subclass) for `address`: protocol, credentials, TLS, and
    the socket callbacks through which the event loop watches its socket. `options` go to the factory."""
    client = factory(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        **options,
    )
    if address.username is not None:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set_context(tls_context(address))
    client.on_socket_open = on_socket_open
    client.on_socket_close = on_socket_close
    client.on_socket_register_write = on_register_write
    client.on_socket_unregister_write = on_unregister_write
    return client


def call_in_loop(
    loop: asyncio.AbstractEventLoop, loop_thread: int, fn: Callable[..., Any], *args: Any
) -> None:
    """`fn(*args)` on `loop`: at once when called on its thread (`loop_thread`), else soon, in call order.

    paho calls its socket callbacks from the worker thread running a (re)connect as well as from the loop.
    """
    if threading.get_ident() == loop_thread:
        fn(*args)
    else:
        loop.call_soon_threadsafe(fn, *args)
