"""The embedded local stack as a Platform: faults act on its nodes' processes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from pydantic import SecretStr

from chaoscert.errors import ChaoscertError, FaultError
from chaoscert.platforms.base import (
    Endpoint,
    FaultHandle,
    FaultRegistry,
    Platform,
    heal_leftovers_with,
)
from chaoscert.platforms.local import health
from chaoscert.platforms.local.faults import (
    UNDO,
    Undo,
    freeze_nodes,
    kill_nodes,
    kill_service,
    service_pid,
    stop_processes,
    switchover,
    undo_all,
    walsender_pids,
)
from chaoscert.platforms.local.layout import EDGE_NODE, Layout, default_state_dir
from chaoscert.platforms.local.stack import LocalStack
from chaoscert.platforms.logs import LogText, excerpts_since, file_marks
from chaoscert.topology import Service, load_topology

Act = Callable[[list[Undo]], None]

log = logging.getLogger("chaoscert.local")


class LocalPlatform(Platform):
    """Faults on the local stack: hang freezes a node, crash kills it."""

    name = "local"

    def __init__(self, topology: Path, state_dir: Path | None = None):
        super().__init__()
        self.stack = LocalStack(
            load_topology(topology), state_dir or default_state_dir()
        )
        self.registry = FaultRegistry(self.stack.layout.live_faults_file)
        self._last_leader: str | None = None
        self._last_servers: dict[str, dict[str, str]] = {}

    @property
    def layout(self) -> Layout:
        return self.stack.layout

    def endpoint(self) -> Endpoint:
        creds = self.stack.credentials()
        return Endpoint(
            base_url=self.layout.base_url,
            database=self.stack.topology.database,
            login="admin",
            password=SecretStr(creds.odoo_admin),
        )

    def acquire(self) -> None:
        self.stack.acquire_run()

    def release(self) -> None:
        self.stack.release_run()

    def ensure_up(self) -> None:
        self.stack.up()

    def wait_steady(self, timeout_s: float) -> float:
        return self.stack.wait_steady(timeout_s)

    def database_primary(self) -> str:
        view = health.patroni_cluster(self.layout)
        if view.leader is None:
            raise ChaoscertError("the database cluster has no leader to target")
        return view.leader

    def nodes(self) -> list[str]:
        return [spec.name for spec in self.stack.topology.nodes()]

    # -- targets -------------------------------------------------------------
    def resolve_node(self, target: str) -> str:
        """A node by name, or by role: "primary" or "replica" (Postgres), or
        "app" (an application node, one without a database if there is one)."""
        if target in ("", "primary"):
            return self.database_primary()
        if target == "replica":
            leader = self.database_primary()
            replicas = [
                n for n in self.stack.topology.running("postgres") if n != leader
            ]
            if not replicas:
                raise FaultError("no node holds only a Postgres replica")
            return sorted(replicas)[0]
        if target == "app":
            apps = [n for n in self.stack.topology.running("app")]
            plain = [
                n for n in apps if n not in self.stack.topology.running("postgres")
            ]
            return (plain or apps)[0]
        if target not in self.nodes():
            raise FaultError(
                f"no node {target!r} in topology {self.stack.topology.name}"
                f" (nodes: {', '.join(self.nodes())})"
            )
        return target

    def resolve_zone(self, target: str) -> str:
        """A zone by name, or "primary": the zone of the Postgres primary."""
        zones = [zone.name for zone in self.stack.topology.zones]
        if target in ("", "primary"):
            return self.layout.zone_of(self.database_primary())
        if target not in zones:
            raise FaultError(f"no zone {target!r} (zones: {', '.join(zones)})")
        return target

    def nodes_of_zone(self, zone: str) -> list[str]:
        return [n for n in self.nodes() if self.layout.zone_of(n) == zone]

    def resolve_service_node(self, service: Service, target: str) -> str:
        running = self.stack.topology.running(service)
        if target in ("", "any"):
            return running[0]
        node = self.resolve_node(target)
        if node not in running:
            raise FaultError(f"node {node} runs no {service} replica")
        return node

    def etcd_members_to_lose(self, count: int) -> list[str]:
        """`count` etcd members, avoiding the node of the Postgres primary."""
        members = self.stack.topology.running("etcd")
        if count >= len(members):
            raise FaultError(f"cannot lose {count} of {len(members)} etcd members")
        primary = self.database_primary()
        return sorted(members, key=lambda node: (node == primary, node))[:count]

    # -- faults ---------------------------------------------------------------
    def inject(self, kind: str, target: str) -> FaultHandle:
        """Inject `kind`; `target` names a node, zone or role (see resolve_*)."""
        if kind not in self.FAULTS:
            raise FaultError(
                f"the local platform cannot inject {kind!r}"
                f" (known: {', '.join(sorted(self.FAULTS))})"
            )
        what, act = self.FAULTS[kind](self, target)
        return self.run_fault(
            kind, what, act, lambda steps: undo_all(self.stack, steps)
        )

    def plan(self, kind: str, target: str) -> str:
        if kind not in self.FAULTS:
            raise FaultError(f"the local platform cannot inject {kind!r}")
        what, _ = self.FAULTS[kind](self, target)
        return what

    def _node_fault(self, target: str, mode: str) -> tuple[str, Act]:
        node = self.resolve_node(target)
        what = f"node {node}{self._role_text(node)}"
        act = freeze_nodes if mode == "hang" else kill_nodes
        return what, lambda undo: act(self.stack, [node], undo)

    def _zone_fault(self, target: str, mode: str) -> tuple[str, Act]:
        zone = self.resolve_zone(target)
        nodes = self.nodes_of_zone(zone)
        act = freeze_nodes if mode == "hang" else kill_nodes
        return f"zone {zone} ({', '.join(nodes)})", lambda undo: act(
            self.stack, nodes, undo
        )

    def _role_text(self, node: str) -> str:
        role = health.patroni_cluster(self.layout).role_of(node)
        return "" if role == "absent" else f" (Postgres {role.replace('_', ' ')})"

    def _switchover(self, target: str) -> tuple[str, Act]:
        leader = self.database_primary()
        view = health.patroni_cluster(self.layout)
        ranked = sorted(
            (n for n in view.members if n != leader),
            key=lambda n: (not view.role_of(n).endswith("_standby"), n),
        )
        if not ranked:
            raise FaultError("no replica to switch over to")
        candidate = target if target not in ("", "replica") else ranked[0]

        def act(undo: list[Undo]) -> None:
            took_s = switchover(self.stack, leader, candidate)
            self.event(
                "patroni", f"switchover from {leader} to {candidate}: {took_s:.1f} s"
            )

        return f"primary {leader} to {candidate}", act

    def _kill(self, service: Service, target: str) -> tuple[str, Act]:
        node = self.resolve_service_node(service, target)
        return f"{service} replica on {node}", lambda undo: kill_service(
            self.stack, node, service, undo
        )

    def _etcd_loss(self, count: int) -> tuple[str, Act]:
        members = self.etcd_members_to_lose(count)

        def act(undo: list[Undo]) -> None:
            pids = [service_pid(self.stack, node, "etcd") for node in members]
            running = [pid for pid in pids if pid is not None]
            if len(running) != len(members):
                raise FaultError(f"etcd is not running on every one of {members}")
            stop_processes(running, undo)

        return f"etcd on {', '.join(members)}", act

    def _replication_stall(self) -> tuple[str, Act]:
        leader = self.database_primary()

        def act(undo: list[Undo]) -> None:
            pids = walsender_pids(self.stack, leader)
            if not pids:
                raise FaultError(f"no WAL sender found on the primary {leader}")
            stop_processes(pids, undo)

        return f"WAL senders of the primary on {leader}", act

    FAULTS: ClassVar[dict[str, Callable[[LocalPlatform, str], tuple[str, Act]]]] = {
        "node_hang": lambda p, t: p._node_fault(t, "hang"),
        "node_crash": lambda p, t: p._node_fault(t, "crash"),
        "database_primary_hang": lambda p, t: p._node_fault("primary", "hang"),
        "database_primary_crash": lambda p, t: p._node_fault("primary", "crash"),
        "zone_hang": lambda p, t: p._zone_fault(t, "hang"),
        "zone_crash": lambda p, t: p._zone_fault(t, "crash"),
        "database_switchover": lambda p, t: p._switchover(t),
        "ingress_replica_kill": lambda p, t: p._kill("ingress", t),
        "app_replica_kill": lambda p, t: p._kill("app", t),
        "dcs_member_loss": lambda p, t: p._etcd_loss(1),
        "dcs_quorum_loss": lambda p, t: p._etcd_loss(2),
        "replication_stall": lambda p, t: p._replication_stall(),
    }

    def heal_leftovers(self) -> list[str]:
        """Replay the undo steps of faults a killed run left in the record."""
        return heal_leftovers_with(
            self.registry.record,
            lambda steps: undo_all(
                self.stack, [s for s in steps if s.get("op") in UNDO]
            ),
        )

    def observe(self) -> None:
        view = health.patroni_cluster(
            self.layout,
            [n for n in self.stack.topology.running("postgres") if not self._frozen(n)],
        )
        if view.leader and view.leader != self._last_leader:
            if self._last_leader is not None:
                self.event(
                    "patroni",
                    f"leader changed from {self._last_leader} to {view.leader}"
                    " (when a poll saw it; it happened up to one poll earlier)",
                )
            self._last_leader = view.leader
        for node in [*self.stack.topology.running("ingress"), EDGE_NODE]:
            if self._frozen(node):
                continue
            servers = health.haproxy_servers(self.layout.haproxy_socket(node)) or {}
            before = self._last_servers.get(node, {})
            for server, status in servers.items():
                # "UP 1/2" and the like are checks in progress, not a change.
                if before and _settled(before.get(server)) != _settled(status):
                    who = "edge" if node == EDGE_NODE else f"ingress {node}"
                    self.event("haproxy", f"{who} marks {server} {_settled(status)}")
            if servers:
                self._last_servers[node] = servers

    def _log_files(self) -> list[tuple[str, Path]]:
        nodes = [n.name for n in self.stack.topology.nodes()] + [EDGE_NODE]
        files = []
        for node in nodes:
            for path in sorted(self.layout.log_dir(node).glob("*.log")):
                files.append((f"{path.stem} on {node}", path))
        return files

    def log_marks(self) -> dict[str, int]:
        return file_marks(path for _, path in self._log_files())

    def component_logs(self, marks: dict[str, int]) -> list[LogText]:
        return excerpts_since(marks, self._log_files())

    def _frozen(self, node: str) -> bool:
        return self.stack.group(node).frozen()

    def describe(self) -> dict[str, Any]:
        topology = self.stack.topology
        return {
            "platform": self.name,
            "note": (
                "the embedded local stack: an Odoo stand-in (not Odoo itself) over"
                " PostgreSQL 15 under Patroni, etcd and HAProxy, all on one machine"
                f" over loopback; topology {topology.name}: {topology.description}"
            ),
            "topology": topology.name,
            "topology_description": topology.description,
            "state_dir": str(self.stack.state_dir),
            "edge": self.layout.base_url,
            "cgroups": self.stack.group(EDGE_NODE).mechanism,
            "zones": {
                zone.name: [n.name for n in zone.nodes] for zone in topology.zones
            },
            "replicas": {
                service: len(topology.running(service))
                for service in ("etcd", "postgres", "app", "ingress")
            },
            "patroni": topology.patroni.model_dump(),
            "app": topology.app.model_dump(),
            "ingress": topology.ingress.model_dump(),
        }

    def secrets(self) -> list[str]:
        return self.stack.credentials().values()


def _settled(status: str | None) -> str:
    return (status or "").split(" ", 1)[0]
