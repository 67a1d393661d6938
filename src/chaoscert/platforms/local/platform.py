"""The embedded local stack as a Platform: faults act on its nodes' processes."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from chaoscert.errors import ChaoscertError, FaultError
from chaoscert.platforms.base import Endpoint, FaultHandle, FaultRegistry, Platform
from chaoscert.platforms.local import health
from chaoscert.platforms.local.layout import EDGE_NODE, default_state_dir
from chaoscert.platforms.local.stack import LocalStack
from chaoscert.topology import load_topology

log = logging.getLogger("chaoscert.local")

FREEZE_TIMEOUT_S = 10.0


class LocalPlatform(Platform):
    """Faults on the local stack: hang freezes a node, crash kills it."""

    name = "local"

    def __init__(self, topology: Path, state_dir: Path | None = None):
        super().__init__()
        self.stack = LocalStack(
            load_topology(topology), state_dir or default_state_dir()
        )
        self.registry = FaultRegistry(self.stack.state_dir / "live-faults.json")
        self._last_leader: str | None = None
        self._last_servers: dict[str, dict[str, str]] = {}

    @property
    def layout(self) -> Any:
        return self.stack.layout

    def endpoint(self) -> Endpoint:
        creds = self.stack.credentials()
        return Endpoint(
            base_url=self.layout.base_url,
            database=self.stack.topology.database,
            login="admin",
            password=creds.odoo_admin,
        )

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

    def inject(self, kind: str, target: str) -> FaultHandle:
        if kind in ("database_primary_hang", "database_primary_crash"):
            node = self.database_primary()
            mode = kind.rsplit("_", 1)[1]
            handle = self._node_fault(kind, node, mode)
            handle.details["role"] = "database primary"
            return handle
        if kind in ("node_hang", "node_crash"):
            if target not in self.nodes():
                raise FaultError(
                    f"no node {target!r} in topology {self.stack.topology.name}"
                    f" (nodes: {', '.join(self.nodes())})"
                )
            return self._node_fault(kind, target, kind.rsplit("_", 1)[1])
        raise FaultError(f"the local platform cannot inject {kind!r}")

    def _node_fault(self, kind: str, node: str, mode: str) -> FaultHandle:
        group = self.stack.group(node)
        details: dict[str, Any] = {
            "node": node,
            "zone": self.layout.zone_of(node),
            "address": self.layout.address_of(node),
            "mechanism": group.mechanism,
            "processes": len(group.pids()),
        }
        if mode == "hang":
            handle = FaultHandle(
                kind, node, lambda: group.thaw(FREEZE_TIMEOUT_S), details
            )
            self.registry.add(handle)
            group.freeze(FREEZE_TIMEOUT_S)
            self.event(
                "fault", f"node {node} frozen ({details['processes']} processes)"
            )
        else:
            handle = FaultHandle(
                kind, node, lambda: self.stack.start_node(node), details
            )
            self.registry.add(handle)
            group.kill(FREEZE_TIMEOUT_S)
            self.event(
                "fault", f"node {node} killed ({details['processes']} processes)"
            )
        return handle

    def heal_leftovers(self) -> list[str]:
        record = self.registry.record
        if record is None or not record.exists():
            return []
        try:
            entries = json.loads(record.read_text())
        except (OSError, ValueError):
            entries = []
        healed = []
        for entry in entries:
            node = str(entry.get("target", ""))
            if node not in self.nodes():
                continue
            group = self.stack.group(node)
            if group.frozen():
                group.thaw(FREEZE_TIMEOUT_S)
            elif not self.stack.agent_pid(node):
                self.stack.start_node(node)
            healed.append(
                f"{entry.get('kind')} on {node} (injected {entry.get('injected_at')})"
            )
        record.unlink(missing_ok=True)
        return healed

    def observe(self) -> None:
        view = health.patroni_cluster(
            self.layout,
            [n for n in self.stack.topology.running("postgres") if not self._frozen(n)],
        )
        if view.leader and view.leader != self._last_leader:
            if self._last_leader is not None:
                self.event(
                    "patroni",
                    f"leader changed from {self._last_leader} to {view.leader}",
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

    def _frozen(self, node: str) -> bool:
        return self.stack.group(node).frozen()

    def describe(self) -> dict[str, Any]:
        topology = self.stack.topology
        return {
            "platform": self.name,
            "topology": topology.name,
            "topology_description": topology.description,
            "state_dir": str(self.stack.state_dir),
            "edge": self.layout.base_url,
            "cgroups": self.stack.group(EDGE_NODE).mechanism,
            "zones": {
                zone.name: [n.name for n in zone.nodes] for zone in topology.zones
            },
            "patroni": topology.patroni.model_dump(),
            "app": topology.app.model_dump(),
            "ingress": topology.ingress.model_dump(),
        }

    def secrets(self) -> list[str]:
        return self.stack.credentials().values()


def _settled(status: str | None) -> str:
    return (status or "").split(" ", 1)[0]
