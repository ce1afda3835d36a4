"""`outpost run` as a real subprocess against a given database and broker, for the load test's end-to-end
test and for benchmarks/bench_freshness.py (which imports it).

Only the public interface is used: `outpost migrate`, `outpost token create --role admin` (the token is the
last line it prints), `outpost run`, the OUTPOST_* variables and `GET /readyz`.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from tests.support.services import REPO, free_port

_OUTPOST = [sys.executable, "-m", "outpost.cli"]


def missing_commands() -> str | None:
    """Why `outpost run` cannot be used here yet (None when `run` and `token create` both exist)."""
    out = subprocess.run([*_OUTPOST, "--help"], capture_output=True, text=True, cwd=REPO, check=False)
    # argparse lists subcommands indented by four spaces under "positional arguments".
    commands = set(re.findall(r"^ {4}([a-z][\w-]*)", out.stdout, re.MULTILINE))
    missing = [c for c in ("run", "token") if c not in commands]
    return f"`outpost` has no {' and no '.join(missing)} command yet" if missing else None


class OutpostProcess:
    """Migrates the database, creates an admin token and runs `outpost run` until closed."""

    def __init__(
        self, database_url: str, mqtt_url: str, workdir: Path, extra_env: dict[str, str] | None = None
    ):
        self.http_port = free_port()
        self.http_url = f"http://127.0.0.1:{self.http_port}"
        self.workdir = workdir
        self.log_path = workdir / "outpost.log"
        self.env = {
            **os.environ,
            # This checkout's code, whatever the editable install's package map says.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "OUTPOST_DATABASE_URL": database_url,
            "OUTPOST_MQTT_URL": mqtt_url,
            "OUTPOST_HTTP_HOST": "127.0.0.1",
            "OUTPOST_HTTP_PORT": str(self.http_port),
            "OUTPOST_REGISTER_UNKNOWN_DEVICES": "true",
            "OUTPOST_SPOOL_DIR": str(workdir / "spool"),
            "OUTPOST_MQTT_CLIENT_ID": f"outpost-ingest-{self.http_port}",
            **(extra_env or {}),
        }
        self.token = ""
        self.proc: subprocess.Popen[bytes] | None = None

    def _cli(self, *args: str) -> str:
        out = subprocess.run(
            [*_OUTPOST, *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.workdir,
            timeout=120,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"outpost {' '.join(args)} exited {out.returncode}: {out.stderr[-2000:]}")
        return out.stdout

    def start(self, timeout_s: float = 60.0) -> OutpostProcess:
        """Migrate, create the token, start the server and wait until /readyz answers 200."""
        self._cli("migrate")
        self.token = self._cli("token", "create", "--role", "admin").strip().splitlines()[-1].strip()
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [*_OUTPOST, "run"], env=self.env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"outpost run exited {self.proc.returncode}:\n{self.log_tail()}")
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(self.http_url + "/readyz", timeout=1) as resp,
            ):
                if resp.status == 200:
                    return self
            time.sleep(0.1)
        self.close()
        raise TimeoutError(f"outpost run not ready after {timeout_s} s:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.proc is not None
        return self.proc.pid

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def close(self) -> None:
        """Stop the server gracefully (SIGTERM), or kill it after 20 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> OutpostProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
