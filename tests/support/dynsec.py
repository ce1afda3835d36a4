"""Test helper: Mosquitto laid out as deploy/mosquitto ships it, on free loopback ports: devices on a
listener whose logins and ACLs are the dynamic-security plugin's (driven by Outpost through its admin
account, OUTPOST_MQTT_ADMIN_URL), Outpost's services on a listener of their own with a password file."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.services import free_port, wait_for_port

ADMIN = ("outpost-broker", "admin-secret")
SERVICE = ("outpost", "service-secret")
# Debian's package, and the eclipse-mosquitto image's path.
_PLUGINS = ("/usr/lib/*/mosquitto_dynamic_security.so", "/usr/lib/mosquitto_dynamic_security.so")


def plugin_path() -> str:
    for pattern in _PLUGINS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    raise RuntimeError("mosquitto_dynamic_security.so not found: run scripts/install-services as root")


@dataclass
class DynsecMosquitto:
    device_port: int = field(default_factory=free_port)
    service_port: int = field(default_factory=free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="outpost-dynsec-")))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def service_url(self) -> str:
        return f"mqtt://{SERVICE[0]}:{SERVICE[1]}@127.0.0.1:{self.service_port}"

    @property
    def admin_url(self) -> str:
        return f"mqtt://{ADMIN[0]}:{ADMIN[1]}@127.0.0.1:{self.device_port}"

    @property
    def log(self) -> str:
        path = self.root / "mosquitto.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def start(self) -> DynsecMosquitto:
        config = self.root / "dynamic-security.json"
        if not config.exists():
            subprocess.run(
                ["mosquitto_ctrl", "dynsec", "init", str(config), *ADMIN], check=True, capture_output=True
            )
            passwd = self.root / "services-passwd"
            subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), *SERVICE], check=True)
        conf = self.root / "mosquitto.conf"
        conf.write_text(
            "\n".join(
                [
                    "per_listener_settings true",
                    "persistence true",
                    f"persistence_location {self.root}/",
                    f"log_dest file {self.root}/mosquitto.log",
                    "log_type all",
                    f"listener {self.device_port} 127.0.0.1",
                    "allow_anonymous false",
                    f"plugin {plugin_path()}",
                    f"plugin_opt_config_file {config}",
                    "use_username_as_clientid true",
                    f"listener {self.service_port} 127.0.0.1",
                    "allow_anonymous false",
                    f"password_file {self.root}/services-passwd",
                ]
            )
            + "\n",
            encoding="utf-8",
        )
        if os.geteuid() == 0:  # mosquitto drops root for its own user, which must write the plugin's file
            for path in [self.root, *self.root.iterdir()]:
                with contextlib.suppress(KeyError, LookupError):
                    shutil.chown(path, "mosquitto", "mosquitto")
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.device_port, proc=self.proc)
        wait_for_port(self.service_port, proc=self.proc)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def close(self) -> None:
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)
