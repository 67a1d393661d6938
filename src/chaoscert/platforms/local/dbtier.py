"""Who runs the database tier, and with which interpreter.

PostgreSQL refuses to run as root, so as root the database tier (Patroni and
the postmasters it starts) runs as the unprivileged system user DB_USER, and
needs a Python with Patroni that this user can read and run.
"""

from __future__ import annotations

import logging
import os
import pwd
import subprocess
import sys

from chaoscert.errors import MissingProgramError
from chaoscert.platforms.local.layout import DB_USER, dbtier_venv

log = logging.getLogger("chaoscert.local")


def db_user() -> str | None:
    """DB_USER when running as root; None (this user) otherwise."""
    return DB_USER if os.geteuid() == 0 else None


def ensure_db_user() -> None:
    user = db_user()
    if user is None:
        return
    try:
        pwd.getpwnam(user)
    except KeyError:
        command = ["useradd", "--system", "--no-create-home"]
        command += ["--shell", "/usr/sbin/nologin", user]
        subprocess.run(command, check=True, capture_output=True, timeout=30)
        log.info("created system user %s for the database tier", user)


def candidates() -> list[str]:
    found = [
        os.environ.get("CHAOSCERT_DB_PYTHON", ""),
        sys.executable,
        str(dbtier_venv() / "bin" / "python"),
    ]
    return [candidate for candidate in found if candidate]


def db_python() -> str:
    """An interpreter with Patroni that the database user can run."""
    for candidate in candidates():
        if can_run(candidate):
            return candidate
    raise MissingProgramError(
        f"the database tier runs as {db_user() or 'this user'}, and no interpreter"
        f" it can run has Patroni (tried {', '.join(candidates())}); run"
        f" `make setup` to create {dbtier_venv()}, or set CHAOSCERT_DB_PYTHON"
    )


def can_run(python: str) -> bool:
    command = [python, "-c", "import patroni, psycopg"]
    user = db_user()
    if user:
        command = ["runuser", "-u", user, "--", *command]
    try:
        done = subprocess.run(
            command, check=False, capture_output=True, timeout=30, cwd="/"
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0
