"""A small HTTP server speaking the Kubernetes API for the calls chaoscert makes.

It keeps nodes, pods, endpoint slices, events, leases and one CloudNativePG
cluster in memory and records every request (method, path, query, headers,
body). It follows the API's contract where chaoscert depends on it: a patch's
Content-Type decides its meaning (a JSON Patch must be a list of operations,
a merge patch is applied by RFC 7386), a resourceVersion in a write must
match or the answer is 409, evictions answer 429 while a budget says no,
missing objects 404. It can also be told to hang. Real sockets on loopback;
the official client talks to it.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

Obj = dict[str, Any]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    content_type: str = ""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@dataclass
class Cluster:
    pods: dict[tuple[str, str], Obj] = field(default_factory=dict)
    nodes: dict[str, Obj] = field(default_factory=dict)
    slices: dict[tuple[str, str], Obj] = field(default_factory=dict)
    events: dict[str, list[Obj]] = field(default_factory=dict)
    leases: dict[tuple[str, str], Obj] = field(default_factory=dict)
    clusters: dict[tuple[str, str], Obj] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    pod_logs: dict[tuple[str, str], str] = field(default_factory=dict)
    evictions_refused: int = 0
    # The API server's own throttling: the next N requests of any kind get 429.
    throttled: int = 0
    patch_conflicts: int = 0
    hang_s: float = 0.0
    patroni_answer: tuple[int, str] = (200, "Successfully switched over")
    # The operator's reaction to a switchover request: move the primary label.
    operator_follows: bool = True
    # Controllers replace a deleted or evicted pod they own, on the same node.
    controllers_replace: bool = False
    replaced: int = 0
    version: int = 100
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_version(self) -> str:
        self.version += 1
        return str(self.version)

    def add_node(
        self,
        name: str,
        taints: list[dict[str, str]] | None = None,
        zone: str | None = None,
        ready: bool = True,
    ) -> None:
        labels = {"topology.kubernetes.io/zone": zone} if zone else {}
        self.nodes[name] = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": labels,
                "resourceVersion": self.next_version(),
            },
            "spec": {"taints": taints or []},
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True" if ready else "Unknown"}
                ]
            },
        }

    def add_pod(
        self,
        namespace: str,
        name: str,
        node: str,
        labels: dict[str, str],
        phase: str = "Running",
        owner: str = "ReplicaSet",
        ready: bool = True,
    ) -> None:
        self.pods[(namespace, name)] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": dict(labels),
                "resourceVersion": self.next_version(),
                "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": owner, "name": "o", "uid": "u"}
                ],
            },
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
            "status": {
                "phase": phase,
                "conditions": [{"type": "Ready", "status": str(ready)}],
            },
        }

    def add_slice(self, namespace: str, service: str, ready: list[bool]) -> None:
        self.slices[(namespace, f"{service}-abc")] = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{service}-abc",
                "namespace": namespace,
                "labels": {"kubernetes.io/service-name": service},
            },
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": [f"10.0.0.{i}"], "conditions": {"ready": r}}
                for i, r in enumerate(ready, 1)
            ],
        }

    def add_event(self, namespace: str, uid: str, reason: str, message: str) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1))
        self.events.setdefault(namespace, []).append(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": uid, "namespace": namespace, "uid": uid},
                "involvedObject": {"kind": "Pod", "name": "odoo-a"},
                "reason": reason,
                "message": message,
                "count": 1,
                "lastTimestamp": now,
            }
        )

    def add_cnpg(self, namespace: str, name: str, primary: str) -> None:
        self.clusters[(namespace, name)] = {
            "apiVersion": "postgresql.cnpg.io/v1",
            "kind": "Cluster",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "resourceVersion": self.next_version(),
            },
            "spec": {"instances": 3},
            "status": {"currentPrimary": primary, "targetPrimary": primary},
        }

    def seen(self, method: str, under: str = "") -> list[Request]:
        return [
            r for r in self.requests if r.method == method and r.path.startswith(under)
        ]

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method != "GET"]

    def remove_pod(self, key: tuple[str, str]) -> Obj:
        pod = self.pods.pop(key)
        owners = pod["metadata"].get("ownerReferences") or [{}]
        if self.controllers_replace and owners[0].get("kind") != "DaemonSet":
            self.replaced += 1
            replacement = copy.deepcopy(pod)
            replacement["metadata"]["name"] = f"{key[1]}-r{self.replaced}"
            replacement["metadata"]["resourceVersion"] = self.next_version()
            self.pods[(key[0], replacement["metadata"]["name"])] = replacement
        return pod

    def set_role(self, namespace: str, pod: str, label: str, role: str) -> None:
        self.pods[(namespace, pod)]["metadata"]["labels"][label] = role


def _matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


def _list(kind: str, items: list[Obj]) -> Obj:
    return {
        "kind": kind,
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "1"},
        "items": items,
    }


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

    def _text(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, code: int, reason: str, message: str = "") -> None:
        self._send(
            code,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": reason,
                "message": message or reason,
                "code": code,
            },
        )

    def _handle(self, method: str) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        body = self._body()
        content_type = self.headers.get("Content-Type", "")
        cluster = self.cluster
        path = unquote(url.path)
        cluster.requests.append(Request(method, path, query, body, content_type))
        if cluster.hang_s:
            time.sleep(cluster.hang_s)
        parts = path.strip("/").split("/")
        if cluster.throttled > 0:
            cluster.throttled -= 1
            self._status(429, "TooManyRequests", "too many requests, retry later")
            return
        with cluster.lock:
            self._route(method, parts, query, body, content_type)

    def _route(
        self, method: str, parts: list[str], query: dict, body: Any, ctype: str
    ) -> None:
        cluster = self.cluster
        if method == "PATCH" and not self._patch_ok(body, ctype):
            return
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) >= 5:
            ns, kind, rest = parts[3], parts[4], parts[5:]
            if kind == "pods":
                self._pods(method, ns, rest, query, body)
            elif kind == "events":
                self._send(200, _list("EventList", cluster.events.get(ns, [])))
            else:
                self._status(404, "NotFound")
        elif parts == ["api", "v1", "pods"]:
            node = query.get("fieldSelector", [""])[0].removeprefix("spec.nodeName=")
            items = [p for p in cluster.pods.values() if p["spec"]["nodeName"] == node]
            self._send(200, _list("PodList", items))
        elif parts[:3] == ["api", "v1", "nodes"]:
            self._nodes(method, parts[3] if len(parts) > 3 else None, query, body)
        elif parts[:2] == ["apis", "discovery.k8s.io"]:
            ns = parts[4]
            items = [s for (sns, _), s in cluster.slices.items() if sns == ns]
            self._send(200, _list("EndpointSliceList", items))
        elif parts[:2] == ["apis", "coordination.k8s.io"]:
            self._leases(method, parts[4], parts[6] if len(parts) > 6 else None, body)
        elif parts == ["web", "health"]:
            self._send(200, {"status": "pass"})
        elif parts[:2] == ["apis", "postgresql.cnpg.io"]:
            self._cnpg(method, parts[4], parts[6], parts[7:], body)
        else:
            self._status(404, "NotFound")

    def _patch_ok(self, body: Any, ctype: str) -> bool:
        """A real API server reads a dict sent as JSON Patch as a bad request."""
        if ctype.startswith("application/json-patch+json") and not isinstance(
            body, list
        ):
            self._status(400, "BadRequest", "json patch must be a list of operations")
            return False
        if ctype.startswith("application/merge-patch+json"):
            return True
        if ctype.startswith("application/strategic-merge-patch+json"):
            return True
        self._status(415, "UnsupportedMediaType", ctype)
        return False

    def _apply_patch(self, obj: Obj, body: Obj) -> bool:
        """Apply a merge patch; a stale resourceVersion answers 409."""
        cluster = self.cluster
        if cluster.patch_conflicts > 0:
            cluster.patch_conflicts -= 1
            self._status(409, "Conflict", "the object has been modified")
            return False
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != obj["metadata"]["resourceVersion"]:
            self._status(409, "Conflict", "the object has been modified")
            return False
        merged = merge_patch(obj, body)
        obj.clear()
        obj.update(merged)
        obj["metadata"]["resourceVersion"] = cluster.next_version()
        return True

    def _pods(
        self, method: str, ns: str, rest: list[str], query: dict, body: Any
    ) -> None:
        cluster = self.cluster
        if not rest:
            selector = query.get("labelSelector", [""])[0]
            items = [
                p
                for (pns, _), p in cluster.pods.items()
                if pns == ns and _matches(p["metadata"]["labels"], selector)
            ]
            self._send(200, _list("PodList", items))
            return
        name, _, port = rest[0].partition(":")
        key = (ns, name)
        if key not in cluster.pods:
            self._status(404, "NotFound")
            return
        if rest[1:2] == ["proxy"] and method == "POST":
            self._patroni(ns, name, port, rest[2:], body)
        elif rest[1:] == ["eviction"] and method == "POST":
            if cluster.evictions_refused > 0:
                cluster.evictions_refused -= 1
                self._status(429, "TooManyRequests", "Cannot evict pod")
                return
            cluster.remove_pod(key)
            self._send(201, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
        elif rest[1:] == ["log"] and method == "GET":
            self._text(200, cluster.pod_logs.get(key, ""))
        elif method == "DELETE":
            self._send(200, cluster.remove_pod(key))
        else:
            self._send(200, cluster.pods[key])

    def _patroni(
        self, ns: str, pod: str, port: str, path: list[str], body: Any
    ) -> None:
        cluster = self.cluster
        status, text = cluster.patroni_answer
        if port != "8008" or path != ["switchover"]:
            self._status(404, "NotFound")
            return
        if status == 200 and cluster.operator_follows:
            cluster.set_role(ns, body["leader"], "spilo-role", "replica")
            cluster.set_role(ns, body["candidate"], "spilo-role", "master")
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _nodes(self, method: str, name: str | None, query: dict, body: Any) -> None:
        cluster = self.cluster
        if name is None:
            selector = query.get("labelSelector", [""])[0]
            items = [
                n
                for n in cluster.nodes.values()
                if _matches(n["metadata"]["labels"], selector)
            ]
            self._send(200, _list("NodeList", items))
            return
        if name not in cluster.nodes:
            self._status(404, "NotFound")
            return
        if method == "PATCH" and not self._apply_patch(cluster.nodes[name], body):
            return
        self._send(200, cluster.nodes[name])

    def _leases(self, method: str, ns: str, name: str | None, body: Any) -> None:
        cluster = self.cluster
        if method == "POST":
            key = (ns, body["metadata"]["name"])
            if key in cluster.leases:
                self._status(409, "AlreadyExists")
                return
            body["metadata"]["resourceVersion"] = cluster.next_version()
            cluster.leases[key] = body
            self._send(201, body)
            return
        key = (ns, name or "")
        if key not in cluster.leases:
            self._status(404, "NotFound")
            return
        lease = cluster.leases[key]
        if method == "PUT":
            wanted = body["metadata"].get("resourceVersion")
            if wanted != lease["metadata"]["resourceVersion"]:
                self._status(409, "Conflict")
                return
            body["metadata"]["resourceVersion"] = cluster.next_version()
            cluster.leases[key] = body
            self._send(200, body)
        elif method == "DELETE":
            self._send(200, cluster.leases.pop(key))
        else:
            self._send(200, lease)

    def _cnpg(
        self, method: str, ns: str, name: str, rest: list[str], body: Any
    ) -> None:
        cluster = self.cluster
        key = (ns, name)
        if key not in cluster.clusters:
            self._status(404, "NotFound")
            return
        obj = cluster.clusters[key]
        if method == "PATCH":
            if rest != ["status"]:
                self._status(405, "MethodNotAllowed")
                return
            if not self._apply_patch(obj, body):
                return
            target = obj["status"].get("targetPrimary")
            current = obj["status"].get("currentPrimary")
            if cluster.operator_follows and target and target != current:
                cluster.set_role(ns, current, "cnpg.io/instanceRole", "replica")
                cluster.set_role(ns, target, "cnpg.io/instanceRole", "primary")
                obj["status"]["currentPrimary"] = target
        self._send(200, obj)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


def serve(cluster: Cluster) -> tuple[ThreadingHTTPServer, str]:
    handler = type("BoundHandler", (Handler,), {"cluster": cluster})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
