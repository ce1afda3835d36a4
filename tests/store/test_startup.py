"""Start-up errors as an operator meets them: `outpost migrate` / `outpost run` run as subprocesses against
real servers, each failure one line and exit 2 (the traceback only with `--log-level DEBUG`).

The servers without PostGIS, or with a TimescaleDB that is installed but not preloaded, are real PostgreSQL
processes: a relocated copy of this machine's PostgreSQL installation (its binaries copied, its share
folder linked file by file), whose extension folder a test can take PostGIS out of or put a `timescaledb`
into. PostgreSQL finds its share folder relative to its binary, so the server genuinely lacks the control
file. TimescaleDB itself is not installable here: its stand-in is an extension named `timescaledb` whose
script fails the way TimescaleDB's loader does without `shared_preload_libraries` (FATAL, ending the
session; or a plain ERROR). Where the real extension exists, `test_real_timescaledb_not_preloaded` runs
against it; elsewhere it skips, saying so.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import text

from store.engine import open_engine
from tests.support.services import REPO, PgCluster, free_port, pg_bindir

T = TypeVar("T")
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?:DEBUG|INFO) ")
CLI = [sys.executable, "-m", "outpost.cli"]
PASSWORD_USER, PASSWORD = "outpost_pw", "right-password"
_names = (f"outpost_startup_{i}" for i in itertools.count())
# How TimescaleDB's loader refuses a CREATE EXTENSION without shared_preload_libraries: FATAL (ending the
# session), as 2.x does; and the plain ERROR shape, for a loader that raises one.
STAND_INS = {
    "fatal": "SELECT pg_terminate_backend(pg_backend_pid());\nSELECT pg_sleep(5);\n",
    "error": "DO $$ BEGIN RAISE EXCEPTION 'extension \"timescaledb\" must be preloaded'; END $$;\n",
}


@dataclass
class Relocated:
    """A running cluster from a relocated PostgreSQL whose extension folder the tests may edit."""

    cluster: PgCluster
    extensions: Path

    def database(self) -> str:
        name = next(_names)
        self.cluster.psql(f"CREATE DATABASE {name}")
        return self.cluster.url(name)


def _relocate(root: Path) -> Path:
    """A copy of this machine's PostgreSQL under `root`, share files linked one by one; its bin folder."""
    bindir = pg_bindir()
    version_dir = bindir.parent  # …/lib/postgresql/15
    share = (
        Path(
            subprocess.run(
                [str(bindir / "pg_config"), "--sharedir"], capture_output=True, text=True, check=True
            ).stdout.strip()
        )
        if (bindir / "pg_config").exists()
        else None
    )
    if share is None or not share.is_dir():
        pytest.skip("pg_config --sharedir not available: cannot relocate PostgreSQL")
    relative = version_dir.relative_to(version_dir.parents[2])  # lib/postgresql/15
    new_bin = root / relative / "bin"
    new_bin.mkdir(parents=True)
    for binary in bindir.iterdir():
        shutil.copy2(binary, new_bin / binary.name)  # a symlink would lead PostgreSQL back to the original
    (root / relative / "lib").symlink_to(version_dir / "lib")
    new_share = root / "share" / share.relative_to(share.parents[1])  # share/postgresql/15
    new_share.mkdir(parents=True)
    for entry in share.iterdir():
        if entry.name != "extension":
            (new_share / entry.name).symlink_to(entry)
    (new_share / "extension").mkdir()
    for entry in (share / "extension").iterdir():
        (new_share / "extension" / entry.name).symlink_to(entry)
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755)  # PostgreSQL runs as `postgres` when the tests run as root
    return new_bin


@pytest.fixture(scope="module")
def relocated() -> Iterator[Relocated]:
    root = Path(tempfile.mkdtemp(prefix="outpost-pgreloc-"))
    root.chmod(0o755)
    try:
        new_bin = _relocate(root)
        cluster = _with_bindir(new_bin, lambda: PgCluster().start())
        try:
            hba = cluster.datadir / "pg_hba.conf"
            hba.write_text(
                f"host all {PASSWORD_USER} 127.0.0.1/32 scram-sha-256\n" + hba.read_text(), encoding="utf-8"
            )
            cluster.psql(f"CREATE ROLE {PASSWORD_USER} LOGIN SUPERUSER PASSWORD '{PASSWORD}'")
            cluster.psql("SELECT pg_reload_conf()")
            extensions = new_bin.parents[3] / "share" / "postgresql" / new_bin.parent.name / "extension"
            yield Relocated(cluster, extensions)
        finally:
            _with_bindir(new_bin, cluster.close)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _with_bindir(bindir: Path, action: Callable[[], T]) -> T:
    """`action` with the fixtures' PostgreSQL binaries taken from `bindir`; only for as long as it runs, so
    that the session's own cluster (started lazily, by any later test) still comes from the real install."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OUTPOST_TEST_PG_BIN", str(bindir))
        return action()


@pytest.fixture
def without_postgis(relocated: Relocated) -> Iterator[str]:
    """A fresh database on a server whose installation has no PostGIS."""
    hidden = relocated.extensions / "postgis.control"
    target = hidden.readlink()
    hidden.unlink()
    try:
        yield relocated.database()
    finally:
        hidden.symlink_to(target)


@pytest.fixture(params=sorted(STAND_INS))
def timescaledb_not_preloaded(request: pytest.FixtureRequest, relocated: Relocated) -> Iterator[str]:
    """A fresh database on a server offering a `timescaledb` that cannot be created (not preloaded)."""
    control = relocated.extensions / "timescaledb.control"
    script = relocated.extensions / "timescaledb--2.99.0.sql"
    control.write_text(
        "comment = 'stand-in: TimescaleDB installed but not in shared_preload_libraries'\n"
        "default_version = '2.99.0'\nrelocatable = false\n",
        encoding="utf-8",
    )
    script.write_text(STAND_INS[request.param], encoding="utf-8")
    try:
        yield relocated.database()
    finally:
        control.unlink()
        script.unlink()


def outpost(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`outpost ARGS` with only the given OUTPOST_* variables, as an operator's shell would run it."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    environ.update(PYTHONPATH=str(REPO), OUTPOST_SPOOL_DIR=str(tmp_path / "spool"), **env)
    return subprocess.run(
        [*CLI, *args], cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120, check=False
    )


def one_line_failure(result: subprocess.CompletedProcess[str]) -> str:
    """The one line of a command that could not start (exit 2, no traceback; before it, at most the log
    lines of what did start, such as the migration of a store that was reachable)."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if not _LOG_LINE.match(line)]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("outpost: cannot start: "), lines
    return lines[0]


# ---------------------------------------------------------------- PostGIS


def test_without_postgis_migrate_names_the_package_to_install(without_postgis: str, tmp_path: Path) -> None:
    line = one_line_failure(outpost(tmp_path, "migrate", OUTPOST_DATABASE_URL=without_postgis))
    assert "PostGIS is not installed" in line
    assert "postgresql-15-postgis-3" in line or "-postgis-3" in line

    debug = outpost(tmp_path, "--log-level", "DEBUG", "migrate", OUTPOST_DATABASE_URL=without_postgis)
    assert debug.returncode == 2
    assert "Traceback" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == line


# ---------------------------------------------------------------- TimescaleDB


def test_timescaledb_installed_not_preloaded_falls_back_to_partitions(
    timescaledb_not_preloaded: str, tmp_path: Path
) -> None:
    result = outpost(tmp_path, "migrate", OUTPOST_DATABASE_URL=timescaledb_not_preloaded)
    assert result.returncode == 0, result.stderr
    assert "fixes storage: partitions" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if " WARNING " in line]
    assert len(warnings) == 1, result.stderr
    assert "shared_preload_libraries" in warnings[0]
    assert "Traceback" not in result.stderr and "PendingRollbackError" not in result.stderr
    engine = open_engine(timescaledb_not_preloaded, pool_size=1)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT relkind FROM pg_class WHERE relname = 'fixes'")).scalar() == "p"
    finally:
        engine.dispose()
    # Run again: the same fallback, nothing left to apply.
    again = outpost(tmp_path, "migrate", OUTPOST_DATABASE_URL=timescaledb_not_preloaded)
    assert again.returncode == 0 and "already up to date" in again.stdout, again.stderr


def test_timescaledb_required_but_not_preloaded_fails_in_one_line(
    timescaledb_not_preloaded: str, tmp_path: Path
) -> None:
    result = outpost(
        tmp_path, "migrate", OUTPOST_DATABASE_URL=timescaledb_not_preloaded, OUTPOST_TIMESCALEDB="required"
    )
    line = one_line_failure(result)
    assert "OUTPOST_TIMESCALEDB=required" in line and "shared_preload_libraries" in line


def test_timescaledb_off_does_not_try(timescaledb_not_preloaded: str, tmp_path: Path) -> None:
    result = outpost(
        tmp_path, "migrate", OUTPOST_DATABASE_URL=timescaledb_not_preloaded, OUTPOST_TIMESCALEDB="off"
    )
    assert result.returncode == 0, result.stderr
    assert "fixes storage: partitions" in result.stdout
    assert " WARNING " not in result.stderr and "shared_preload_libraries" not in result.stderr


def test_timescaledb_required_where_the_server_has_none(relocated: Relocated, tmp_path: Path) -> None:
    result = outpost(
        tmp_path, "migrate", OUTPOST_DATABASE_URL=relocated.database(), OUTPOST_TIMESCALEDB="required"
    )
    line = one_line_failure(result)
    assert "does not offer the timescaledb extension" in line and "timescaledb-2-postgresql-15" in line


def test_real_timescaledb_not_preloaded(pg_cluster: PgCluster, tmp_path: Path) -> None:
    """The real extension, installed but not preloaded (the fixture's cluster preloads nothing)."""
    if not pg_cluster.psql("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"):
        pytest.skip(
            "TimescaleDB is not installed on this machine (it is not installable here): the real "
            "installed-but-not-preloaded case runs where the extension exists; the stand-in tests above run"
        )
    name = next(_names)
    pg_cluster.psql(f"CREATE DATABASE {name}")
    result = outpost(tmp_path, "migrate", OUTPOST_DATABASE_URL=pg_cluster.url(name))
    assert result.returncode == 0, result.stderr
    assert "fixes storage: partitions" in result.stdout
    assert "shared_preload_libraries" in result.stderr


# ---------------------------------------------------------------- the database and the broker


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    url = f"postgresql://outpost@127.0.0.1:{free_port()}/outpost"
    line = one_line_failure(outpost(tmp_path, "migrate", OUTPOST_DATABASE_URL=url))
    assert "cannot be used" in line and "OUTPOST_DATABASE_URL" in line


def test_wrong_password_is_one_line(relocated: Relocated, tmp_path: Path) -> None:
    port = relocated.cluster.port
    right = f"postgresql://{PASSWORD_USER}:{PASSWORD}@127.0.0.1:{port}/postgres"
    assert outpost(tmp_path, "config", OUTPOST_DATABASE_URL=right).returncode == 0
    wrong = f"postgresql://{PASSWORD_USER}:not-it@127.0.0.1:{port}/postgres"
    line = one_line_failure(outpost(tmp_path, "migrate", OUTPOST_DATABASE_URL=wrong))
    assert "password authentication failed" in line
    assert "not-it" not in line  # the URL is shown redacted


def test_unknown_database_is_one_line(relocated: Relocated, tmp_path: Path) -> None:
    url = relocated.cluster.url("no_such_database")
    line = one_line_failure(outpost(tmp_path, "migrate", OUTPOST_DATABASE_URL=url))
    assert 'database "no_such_database" does not exist' in line


def test_unreachable_broker_is_one_line(tmp_path: Path) -> None:
    broker = f"mqtt://127.0.0.1:{free_port()}"
    result = outpost(
        tmp_path,
        "run",
        OUTPOST_DATABASE_URL=f"sqlite:///{tmp_path / 'outpost.db'}",
        OUTPOST_MQTT_URL=broker,
        OUTPOST_HTTP_PORT=str(free_port()),
    )
    line = one_line_failure(result)
    assert broker in line and "OUTPOST_MQTT_URL" in line
