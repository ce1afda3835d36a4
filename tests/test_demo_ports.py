"""`outpost demo` is self-contained: a default port another program holds is swapped for a free one."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import replace

import pytest

from outpost.demo import free_default_ports
from outpost.settings import Settings, load_settings


@pytest.fixture
def taken() -> Iterator[int]:
    """A port some other program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def _settings(mqtt_port: int, http_port: int) -> Settings:
    base = load_settings({})
    return replace(
        base,
        ingest=replace(base.ingest, mqtt_listen=f"127.0.0.1:{mqtt_port}"),
        api=replace(base.api, http_host="127.0.0.1", http_port=http_port),
    )


def test_taken_default_ports_are_replaced_by_free_ones_and_said_so(taken: int) -> None:
    said: list[str] = []
    chosen = free_default_ports(_settings(taken, taken), given=(), out=said.append)
    mqtt_port = int(chosen.ingest.mqtt_listen.rpartition(":")[2])
    assert mqtt_port != taken and chosen.api.http_port not in (taken, 0)
    for port in (mqtt_port, chosen.api.http_port):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))  # free indeed
    assert len(said) == 2 and all(str(taken) in line for line in said)
    assert f"127.0.0.1:{mqtt_port}" in said[0] and str(chosen.api.http_port) in said[1]


def test_ports_the_user_set_are_kept_even_when_taken(taken: int) -> None:
    said: list[str] = []
    settings = _settings(taken, taken)
    assert free_default_ports(settings, given=("mqtt_listen", "http_port"), out=said.append) == settings
    assert said == []


def test_free_default_ports_are_left_alone() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    settings = _settings(free, free)
    assert free_default_ports(settings, given=(), out=print) == settings
