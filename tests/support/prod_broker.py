"""Test helper: the production Mosquitto of deploy/mosquitto, started exactly as docker-compose.yml mounts it
(files copied under a temporary root instead of `/`, listeners on free loopback ports, the init container's
script run against the same folder). Devices log in on the listener whose logins and ACLs are the
dynamic-security plugin's, written through its admin account as Outpost writes them (OUTPOST_MQTT_ADMIN_URL);
Outpost's services on the service listener with their own password file."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from ingest.broker_registry import issue_commands
from ingest.mqtt.client import parse_mqtt_url
from ingest.mqtt.dynsec import exchange
from tests.support.services import REPO, free_port, wait_for_port
from tests.support.tls import Pair

COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
ADMIN = ("outpost-broker", "admin-secret")
SERVICE = ("outpost", "service-secret")
DEVICES, SERVICE_LISTENER, HEALTH = 1883, 1884, 1880  # the container's ports
IMAGE_PLUGIN = "/usr/lib/mosquitto_dynamic_security.so"  # where the eclipse-mosquitto image has it
_PLUGINS = ("/usr/lib/*/mosquitto_dynamic_security.so", IMAGE_PLUGIN)  # Debian's package, the image's


def plugin_path() -> str | None:
    for pattern in _PLUGINS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def missing_tools() -> str | None:
    """Why the production broker cannot run here (a skip reason), or None."""
    for tool in ("mosquitto", "mosquitto_passwd", "mosquitto_ctrl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed: run scripts/install-services as root"
    if plugin_path() is None:
        return "mosquitto_dynamic_security.so is not installed: run scripts/install-services as root"
    return None


@dataclass
class ProdBroker:
    """Mosquitto from deploy/mosquitto as compose mounts it, under `root` instead of `/`."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="outpost-prod-mqtt-")))
    with_queue_limits: bool = True
    tls: Pair | None = None  # the device listener (and the admin on it) over TLS, as in deploy/README
    ports: dict[int, int] = field(default_factory=dict)  # container port → port on this machine
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        for name in ("mosquitto-init", "mosquitto"):
            for volume in SERVICES[name]["volumes"]:
                source, target = volume.split(":")[:2]
                inside = self.root / target.lstrip("/")
                if source.startswith((".", "/")):
                    inside.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(REPO / source, inside)
                else:
                    inside.mkdir(parents=True, exist_ok=True)
        self.conf = self.root / "mosquitto/config/mosquitto.conf"
        self.services_passwd = self.root / "mosquitto/auth/services-passwd"
        self.dynsec = self.root / "mosquitto/data/dynamic-security.json"
        self._rewrite_config()
        self.init_auth()

    @property
    def device_port(self) -> int:
        return self.ports[DEVICES]

    @property
    def service_url(self) -> str:
        return f"mqtt://{SERVICE[0]}:{SERVICE[1]}@127.0.0.1:{self.ports[SERVICE_LISTENER]}"

    @property
    def admin_url(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{ADMIN[0]}:{ADMIN[1]}@127.0.0.1:{self.device_port}"

    @property
    def log(self) -> str:
        path = self.root / "mosquitto.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def init_auth(self) -> None:
        """Run the init container's script, as compose does, against this folder."""
        env = {
            **os.environ,
            "MQTT_SERVICE_PASSWORD": SERVICE[1],
            "MQTT_ADMIN_PASSWORD": ADMIN[1],
            "MOSQUITTO_SERVICES_PASSWD_FILE": str(self.services_passwd),
            "MOSQUITTO_DYNSEC_FILE": str(self.dynsec),
        }
        script = self.root / "outpost/init-auth.sh"
        subprocess.run(["/bin/sh", str(script)], env=env, check=True, capture_output=True)

    def add_device(self, device_id: str, secret: str) -> None:
        """Give the broker a device login as Outpost does when it issues a secret."""
        digest = hashlib.sha256(secret.encode()).hexdigest()  # any stand-in for the registry's hash
        create, update = issue_commands(device_id, secret, digest, True)
        answers = exchange(parse_mqtt_url(self.admin_url), create + update)
        refused = [
            a for a in answers if a.error and "already exists" not in a.error and "not found" not in a.error
        ]
        assert not refused, refused

    def _rewrite_config(self) -> None:
        lines = []
        for line in self.conf.read_text(encoding="utf-8").splitlines():
            words = line.split()
            if words[:1] == ["listener"]:
                port = self.ports.setdefault(int(words[1]), free_port())
                line = f"listener {port} 127.0.0.1"  # the tests' broker never listens beyond this machine
                if self.tls is not None and int(words[1]) == DEVICES:
                    kept = self.root / "mosquitto/certs"
                    kept.mkdir(parents=True, exist_ok=True)  # under the root: mosquitto's user reads it
                    cert, key = shutil.copy(self.tls.cert, kept), shutil.copy(self.tls.key, kept)
                    line += f"\ncertfile {cert}\nkeyfile {key}"
            elif words[:1] == ["include_dir"] and not self.with_queue_limits:
                continue
            elif words[:1] == ["log_dest"]:
                line = f"log_dest file {self.root}/mosquitto.log"
            elif words == ["plugin", IMAGE_PLUGIN]:
                line = f"plugin {plugin_path()}"
            lines.append(re.sub(r"(?<![\w$])/mosquitto/", f"{self.root}/mosquitto/", line))
        self.conf.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start(self) -> ProdBroker:
        if os.geteuid() == 0:  # mosquitto drops root privileges to its own user, which must reach the files
            for path in [self.root, *self.root.rglob("*")]:
                with contextlib.suppress(KeyError, LookupError):
                    shutil.chown(path, "mosquitto", "mosquitto")
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            for port in self.ports.values():
                wait_for_port(port, proc=self.proc)
        except RuntimeError:
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            raise RuntimeError(f"mosquitto refused the production config:\n{err}\n{self.log}") from None
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def close(self) -> None:
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)
