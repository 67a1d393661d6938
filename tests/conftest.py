"""Fixtures for chaoscert's own tests: a real PostgreSQL 15 and a served stand-in.

PostgreSQL refuses to run as root; when the tests run as root, initdb and
pg_ctl run as the unprivileged system user "chaoscert" (created if missing),
in a temporary directory under /tmp that it owns (/root is mode 700).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest
from psycopg import sql

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_OS_USER = "chaoscert"
APP_ROLE = "odoo"
DB_NAME = "logistics"
ADMIN_LOGIN = "admin"
STANDIN_STATEMENT_TIMEOUT_S = 3
SRC = Path(__file__).resolve().parents[1] / "src"


@dataclass(frozen=True)
class PostgresServer:
    base_dir: Path
    port: int
    conninfo: str  # the application role, password from a passfile
    superuser_conninfo: str  # over the Unix socket, trusted

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "postgres.log"

    def postmaster(self) -> psutil.Process:
        pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        return psutil.Process(pid)

    def freeze(self) -> None:
        """SIGSTOP the postmaster, then every backend: the server answers nothing."""
        postmaster = self.postmaster()
        postmaster.suspend()  # first, so that it forks nothing new meanwhile
        for child in postmaster.children(recursive=True):
            with suppress(psutil.NoSuchProcess):
                child.suspend()

    def thaw(self) -> None:
        postmaster = self.postmaster()
        for child in postmaster.children(recursive=True):
            with suppress(psutil.NoSuchProcess):
                child.resume()
        postmaster.resume()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _db_user() -> dict[str, Any]:
    """subprocess arguments that run a command as the Postgres OS user when root."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam(PG_OS_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                PG_OS_USER,
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        entry = pwd.getpwnam(PG_OS_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _pg(args: list[str], cwd: Path, timeout_s: float) -> None:
    env = {"PATH": f"{PG_BIN}:/usr/bin:/bin", "LC_ALL": "C", "LANG": "C"}
    result = subprocess.run(
        [str(PG_BIN / args[0]), *args[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        **_db_user(),
    )
    if result.returncode != 0:
        log = cwd / "postgres.log"
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise RuntimeError(
            f"{args[0]} exited {result.returncode}:\n{result.stdout}\n"
            f"{result.stderr}\n{log}:\n{tail}"
        )


@pytest.fixture(scope="session")
def postgres_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PostgresServer]:
    """A real PostgreSQL 15 on 127.0.0.1 and a free port, for the whole session."""
    if not (PG_BIN / "postgres").exists():
        # A missing server must fail the run, not quietly skip its tests.
        pytest.fail(f"PostgreSQL 15 binaries not found in {PG_BIN}; run `make setup`")
    base = Path(tempfile.mkdtemp(prefix="chaoscert-pg-", dir="/tmp"))
    data, sockets = base / "data", base / "sockets"
    sockets.mkdir()
    user = _db_user()
    if user:
        for path in (base, sockets):
            os.chown(path, user["user"], user["group"])
    port = free_port()
    try:
        _pg(
            [
                "initdb",
                "-D",
                str(data),
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-locale",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ],
            base,
            120,
        )
        _pg(
            [
                "pg_ctl",
                "-D",
                str(data),
                "-l",
                str(base / "postgres.log"),
                "-w",
                "-t",
                "60",
                "-o",
                f"-c port={port} -c listen_addresses=127.0.0.1"
                f" -c unix_socket_directories={sockets} -c fsync=off"
                " -c synchronous_commit=off -c full_page_writes=off",
                "start",
            ],
            base,
            90,
        )
        secrets_dir = tmp_path_factory.mktemp("postgres-secrets")
        yield _create_app_database(base, port, sockets, secrets_dir)
    finally:
        _stop_postgres(base, data)


def _create_app_database(
    base: Path, port: int, sockets: Path, secrets_dir: Path
) -> PostgresServer:
    # The passfile belongs to the tests' user, who also runs the stand-in.
    password = secrets.token_urlsafe(24)
    passfile = secrets_dir / "pgpass"
    passfile.write_text(f"127.0.0.1:{port}:*:{APP_ROLE}:{password}\n")
    passfile.chmod(0o600)
    superuser = f"host={sockets} port={port} user=postgres dbname=postgres"
    with psycopg.connect(superuser, autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(APP_ROLE), sql.Literal(password)
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(DB_NAME), sql.Identifier(APP_ROLE)
            )
        )
    conninfo = (
        f"host=127.0.0.1 port={port} dbname={DB_NAME} user={APP_ROLE}"
        f" passfile={passfile} target_session_attrs=read-write connect_timeout=2"
    )
    return PostgresServer(base, port, conninfo, superuser)


def _stop_postgres(base: Path, data: Path) -> None:
    pid_file = data / "postmaster.pid"
    if pid_file.exists():
        with suppress(Exception):
            # A test may have left it frozen; a stopped postmaster ignores SIGQUIT.
            postmaster = psutil.Process(int(pid_file.read_text().splitlines()[0]))
            for process in [postmaster, *postmaster.children(recursive=True)]:
                process.resume()
        try:
            _pg(
                [
                    "pg_ctl",
                    "-D",
                    str(data),
                    "-m",
                    "immediate",
                    "-w",
                    "-t",
                    "30",
                    "stop",
                ],
                base,
                60,
            )
        except (RuntimeError, subprocess.TimeoutExpired):
            with suppress(Exception):
                pid = int(pid_file.read_text().splitlines()[0])
                os.kill(pid, signal.SIGKILL)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_dsn(postgres_server: PostgresServer) -> str:
    """libpq conninfo of the "logistics" database, as the application role."""
    return postgres_server.conninfo


@pytest.fixture(scope="session")
def admin_password() -> str:
    return secrets.token_urlsafe(16)


@pytest.fixture(scope="session")
def standin_env(
    postgres_dsn: str, admin_password: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """The stand-in's environment, its schema bootstrapped; sessions dir shared."""
    from chaoscert.standin.schema import bootstrap

    root = tmp_path_factory.mktemp("standin")
    password_file = root / "admin-password"
    password_file.write_text(admin_password + "\n")
    password_file.chmod(0o600)
    bootstrap(postgres_dsn, ADMIN_LOGIN, admin_password)
    return {
        "CHAOSCERT_STANDIN_DSN": postgres_dsn,
        "CHAOSCERT_STANDIN_DB": DB_NAME,
        "CHAOSCERT_STANDIN_ADMIN_LOGIN": ADMIN_LOGIN,
        "CHAOSCERT_STANDIN_ADMIN_PASSWORD_FILE": str(password_file),
        "CHAOSCERT_STANDIN_SESSIONS_DIR": str(root / "sessions"),
        "CHAOSCERT_STANDIN_STATEMENT_TIMEOUT_S": str(STANDIN_STATEMENT_TIMEOUT_S),
        "CHAOSCERT_STANDIN_LOG_LEVEL": "DEBUG",
    }


@contextmanager
def serve_standin(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """Run the stand-in under gunicorn (2 sync workers); yield its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    python_path = os.pathsep.join(
        part for part in (str(SRC), os.environ.get("PYTHONPATH", "")) if part
    )
    command = [
        *(sys.executable, "-m", "gunicorn", "--workers", "2"),
        *("--bind", f"127.0.0.1:{port}", "--timeout", "60"),
        *("--graceful-timeout", "5", *_gunicorn_options()),
        "chaoscert.standin.app:application",
    ]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            env={**os.environ, **env, "PYTHONPATH": python_path},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_healthy(url, process, log_path, timeout_s=60)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


def _gunicorn_options() -> list[str]:
    """Options of the installed gunicorn that several instances on one host need."""
    from gunicorn import config

    names = {setting.name for setting in config.KNOWN_SETTINGS}
    # gunicorn 27 opens a control socket at one fixed path per user by default;
    # a second instance would take it over.
    return ["--no-control-socket"] if "control_socket_disable" in names else []


def _wait_healthy(
    url: str, process: subprocess.Popen[bytes], log_path: Path, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"gunicorn exited {process.returncode} before serving {url};"
                f" log {log_path}:\n{log_path.read_text()[-3000:]}"
            )
        with suppress(httpx.HTTPError):
            if httpx.get(f"{url}/web/health", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(
        f"the stand-in at {url} was not healthy within {timeout_s} s; log {log_path}"
    )


@pytest.fixture(scope="session")
def standin_url(
    standin_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Base URL of a stand-in replica served by gunicorn over real Postgres."""
    log_path = tmp_path_factory.mktemp("standin-logs") / "replica-1.log"
    with serve_standin(standin_env, log_path) as url:
        yield url


@pytest.fixture(scope="session")
def standin_peer_url(
    standin_env: dict[str, str],
    standin_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """A second replica sharing the database and the sessions directory."""
    log_path = tmp_path_factory.mktemp("standin-logs") / "replica-2.log"
    with serve_standin(standin_env, log_path) as url:
        yield url
