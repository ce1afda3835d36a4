"""The production deployment: docker-compose.yml is checked statically (Docker does not run here), and the
real Mosquitto is started with the production configuration exactly as compose mounts it (paths mapped into a
temporary folder, ports made free) to prove it loads and enforces authentication and the per-device ACL."""

from __future__ import annotations

import queue
import re
import shlex
import subprocess
import threading
import tomllib
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from outpost.cli import build_parser
from outpost.settings import SETTINGS_CLASSES, describe
from tests.support.prod_broker import ADMIN, COMPOSE, SERVICES, ProdBroker, missing_tools
from tests.support.services import REPO

COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
ONE_SHOT = {"mosquitto-init", "migrate", "emqx-init"}
# ${VAR}, ${VAR:-default}, ${VAR:?error}, $VAR; `$$` is compose's escape for a literal `$`.
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|\$([A-Za-z_][A-Za-z0-9_]*)")
WAIT_S = 30.0  # a bound so a broken broker fails the test instead of hanging it; never a speed assertion


def referenced_variables(node: Any) -> set[str]:
    """Variables interpolated anywhere in the parsed file (comments are not interpolated, so not scanned)."""
    if isinstance(node, dict):
        return set().union(*(referenced_variables(v) for v in node.values()), set())
    if isinstance(node, list):
        return set().union(*(referenced_variables(v) for v in node), set())
    if isinstance(node, str):
        return {a or b for a, b in _VARIABLE.findall(node.replace("$$", ""))}
    return set()


def documented_variables() -> dict[str, bool]:
    """Variables of .env.example → whether a comment line directly precedes them."""
    found: dict[str, bool] = {}
    previous = ""
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith("#"):
            found[line.split("=", 1)[0].strip()] = previous.startswith("#")
        previous = line
    return found


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of the service's bind mounts (short syntax)."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


# ---------------------------------------------------------------- static checks of docker-compose.yml


def test_services_and_images() -> None:
    default = {
        name for name, service in SERVICES.items() if "profiles" not in service
    }  # scale: test_deploy_scale
    assert default == {"db", "mosquitto-init", "mosquitto", "migrate", "ingest", "api"}
    db_image = SERVICES["db"]["image"]
    default = re.search(r":-([^}]+)\}", db_image)
    assert default and re.fullmatch(r"timescale/timescaledb-ha:pg1[67].*", default.group(1)), db_image
    assert SERVICES["mosquitto"]["image"] == SERVICES["mosquitto-init"]["image"] == "eclipse-mosquitto:2.0"
    for name in ("migrate", "ingest", "api"):
        build = SERVICES[name]["build"]
        assert (REPO / build["context"] / build["dockerfile"]).is_file(), name


def test_every_mounted_file_exists_and_every_named_volume_is_declared() -> None:
    declared = set(COMPOSE.get("volumes", {}))
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"


def test_every_variable_is_documented_in_env_example() -> None:
    used = referenced_variables(COMPOSE)
    documented = documented_variables()
    assert used - set(documented) == set(), "referenced in docker-compose.yml but not in .env.example"
    assert set(documented) - used == set(), "in .env.example but never used"
    assert all(documented.values()), f"undocumented: {[v for v, ok in documented.items() if not ok]}"


def test_outpost_environment_names_real_settings() -> None:
    known = {row[0] for cls in SETTINGS_CLASSES for row in describe(cls)}
    for name, service in SERVICES.items():
        for key in service.get("environment", {}):
            if key.startswith("OUTPOST_"):
                assert key in known, f"{name}: {key} is not an Outpost setting"
    for key in documented_variables():
        if key.startswith("OUTPOST_") and key != "OUTPOST_IMAGE_TAG":
            assert key in known, f".env.example: {key} is not an Outpost setting"


def test_healthchecks_and_start_order() -> None:
    for name, service in SERVICES.items():
        if name in ONE_SHOT:
            assert service["restart"] == "no", name
            continue
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        assert service["restart"] == "unless-stopped", name
        for dependency, rule in service.get("depends_on", {}).items():
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], (name, dependency)
            else:
                assert rule["condition"] == "service_completed_successfully" and dependency in ONE_SHOT


def test_outpost_roles_are_cli_commands() -> None:
    parser = build_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command").choices
    assert subcommands is not None
    wanted = {SERVICES[name]["command"][0] for name in ("migrate", "ingest", "api")}
    assert "migrate" in subcommands
    missing = wanted - set(subcommands)
    if missing:
        pytest.skip(f"`outpost {' / '.join(sorted(missing))}` not in outpost/cli.py yet (issues 3 and 6)")


def test_dockerfile_copies_what_exists_and_runs_outpost() -> None:
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    for line in dockerfile.splitlines():
        if line.startswith("COPY") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), source
    assert 'ENTRYPOINT ["outpost"]' in dockerfile


def test_dockerfile_copies_every_package_the_wheel_holds() -> None:
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    copied = {
        line.split()[1]
        for line in dockerfile.splitlines()
        if line.startswith("COPY ") and "--from" not in line
    }
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied, f"the image would lack {sorted(packages - copied)}"


# ---------------------------------------------------------------- the real broker with the production config


def start_prod_broker(*, with_queue_limits: bool = True) -> ProdBroker:
    broker = ProdBroker(with_queue_limits=with_queue_limits).start()
    for device in ("dev-a", "dev-b", "alice/phone"):  # the last an OwnTracks id, user/device
        broker.add_device(device, f"{device}-secret")
    return broker


@pytest.fixture
def broker() -> Iterator[ProdBroker]:
    if (reason := missing_tools()) is not None:
        pytest.skip(reason)
    b = start_prod_broker()
    yield b
    b.close()


class Client:
    """A paho client that records what it receives and waits on events with a bound (never asserts speed)."""

    def __init__(
        self,
        port: int,
        user: str | None = None,
        password: str | None = None,
        *,
        client_id: str = "",
        clean: bool = True,
    ) -> None:
        self.inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connack: queue.Queue[ReasonCode] = queue.Queue()
        self.disconnected = threading.Event()
        self.paho = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
        if user is not None:
            self.paho.username_pw_set(user, password)
        self.paho.on_connect = lambda c, u, f, rc, p: self.connack.put(rc)
        self.paho.on_message = lambda c, u, m: self.inbox.put((m.topic, bytes(m.payload)))
        self.paho.on_disconnect = lambda c, u, f, rc, p: self.disconnected.set()
        self.paho.reconnect_delay_set(60, 60)  # no quiet reconnect behind a test's back
        self.paho.connect("127.0.0.1", port)
        # Pump the network by hand until CONNACK: a refused client then has no thread left to stop.
        for _ in range(int(WAIT_S / 0.05)):
            self.paho.loop(timeout=0.05)
            if not self.connack.empty():
                break
        self.accepted = not self.connack.get_nowait().is_failure
        if self.accepted:
            self.paho.loop_start()

    def subscribe(self, topic: str) -> bool:
        """Whether the broker granted the subscription."""
        granted: queue.Queue[bool] = queue.Queue()
        self.paho.on_subscribe = lambda c, u, mid, codes, p: granted.put(not any(c.is_failure for c in codes))
        self.paho.subscribe(topic, qos=1)
        return granted.get(timeout=WAIT_S)

    def publish(self, topic: str, payload: bytes = b"{}") -> None:
        self.paho.publish(topic, payload, qos=1).wait_for_publish(timeout=WAIT_S)

    def receive_until(self, topic: str) -> list[str]:
        """Topics received, in order, up to and including the first message on `topic` (the sentinel)."""
        got = []
        while True:
            received, _ = self.inbox.get(timeout=WAIT_S)
            got.append(received)
            if received == topic:
                return got

    def close(self) -> None:
        if self.accepted:
            self.paho.disconnect()
            self.paho.loop_stop()


def publish_reason(port: int, user: str | None, password: str | None, topic: str) -> str:
    """The broker's answer (MQTT 5 PUBACK reason) to one QoS 1 publish from a fresh connection.

    Mosquitto 2.0 answers a publish the ACL denies with "Not authorized" and then drops the connection,
    so each denied publish gets its own client (driven by hand: no network thread to wind down)."""
    reasons: queue.Queue[ReasonCode] = queue.Queue()
    paho = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    if user is not None:
        paho.username_pw_set(user, password)
    paho.on_publish = lambda c, u, mid, rc, p: reasons.put(rc)
    paho.connect("127.0.0.1", port)
    paho.publish(topic, b"{}", qos=1)  # queued until CONNACK, then sent
    for _ in range(int(WAIT_S / 0.05)):
        paho.loop(timeout=0.05)
        if not reasons.empty():
            break
    paho.disconnect()
    return str(reasons.get_nowait())


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for c in made:
        c.close()


def test_production_config_refuses_anonymous_and_wrong_passwords(
    broker: ProdBroker, clients: list[Client]
) -> None:
    devices, services = broker.ports[1883], broker.ports[1884]
    for port in (devices, services):
        clients.append(anonymous := Client(port))
        assert not anonymous.accepted
        clients.append(wrong := Client(port, "dev-a", "not-the-secret"))
        assert not wrong.accepted
    clients.append(device := Client(devices, "dev-a", "dev-a-secret"))
    assert device.accepted


def test_the_service_listener_takes_service_accounts_only(broker: ProdBroker, clients: list[Client]) -> None:
    services, devices = broker.ports[1884], broker.ports[1883]
    clients.append(device := Client(services, "dev-a", "dev-a-secret", client_id="outpost-ingest"))
    assert not device.accepted  # so no device can take the ingest's client id there
    clients.append(service_on_devices := Client(devices, "outpost", "service-secret"))
    assert not service_on_devices.accepted
    clients.append(admin_on_services := Client(services, *ADMIN))
    assert not admin_on_services.accepted  # the broker's admin is not a service account either
    clients.append(service := Client(services, "outpost", "service-secret", client_id="outpost-ingest"))
    assert service.accepted
    service.subscribe("outpost/v1/events/#")
    service.publish("outpost/v1/events/grid.entered")  # the API tells consoles listening over MQTT
    assert service.receive_until("outpost/v1/events/grid.entered") == ["outpost/v1/events/grid.entered"]
    # The live feed: ingest workers publish what they committed, api replicas follow it (silently dropped
    # by the broker before its ACL line, which left replicas 30 s behind).
    feed = "outpost/internal/v1/fixes/worker-1"
    service.subscribe("outpost/internal/v1/fixes/+")
    service.publish(feed)
    assert service.receive_until(feed) == [feed]


def test_a_device_publishes_only_under_its_own_id(broker: ProdBroker, clients: list[Client]) -> None:
    clients.append(
        ingest := Client(broker.ports[1884], "outpost", "service-secret", client_id="outpost-ingest")
    )
    ingest.subscribe("#")
    devices = broker.ports[1883]
    for other in (
        "outpost/v1/devices/dev-b/fix",
        "outpost/v1/devices/dev-a2/fix",
        "outpost/v1/devices/dev-a/offers",  # what Outpost sends it: an offer forged to itself
        "outpost/internal/v1/fixes/worker-1",
        "owntracks/alice/phone",
    ):
        assert publish_reason(devices, "dev-a", "dev-a-secret", other) == "Not authorized", other
    assert publish_reason(devices, "alice/phone", "alice/phone-secret", "owntracks/alice/phone/cmd") == (
        "Not authorized"  # Outpost's command topic for the phone
    )
    clients.append(device := Client(devices, "dev-a", "dev-a-secret"))
    clients.append(phone := Client(devices, "alice/phone", "alice/phone-secret"))
    device.publish("outpost/v1/devices/dev-a/fix")
    phone.publish("owntracks/alice/phone")
    device.publish(
        "outpost/v1/devices/dev-a/alarm"
    )  # sentinel: anything delivered before it arrived before it
    assert ingest.receive_until("outpost/v1/devices/dev-a/alarm") == [
        "outpost/v1/devices/dev-a/fix",
        "owntracks/alice/phone",
        "outpost/v1/devices/dev-a/alarm",
    ]


def test_a_device_reads_only_its_own_topics(broker: ProdBroker, clients: list[Client]) -> None:
    clients.append(device := Client(broker.ports[1883], "dev-a", "dev-a-secret"))
    assert not device.subscribe("#")  # refused: every device's offers, every position
    assert not device.subscribe("outpost/v1/devices/dev-b/offers")
    assert device.subscribe("outpost/v1/devices/dev-a/offers")
    clients.append(service := Client(broker.ports[1884], "outpost", "service-secret"))
    service.publish("outpost/v1/devices/dev-b/offers")
    service.publish("outpost/internal/v1/fixes/worker-1")  # every position: never to a device
    service.publish("outpost/v1/devices/dev-a/offers")
    assert device.receive_until("outpost/v1/devices/dev-a/offers") == ["outpost/v1/devices/dev-a/offers"]


def test_a_device_cannot_take_over_the_ingest_session(broker: ProdBroker, clients: list[Client]) -> None:
    clients.append(
        ingest := Client(broker.ports[1884], "outpost", "service-secret", client_id="outpost-ingest")
    )
    ingest.subscribe("outpost/#")
    clients.append(
        impostor := Client(broker.ports[1883], "dev-a", "dev-a-secret", client_id="outpost-ingest")
    )
    assert impostor.accepted  # but under its own name: the device listener forces client id = username
    impostor.publish("outpost/v1/devices/dev-a/fix")
    assert ingest.receive_until("outpost/v1/devices/dev-a/fix") == ["outpost/v1/devices/dev-a/fix"]
    assert not ingest.disconnected.is_set()


def test_loopback_listener_serves_the_health_check_and_nothing_else(
    broker: ProdBroker, clients: list[Client]
) -> None:
    check = [a.replace("$$", "$") for a in SERVICES["mosquitto"]["healthcheck"]["test"][1:]]
    port = check.index("-p") + 1
    check[port] = str(broker.ports[int(check[port])])
    assert subprocess.run(check, capture_output=True, timeout=WAIT_S).returncode == 0, shlex.join(check)

    clients.append(ingest := Client(broker.ports[1884], "outpost", "service-secret"))
    ingest.subscribe("#")
    forged = publish_reason(broker.ports[1880], None, None, "outpost/v1/devices/dev-a/fix")
    assert forged == "Not authorized"  # anonymous, even on loopback, may not inject fixes
    clients.append(device := Client(broker.ports[1883], "dev-a", "dev-a-secret"))
    device.publish("outpost/v1/devices/dev-a/fix", b"real")
    assert ingest.receive_until("outpost/v1/devices/dev-a/fix") == ["outpost/v1/devices/dev-a/fix"]


@pytest.mark.parametrize("with_queue_limits", [True, False], ids=["included", "negative-control"])
def test_queue_limits_are_included_so_an_offline_ingest_loses_nothing(
    clients: list[Client], with_queue_limits: bool
) -> None:
    """1500 fixes queued for the offline ingest: all delivered with outpost-queues.conf included; without it,
    Mosquitto's default max_queued_messages (1000) drops some, which proves the test can see the loss."""
    if (reason := missing_tools()) is not None:
        pytest.skip(reason)
    broker = start_prod_broker(with_queue_limits=with_queue_limits)
    try:
        ingest = Client(
            broker.ports[1884], "outpost", "service-secret", client_id="outpost-ingest", clean=False
        )
        ingest.subscribe("outpost/v1/devices/+/fix")
        ingest.close()
        clients.append(device := Client(broker.ports[1883], "dev-a", "dev-a-secret"))
        infos = [
            device.paho.publish("outpost/v1/devices/dev-a/fix", str(i).encode(), qos=1) for i in range(1500)
        ]
        for info in infos:
            info.wait_for_publish(timeout=WAIT_S)
        clients.append(
            back := Client(
                broker.ports[1884], "outpost", "service-secret", client_id="outpost-ingest", clean=False
            )
        )
        back.subscribe("outpost/v1/devices/+/alarm")  # the session already has the fix topic
        device.publish("outpost/v1/devices/dev-a/alarm")  # sentinel: published after the backlog was queued
        delivered = back.receive_until("outpost/v1/devices/dev-a/alarm")[:-1]
    finally:
        for client in clients:
            client.close()
        clients.clear()
        broker.close()
    if with_queue_limits:
        assert len(delivered) == 1500
    else:
        assert len(delivered) < 1500
