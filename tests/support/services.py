"""Real PostgreSQL (with PostGIS) and Mosquitto processes on free ports, for tests and benchmarks.

Nothing here is mocked: each class starts the real server from its binaries in a temporary folder and
stops it on `close`. As root (CI runs as root), PostgreSQL runs as the `postgres` system user, because
initdb refuses root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
QUEUES_CONF = REPO / "deploy" / "mosquitto" / "outpost-queues.conf"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until something accepts on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


def pg_bindir() -> Path:
    """Where PostgreSQL's server binaries are (OUTPOST_TEST_PG_BIN overrides)."""
    override = os.environ.get("OUTPOST_TEST_PG_BIN")
    if override:
        return Path(override)
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out and (Path(out) / "initdb").exists():
            return Path(out)
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    if not candidates:
        raise RuntimeError("PostgreSQL server binaries not found: run scripts/install-services as root")
    return candidates[0].parent


@dataclass
class PgCluster:
    """A throwaway PostgreSQL cluster. `url` is a postgresql:// URL to its `postgres` database."""

    port: int = field(default_factory=free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="outpost-pg-")))
    fsync: bool = True
    _as_user: str | None = None

    def __post_init__(self) -> None:
        self.datadir = self.root / "data"
        self.sockdir = self.root / "sock"
        self.logfile = self.root / "postgres.log"
        if os.geteuid() == 0:
            self._as_user = "postgres"
            self.root.chmod(0o755)

    @property
    def user(self) -> str:
        return self._as_user or pwd.getpwuid(os.geteuid()).pw_name

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self._as_user:
            cmd = ["runuser", "-u", self._as_user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check)

    def start(self) -> PgCluster:
        bindir = pg_bindir()
        self.sockdir.mkdir(parents=True, exist_ok=True)
        if self._as_user:
            shutil.chown(self.root, self._as_user)
            shutil.chown(self.sockdir, self._as_user)
        self._run(
            str(bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-U",
            self.user,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
        )
        opts = (
            f"-p {self.port} -k {self.sockdir} -c listen_addresses=127.0.0.1 -c max_connections=200"
            f" -c fsync={'on' if self.fsync else 'off'} -c shared_buffers=256MB"
        )
        self._run(
            str(bindir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-o",
            opts,
            "-l",
            str(self.logfile),
            "-w",
            "-t",
            "60",
            "start",
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (mode: smart, fast or immediate); the data stays for `start_again`."""
        self._run(str(pg_bindir() / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop", check=False)

    def start_again(self) -> None:
        opts = f"-p {self.port} -k {self.sockdir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run(
            str(pg_bindir() / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-o",
            opts,
            "-l",
            str(self.logfile),
            "-w",
            "-t",
            "60",
            "start",
        )

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        out = self._run(
            str(pg_bindir() / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            dbname,
            "-v",
            "ON_ERROR_STOP=1",
            "-tAc",
            sql,
        )
        return out.stdout.strip()

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Mosquitto:
    """A Mosquitto broker from a temporary config on a free port, with Outpost's shipped queue limits."""

    port: int = field(default_factory=free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="outpost-mqtt-")))
    extra_conf: str = ""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def config_text(self) -> str:
        return (
            "\n".join(
                [
                    f"listener {self.port} 127.0.0.1",
                    "allow_anonymous true",
                    "persistence true",
                    f"persistence_location {self.root}/",
                    "autosave_interval 1",
                    f"log_dest file {self.root}/mosquitto.log",
                    QUEUES_CONF.read_text(encoding="utf-8"),
                    self.extra_conf,
                ]
            )
            + "\n"
        )

    def start(self) -> Mosquitto:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise RuntimeError("mosquitto not found: run scripts/install-services as root")
        conf = self.root / "mosquitto.conf"
        conf.write_text(self.config_text(), encoding="utf-8")
        if os.geteuid() == 0:
            # Mosquitto drops root privileges to the `mosquitto` user; it must be able to write its folder.
            with contextlib.suppress(KeyError, LookupError):
                shutil.chown(self.root, "mosquitto")
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port, proc=self.proc)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop gracefully (SIGTERM saves persistent sessions) or kill (SIGKILL)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)
