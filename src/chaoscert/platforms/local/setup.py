"""Install what the local stack needs, loudly; `chaoscert local up` never does."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from rich.console import Console

from chaoscert.errors import MissingProgramError
from chaoscert.platforms.local.stack import PROGRAMS, missing_programs

APT_TIMEOUT_S = 900
DB_TIER_PACKAGES = ["patroni[etcd3,psycopg3]>=4.0", "psycopg[binary]>=3.1"]


def run(state_dir: Path, console: Console) -> int:
    """Install missing Debian packages (as root) and the database tier's venv."""
    missing = missing_programs()
    if missing:
        packages = sorted({package for _, package in PROGRAMS.values()})
        if os.geteuid() != 0:
            raise MissingProgramError(
                "missing: "
                + "; ".join(missing)
                + f". As root: apt-get install -y {' '.join(packages)}"
            )
        console.print(f"installing Debian packages: {' '.join(packages)}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", *packages, "python3-venv"],
        ):
            subprocess.run(command, check=True, env=env, timeout=APT_TIMEOUT_S)
        # Debian starts the packaged services; the stack runs its own copies.
        for service in ("etcd", "haproxy", "postgresql"):
            subprocess.run(
                ["service", service, "stop"],
                capture_output=True,
                timeout=60,
                check=False,
            )
    else:
        console.print("programs: all present")

    from chaoscert.platforms.local.layout import default_state_dir
    from chaoscert.platforms.local.stack import LocalStack
    from chaoscert.topology import NodeSpec, Topology, ZoneSpec

    probe = LocalStack(
        Topology(
            name="setup", zones=(ZoneSpec(name="z", nodes=(NodeSpec(name="n"),)),)
        ),
        state_dir or default_state_dir(),
    )
    probe.ensure_db_user()
    try:
        python = probe.db_python()
        console.print(f"database tier interpreter: {python}")
        return 0
    except MissingProgramError:
        pass
    venv = state_dir / "dbtier-venv"
    base = shutil.which("python3", path="/usr/bin:/usr/local/bin") or "python3"
    console.print(f"creating the database tier's interpreter in {venv} (from {base})")
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir.chmod(0o755)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", *DB_TIER_PACKAGES],
        check=True,
        timeout=APT_TIMEOUT_S,
    )
    console.print(f"database tier interpreter: {probe.db_python()}")
    return 0
