"""Install what the local stack and the report need, loudly; `chaoscert local
up` never does. `chaoscert setup --tests` also installs what chaoscert's own
tests need."""

from __future__ import annotations

import os
import shutil
import subprocess

from rich.console import Console

from chaoscert.errors import MissingProgramError
from chaoscert.platforms.local import dbtier
from chaoscert.platforms.local.layout import dbtier_venv
from chaoscert.platforms.local.stack import PROGRAMS, missing_programs
from chaoscert.report.pdf import find_chromium

APT_TIMEOUT_S = 900
PIP_TIMEOUT_S = 900
DB_TIER_PACKAGES = ["patroni[etcd3,psycopg3]>=4.0", "psycopg[binary]>=3.1"]
# Debian starts the services it installs; the stack runs its own copies.
PACKAGED_SERVICES = ("etcd", "haproxy", "postgresql")
REPORT_PACKAGES = ["chromium"]
# Only chaoscert's own tests need these: they read the report's screenshots.
TEST_PACKAGES = ["tesseract-ocr"]


def run(console: Console, tests: bool = False) -> int:
    """Install missing Debian packages (as root), with those of chaoscert's own
    tests if ``tests``, and the database tier's venv."""
    install_programs(console, tests)
    dbtier.ensure_db_user()
    try:
        console.print(f"database tier interpreter: {dbtier.db_python()}")
        return 0
    except MissingProgramError:
        pass
    venv = dbtier_venv()
    base = shutil.which("python3", path="/usr/bin:/usr/local/bin") or "python3"
    console.print(f"creating the database tier's interpreter in {venv} (from {base})")
    venv.parent.mkdir(parents=True, exist_ok=True)
    venv.parent.chmod(0o755)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "pip"), "install", "-q", *DB_TIER_PACKAGES]
    subprocess.run(pip, check=True, timeout=PIP_TIMEOUT_S)
    console.print(f"database tier interpreter: {dbtier.db_python()}")
    return 0


def install_programs(console: Console, tests: bool = False) -> None:
    missing = missing_programs() + _missing_beyond_the_stack(tests)
    if not missing:
        console.print("programs: all present")
        return
    packages = sorted(
        {package for _, package in PROGRAMS.values()}
        | set(REPORT_PACKAGES)
        | set(TEST_PACKAGES if tests else [])
    )
    if os.geteuid() != 0:
        raise MissingProgramError(
            "missing: "
            + "; ".join(missing)
            + f". As root: apt-get install -y {' '.join(packages)} python3-venv"
        )
    console.print(f"installing Debian packages: {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", *packages, "python3-venv"],
    ):
        subprocess.run(command, check=True, env=env, timeout=APT_TIMEOUT_S)
    for service in PACKAGED_SERVICES:
        subprocess.run(
            ["service", service, "stop"], capture_output=True, timeout=60, check=False
        )


def _missing_beyond_the_stack(tests: bool) -> list[str]:
    missing = []
    try:
        find_chromium()
    except MissingProgramError:
        missing.append("chromium (prints report.pdf; Debian package chromium)")
    if tests and not shutil.which("tesseract"):
        missing.append(
            "tesseract (reads the report's screenshots in chaoscert's tests;"
            " Debian package tesseract-ocr)"
        )
    return missing
