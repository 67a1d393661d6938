"""Bring the embedded local stack up, report on it, and take it down."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import psutil
import psycopg
from psycopg import sql
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from chaoscert.errors import ChaoscertError, ComponentError, MissingProgramError
from chaoscert.platforms.local import dbtier, health
from chaoscert.platforms.local.cgroups import NodeGroup, cgroup2_root
from chaoscert.platforms.local.layout import (
    APP_ROLE,
    EDGE_NODE,
    PG_BIN,
    Credentials,
    Layout,
    render,
)
from chaoscert.standin.schema import bootstrap
from chaoscert.topology import Topology

log = logging.getLogger("chaoscert.local")

LEADER_TIMEOUT_S = 90.0
STEADY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 45.0
BOOTSTRAP_TIMEOUT_S = 60.0

# What each program is for and the Debian package that brings it.
PROGRAMS = {
    "etcd": ("the DCS (etcd)", "etcd-server"),
    "haproxy": ("ingress and edge (HAProxy)", "haproxy"),
    str(PG_BIN / "postgres"): ("PostgreSQL 15", "postgresql-15"),
    str(PG_BIN / "pg_rewind"): ("PostgreSQL 15 (pg_rewind)", "postgresql-15"),
}


@dataclass
class NodeStatus:
    node: str
    zone: str
    address: str
    state: str  # running, frozen, stopped
    pids: int


def stack_id_of(state_dir: Path) -> str:
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()
    return f"s{digest[:8]}"


def missing_programs() -> list[str]:
    missing = []
    for program, (role, package) in PROGRAMS.items():
        found = os.access(program, os.X_OK) if "/" in program else shutil.which(program)
        if not found:
            missing.append(f"{program} ({role}; Debian package {package})")
    return missing


class LocalStack:
    """The local stack of one state directory."""

    def __init__(self, topology: Topology, state_dir: Path):
        self.layout = Layout(topology, state_dir)
        self.topology = topology
        self.state_dir = state_dir
        self.stack_id = stack_id_of(state_dir)
        self.cgroup_root = cgroup2_root()
        self._run_lock: TextIO | None = None

    # -- identities ----------------------------------------------------------
    @property
    def db_user(self) -> str | None:
        return dbtier.db_user()

    def group(self, node: str) -> NodeGroup:
        return NodeGroup(self.stack_id, node, self.cgroup_root)

    def credentials(self) -> Credentials:
        return Credentials.load_or_create(self.layout.secrets_dir)

    # -- preconditions -------------------------------------------------------
    def check_programs(self) -> None:
        missing = missing_programs()
        if missing:
            hint = (
                "install them with `make setup` (as root it runs apt-get)"
                if os.geteuid() == 0
                else "ask an administrator to install the Debian packages named"
            )
            raise MissingProgramError(
                "the local stack needs programs that are not installed: "
                + "; ".join(missing)
                + f". {hint}"
            )

    # -- locking ---------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One chaoscert at a time changes a stack; flock dies with its holder."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o755)
        with open(self.layout.lock_file, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ChaoscertError(
                    f"another chaoscert process is using the local stack in"
                    f" {self.state_dir} (lock {self.layout.lock_file})"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def acquire_run(self) -> None:
        """Hold the run lock while a run uses this stack; `down` refuses meanwhile."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.layout.run_lock_file, "a+")  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise ChaoscertError(
                f"another chaoscert run (pid {holder}) is using the local stack in"
                f" {self.state_dir}; wait for it or stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._run_lock = handle

    def release_run(self) -> None:
        handle = self._run_lock
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
            self._run_lock = None

    def refuse_if_running(self) -> None:
        """Raise if a chaoscert run holds this stack."""
        if not self.layout.run_lock_file.exists():
            return
        with open(self.layout.run_lock_file) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = handle.read().strip() or "unknown"
                raise ChaoscertError(
                    f"a chaoscert run (pid {holder}) is using the local stack in"
                    f" {self.state_dir}; wait for it to end or stop it first"
                ) from None
            fcntl.flock(handle, fcntl.LOCK_UN)

    # -- nodes ---------------------------------------------------------------
    def agent_pid(self, node: str) -> int | None:
        try:
            pid = int(self.layout.agent_pid_file(node).read_text())
            proc = psutil.Process(pid)
            if str(self.layout.plan_file(node)) in proc.cmdline():
                return pid
        except (OSError, ValueError, psutil.Error):
            pass
        return None

    def node_state(self, node: str) -> NodeStatus:
        group = self.group(node)
        pids = group.pids()
        if group.frozen():
            state = "frozen"
        elif self.agent_pid(node):
            state = "running"
        else:
            state = "stopped" if not pids else "orphaned"
        return NodeStatus(
            node,
            self.layout.zone_of(node),
            self.layout.address_of(node),
            state,
            len(pids),
        )

    def start_node(self, node: str) -> None:
        """Start a node's agent, which starts and keeps its programs."""
        if self.agent_pid(node):
            return
        group = self.group(node)
        group.prepare()
        if group.pids():
            # A killed agent may leave children; a node starts clean.
            group.kill()
        self._own_node_dirs(node)
        self.layout.agent_status_file(node).unlink(missing_ok=True)
        agent_log = open(self.layout.log_of(node, "agent"), "ab")  # noqa: SIM115
        with agent_log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "chaoscert.platforms.local.agent",
                    str(self.layout.plan_file(node)),
                    self.stack_id,
                ],
                stdin=subprocess.DEVNULL,
                stdout=agent_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=group.enter,  # noqa: PLW1509
                cwd="/",
            )
        self.layout.agent_pid_file(node).write_text(str(process.pid))
        log.info(
            "node %s: agent started (pid %d, %s)", node, process.pid, group.mechanism
        )

    def _own_node_dirs(self, node: str) -> None:
        if self.db_user and node in self.topology.running("postgres"):
            for path in (self.layout.node_dir(node), self.layout.run_dir(node)):
                shutil.chown(path, self.db_user, self.db_user)
            for stale in self.layout.run_dir(node).glob(".s.PGSQL.*"):
                stale.unlink(missing_ok=True)

    def stop_node(self, node: str, timeout_s: float = STOP_TIMEOUT_S) -> None:
        group = self.group(node)
        if group.frozen():
            group.thaw()
        pid = self.agent_pid(node)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while group.pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        if group.pids():
            log.warning(
                "node %s: processes left after %.0f s; killing them", node, timeout_s
            )
            group.kill()
        group.remove()
        self.layout.agent_pid_file(node).unlink(missing_ok=True)

    # -- lifecycle -------------------------------------------------------------
    def up(
        self,
        progress: Callable[[str], None] = log.info,
        steady_timeout_s: float = STEADY_TIMEOUT_S,
    ) -> float:
        """Start what is not running and wait for steady state; return seconds taken."""
        started = time.monotonic()
        self.check_programs()
        with self.locked():
            self._refuse_other_topology(progress)
            dbtier.ensure_db_user()
            python = dbtier.db_python()
            creds = self.credentials()
            render(self.layout, creds, python, self.db_user)
            launched: list[str] = []
            try:
                for node in self.layout.nodes():
                    if not self.agent_pid(node):
                        self.start_node(node)
                        launched.append(node)
                progress(f"nodes started: {', '.join(launched) or 'none (already up)'}")
                leader = self.wait_for_leader(LEADER_TIMEOUT_S)
                progress(f"database leader: {leader}")
                self.bootstrap_database(leader, creds)
                self.wait_steady(steady_timeout_s)
            except BaseException:
                if launched:
                    progress(f"stopping what this run started: {', '.join(launched)}")
                    for node in reversed(launched):
                        self.stop_node(node)
                raise
        return time.monotonic() - started

    def down(self) -> list[str]:
        """Stop every node; return what was found running."""
        self.refuse_if_running()
        with self.locked():
            stopped = []
            for node in self._known_nodes():
                if self.group(node).pids() or self.agent_pid(node):
                    stopped.append(node)
                self.stop_node(node)
            root_group = (
                self.cgroup_root / "chaoscert" / self.stack_id
                if self.cgroup_root
                else None
            )
            if root_group and root_group.exists():
                with contextlib.suppress(OSError):
                    root_group.rmdir()
            # Nothing is injected into a stack that is not running.
            self.layout.live_faults_file.unlink(missing_ok=True)
            if self.cgroup_root:
                with contextlib.suppress(OSError):
                    (self.cgroup_root / "chaoscert").rmdir()
            return stopped

    def _known_nodes(self) -> list[str]:
        nodes_dir = self.state_dir / "nodes"
        found = (
            {path.name for path in nodes_dir.iterdir()} if nodes_dir.exists() else set()
        )
        return sorted(found | set(self.layout.nodes()))

    def _refuse_other_topology(self, progress: Callable[[str], None]) -> None:
        path = self.layout.topology_file
        if not path.exists():
            return
        try:
            previous = Topology.model_validate_json(path.read_text())
        except ValueError:
            return
        running = [n for n in self._known_nodes() if self.agent_pid(n)]
        if previous != self.topology and running:
            raise ChaoscertError(
                f"a local stack with topology {previous.name!r} is running in"
                f" {self.state_dir}; run `chaoscert local down` before starting"
                f" {self.topology.name!r}"
            )
        if previous != self.topology and (self.state_dir / "nodes").exists():
            # Another layout's data (cluster membership, addresses) cannot be
            # reused: start from empty data directories.
            progress(
                f"topology changed from {previous.name!r} to {self.topology.name!r}:"
                " starting from empty data directories"
            )
            shutil.rmtree(self.state_dir / "nodes")

    def status(self) -> list[NodeStatus]:
        return [self.node_state(node) for node in self.layout.nodes()]

    # -- waits ---------------------------------------------------------------
    def wait_for_leader(self, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._raise_if_node_died()
            view = health.patroni_cluster(self.layout)
            # /cluster may still show the previous run's leader key; only the
            # leader's own /primary answer says it runs and takes writes.
            if view.leader and health.is_primary(self.layout, view.leader):
                return view.leader
            time.sleep(0.5)
        node = self.topology.running("postgres")[0]
        raise ComponentError(
            f"no PostgreSQL leader within {timeout_s:.0f} s",
            component="patroni",
            node=node,
            log=str(self.layout.log_of(node, "patroni")),
        )

    def wait_steady(self, timeout_s: float) -> float:
        """Wait for steady state; return seconds waited, or raise naming what is not."""
        started = time.monotonic()
        deadline = started + timeout_s
        problems: list[str] = []
        while time.monotonic() < deadline:
            self._raise_if_node_died()
            problems = health.steady_state_problems(
                self.layout, self.topology.patroni.synchronous
            )
            if not problems:
                return time.monotonic() - started
            time.sleep(0.5)
        looping = [
            f"{service} on {node} exited {info['restarts']} times"
            f" (last exit code {info['last_exit']})"
            for node, service, info in self.crash_looping()
        ]
        raise ComponentError(
            f"not in steady state after {timeout_s:.0f} s: "
            + "; ".join(looping + problems),
            **self._blame(problems),
        )

    def crash_looping(self) -> list[tuple[str, str, dict[str, object]]]:
        """(node, service, status) of every program its node had to restart twice."""
        found = []
        for node in self.layout.nodes():
            try:
                status = json.loads(self.layout.agent_status_file(node).read_text())
            except (OSError, ValueError):
                continue
            for service, info in status.items():
                if info.get("restarts", 0) >= 2:
                    found.append((node, service, info))
        return found

    def _blame(self, problems: list[str]) -> dict[str, str]:
        """The component, node and log most likely behind the problems.

        A program that keeps exiting is named first: it is the cause, while a
        replica still copying data is only slow.
        """
        for node, service, info in self.crash_looping():
            return {"component": service, "node": node, "log": str(info.get("log"))}
        for problem in problems:
            for node in self.layout.nodes():
                mentioned = f" {node}" in f" {problem}" or (
                    node == EDGE_NODE and "edge" in problem
                )
                if not mentioned:
                    continue
                for component, service in (
                    ("etcd", "etcd"),
                    ("postgres", "patroni"),
                    ("ingress", "haproxy"),
                    ("edge", "haproxy"),
                    ("app", "app"),
                ):
                    if component in problem:
                        return {
                            "component": component,
                            "node": node,
                            "log": str(self.layout.log_of(node, service)),
                        }
        return {}

    def _raise_if_node_died(self) -> None:
        for node in self.layout.nodes():
            if self.agent_pid(node) is None and not self.group(node).frozen():
                raise ComponentError(
                    "the node agent exited",
                    component="agent",
                    node=node,
                    log=str(self.layout.log_of(node, "agent")),
                )

    # -- database bootstrap ------------------------------------------------------
    def bootstrap_database(self, leader: str, creds: Credentials) -> None:
        """Create the app role, its database and the stand-in's schema (idempotent).

        Retried for a bounded time: a leader that just took the lock may still
        be starting, or finishing recovery read-only.
        """
        retrying = Retrying(
            stop=stop_after_delay(BOOTSTRAP_TIMEOUT_S),
            wait=wait_fixed(1.0),
            retry=retry_if_exception_type(psycopg.Error),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    self._bootstrap_once(self.wait_for_leader(LEADER_TIMEOUT_S), creds)
        except psycopg.Error as exc:
            first_line = (str(exc).strip().splitlines() or [""])[0]
            raise ComponentError(
                f"database bootstrap failed for {BOOTSTRAP_TIMEOUT_S:.0f} s:"
                f" {type(exc).__name__}: {first_line}",
                component="postgres",
                node=leader,
                log=str(self.layout.log_of(leader, "patroni")),
            ) from None

    def _bootstrap_once(self, leader: str, creds: Credentials) -> None:
        with psycopg.connect(
            **self.layout.superuser_conninfo(leader, creds.superuser),
            autocommit=True,
        ) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)
            ).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(
                    sql.SQL(verb),
                    sql.Identifier(APP_ROLE),
                    sql.Literal(creds.app),
                )
            )
            database = self.topology.database
            if not conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
            ).fetchone():
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(database), sql.Identifier(APP_ROLE)
                    )
                )
        bootstrap(self.layout.app_conninfo(), "admin", creds.odoo_admin)
