"""A small HTTP server speaking the Kubernetes API for the calls chaoscert makes.

It keeps pods and nodes in memory, records every request (method, path,
query, body), and can be told to answer 429 to evictions or 409 to patches,
or to hang. Real sockets on loopback; the official client talks to it.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


@dataclass
class Cluster:
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    evictions_refused: int = 0
    patch_conflicts: int = 0
    hang_s: float = 0.0

    def add_pod(
        self,
        namespace: str,
        name: str,
        node: str,
        labels: dict[str, str],
        phase: str = "Running",
        owner: str = "ReplicaSet",
    ) -> None:
        self.pods[(namespace, name)] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": labels,
                "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": owner, "name": "o", "uid": "u"}
                ],
            },
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": phase},
        }

    def add_node(self, name: str, taints: list[dict[str, str]] | None = None) -> None:
        self.nodes[name] = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {}},
            "spec": {"taints": taints or []},
        }

    def seen(self, method: str) -> list[Request]:
        return [r for r in self.requests if r.method == method]


def _matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class Handler(BaseHTTPRequestHandler):
    cluster: Cluster

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else None

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, code: int, reason: str) -> None:
        self._send(
            code,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": reason,
                "code": code,
            },
        )

    def _handle(self, method: str) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        body = self._body()
        cluster = self.cluster
        cluster.requests.append(Request(method, url.path, query, body))
        if cluster.hang_s:
            time.sleep(cluster.hang_s)
        parts = url.path.strip("/").split("/")
        # /api/v1/namespaces/{ns}/pods[/{name}[/eviction]]
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) >= 5:
            self._pods(method, parts[3], parts[5:] if len(parts) > 5 else [], query)
        elif parts == ["api", "v1", "pods"]:
            node = query.get("fieldSelector", [""])[0].removeprefix("spec.nodeName=")
            items = [p for p in cluster.pods.values() if p["spec"]["nodeName"] == node]
            self._send(200, {"kind": "PodList", "apiVersion": "v1", "items": items})
        elif parts[:3] == ["api", "v1", "nodes"]:
            self._nodes(method, parts[3] if len(parts) > 3 else None, body)
        else:
            self._status(404, "NotFound")

    def _pods(self, method: str, ns: str, rest: list[str], query: dict) -> None:
        cluster = self.cluster
        if not rest:
            selector = query.get("labelSelector", [""])[0]
            items = [
                p
                for (pns, _), p in cluster.pods.items()
                if pns == ns and _matches(p["metadata"]["labels"], selector)
            ]
            self._send(200, {"kind": "PodList", "apiVersion": "v1", "items": items})
            return
        key = (ns, rest[0])
        if key not in cluster.pods:
            self._status(404, "NotFound")
            return
        if rest[1:] == ["eviction"] and method == "POST":
            if cluster.evictions_refused > 0:
                cluster.evictions_refused -= 1
                self._status(429, "TooManyRequests")
                return
            cluster.pods.pop(key)
            self._send(201, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
        elif method == "DELETE":
            self._send(200, cluster.pods.pop(key))
        else:
            self._send(200, cluster.pods[key])

    def _nodes(self, method: str, name: str | None, body: Any) -> None:
        cluster = self.cluster
        if name is None:
            items = list(cluster.nodes.values())
            self._send(200, {"kind": "NodeList", "apiVersion": "v1", "items": items})
            return
        if name not in cluster.nodes:
            self._status(404, "NotFound")
            return
        if method == "PATCH":
            if cluster.patch_conflicts > 0:
                cluster.patch_conflicts -= 1
                self._status(409, "Conflict")
                return
            cluster.nodes[name]["spec"].update(body.get("spec", {}))
        self._send(200, cluster.nodes[name])

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


def serve(cluster: Cluster) -> tuple[ThreadingHTTPServer, str]:
    handler = type("BoundHandler", (Handler,), {"cluster": cluster})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
