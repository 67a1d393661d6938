"""Read the local stack's state from its components' own interfaces.

Patroni's REST API, etcd's health endpoint and HAProxy's stats socket; each
call is bounded as a whole (an answer dripping in byte by byte included) and
failures become text in a report, never exceptions.
"""

from __future__ import annotations

import csv
import io
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from chaoscert.platforms import http
from chaoscert.platforms.local.layout import EDGE_NODE, Layout

TIMEOUT_S = 1.5


@dataclass
class ClusterView:
    """Patroni's view of the database cluster, from the first node that answered."""

    leader: str | None = None
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str | None = None

    def role_of(self, node: str) -> str:
        return str(self.members.get(node, {}).get("role", "absent"))

    def state_of(self, node: str) -> str:
        return str(self.members.get(node, {}).get("state", "absent"))


def patroni_cluster(layout: Layout, nodes: list[str] | None = None) -> ClusterView:
    for node in nodes or layout.topology.running("postgres"):
        try:
            data = http.get(layout.patroni_url(node) + "/cluster", TIMEOUT_S).json()
        except (httpx.HTTPError, ValueError):
            continue
        members = data.get("members") if isinstance(data, dict) else None
        if not isinstance(members, list):
            continue  # not Patroni's answer: some other program on its port
        view = ClusterView(source=node)
        for member in members:
            if not isinstance(member, dict) or not isinstance(member.get("name"), str):
                continue
            view.members[member["name"]] = member
            if member.get("role") in ("leader", "master", "primary"):
                view.leader = member["name"]
        return view
    return ClusterView()


def is_primary(layout: Layout, node: str) -> bool:
    """Patroni on `node` says it runs the primary and holds the leader lock."""
    try:
        response = http.get(layout.patroni_url(node) + "/primary", TIMEOUT_S)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def etcd_healthy(layout: Layout, node: str) -> bool:
    try:
        data = http.get(layout.etcd_url(node) + "/health", TIMEOUT_S).json()
    except (httpx.HTTPError, ValueError):
        return False
    return isinstance(data, dict) and data.get("health") in ("true", True)


def haproxy_servers(sock_path: Path) -> dict[str, str] | None:
    """Status (UP, DOWN, ...) of each backend server, or None if HAProxy is silent
    or has not said everything within TIMEOUT_S."""
    deadline = time.monotonic() + TIMEOUT_S
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(TIMEOUT_S)
            sock.connect(str(sock_path))
            sock.sendall(b"show stat\n")
            chunks = []
            while True:
                # The socket's timeout bounds each read; this bounds them all.
                left_s = deadline - time.monotonic()
                if left_s <= 0:
                    return None
                sock.settimeout(left_s)
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except OSError:
        return None
    text = b"".join(chunks).decode(errors="replace").lstrip("# ")
    servers = {}
    for row in csv.DictReader(io.StringIO(text)):
        if row.get("svname") not in ("FRONTEND", "BACKEND", None):
            servers[row["svname"]] = row.get("status", "")
    return servers


def edge_answers(layout: Layout) -> str | None:
    """None when the edge routes /web/health to an app; else what went wrong."""
    try:
        response = http.get(layout.base_url + "/web/health", TIMEOUT_S * 2)
    except httpx.HTTPError as exc:
        return f"edge {layout.base_url} did not answer: {type(exc).__name__}"
    if response.status_code != 200:
        return f"edge {layout.base_url} answered HTTP {response.status_code}"
    return None


def steady_state_problems(layout: Layout, expect_sync: bool) -> list[str]:
    """Everything that keeps the stack from steady state; empty when steady."""
    problems = [
        f"etcd on {node} is not healthy"
        for node in layout.topology.running("etcd")
        if not etcd_healthy(layout, node)
    ]
    problems += database_problems(layout, expect_sync)
    for node in layout.topology.running("ingress"):
        problems += routing_problems(layout, node, f"ingress on {node}", "app")
    problems += routing_problems(layout, EDGE_NODE, "the edge", "ingress")
    edge = edge_answers(layout)
    if edge:
        problems.append(edge)
    return problems


def database_problems(layout: Layout, expect_sync: bool) -> list[str]:
    """A leader running, every other member streaming, a synchronous standby."""
    view = patroni_cluster(layout)
    if view.source is None:
        return ["no Patroni REST API answered"]
    if view.leader is None:
        return ["the database cluster has no leader"]
    problems = []
    db_nodes = layout.topology.running("postgres")
    for node in db_nodes:
        state = view.state_of(node)
        if node == view.leader and state != "running":
            problems.append(f"leader postgres on {node} is {state}")
        elif node != view.leader and state != "streaming":
            problems.append(f"postgres on {node} is {state}, not streaming")
    has_sync = any(
        view.role_of(node) in ("sync_standby", "quorum_standby") for node in db_nodes
    )
    if expect_sync and len(db_nodes) > 1 and not has_sync:
        problems.append("postgres has no synchronous standby")
    return problems


def routing_problems(layout: Layout, node: str, who: str, servers_of: str) -> list[str]:
    servers = haproxy_servers(layout.haproxy_socket(node))
    if servers is None:
        return [f"{who} does not answer on its stats socket"]
    down = sorted(name for name, status in servers.items() if status != "UP")
    if down:
        return [f"{who} sees {servers_of} {', '.join(down)} not up"]
    return []
