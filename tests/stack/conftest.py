"""A real local stack for the tests: etcd, Patroni/PostgreSQL, gunicorn, HAProxy.

It runs in its own state directory and on its own ports, so it never touches
a stack that `make certify` brought up. Taken down at the end of the session,
also when a test fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaoscert.platforms.local.platform import LocalPlatform
from chaoscert.platforms.local.stack import missing_programs
from chaoscert.results import RunResults, load_results
from chaoscert.topology import Ports, Topology, load_topology

ROOT = Path(__file__).resolve().parents[2]
RUN_BOUND_S = 900
TEST_STATE_DIR = Path(os.environ.get("CHAOSCERT_TEST_HOME", "/var/tmp/chaoscert-test"))


def shifted_topology(
    offset: int = 10000, name: str = "reference-test", source: str = "reference"
) -> Topology:
    """A shipped topology (default: the reference) on ports shifted by `offset`."""
    reference = load_topology(ROOT / f"fixtures/topologies/{source}.yaml")
    ports = Ports(
        **{key: value + offset for key, value in Ports().model_dump().items()}
    )
    return reference.model_copy(update={"ports": ports, "name": name})


def write_topology(path: Path, topology: Topology) -> Path:
    path.write_text(topology.model_dump_json())
    return path


@pytest.fixture(scope="session")
def stack_topology_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if missing_programs():
        pytest.fail(
            "the local stack's programs are missing: "
            + "; ".join(missing_programs())
            + " (run `make setup`)"
        )
    return write_topology(
        tmp_path_factory.mktemp("topology") / "t.json", shifted_topology()
    )


@pytest.fixture(scope="session")
def local_platform(stack_topology_file: Path) -> Iterator[LocalPlatform]:
    platform = LocalPlatform(stack_topology_file, TEST_STATE_DIR)
    platform.registry.install()
    try:
        platform.ensure_up()
        yield platform
    finally:
        platform.heal_all()
        platform.stack.down()
        platform.registry.uninstall()


def run_catalogue(
    topology_file: Path, state_dir: Path, reports: Path, select: str
) -> tuple[subprocess.CompletedProcess[str], RunResults]:
    """`chaoscert run` as a user runs it, on scenarios matching `select` (-k)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "chaoscert.cli",
            "run",
            f"--topology={topology_file}",
            f"--state-dir={state_dir}",
            f"--reports-dir={reports}",
            f"--suite={ROOT}",
            "--",
            "-k",
            select,
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_BOUND_S,
        check=False,
    )
    results = load_results((reports / "latest").resolve())
    return done, results
