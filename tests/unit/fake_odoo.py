"""A small Odoo look-alike on loopback for the client and probe tests.

It speaks Odoo's JSON-RPC envelope on the routes the probes use and can
misbehave on demand: JSON-RPC errors with HTTP 200, expired sessions, HTTP
errors, connection resets, answers that never come or come late.
"""

from __future__ import annotations

import collections
import json
import secrets
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DB = "chaos"
LOGIN = "probe"
PASSWORD = "pw-Zq8!never-shown"
UID = 2

# What a request may be made to do instead of a plain answer.
MODES = ("ok", "jsonrpc_error", "http_502", "http_404", "not_json", "reset", "hang")


@dataclass
class Seen:
    path: str
    cookie: str | None
    body: dict[str, Any]
    content_type: str | None = None

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.body.get("params") or {})


def _error(code: int, message: str, name: str, detail: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "data": {
            "name": name,
            "message": detail,
            "arguments": [detail],
            "debug": f"Traceback (most recent call last):\n{name}: {detail}\n",
        },
    }


def _server_error(name: str, detail: str) -> dict[str, Any]:
    return _error(200, "Odoo Server Error", name, detail)


def _matches(record: dict[str, Any], domain: list[Any]) -> bool:
    for field, op, value in domain:
        have = record.get(field, False)
        if isinstance(have, list):  # many2one as [id, name]
            have = have[0]
        ok = {
            "=": lambda h, v: h == v,
            "!=": lambda h, v: h != v,
            "in": lambda h, v: h in v,
            ">": lambda h, v: h is not False and h > v,
        }[op](have, value)
        if not ok:
            return False
    return True


class FakeOdoo:
    """Threaded HTTP server on 127.0.0.1:<free port>; use as a context manager.

    ``mode`` applies to every request whose path starts with ``target``;
    ``script`` holds modes used once each, first in first out, before ``mode``.
    """

    def __init__(self) -> None:
        self.mode = "ok"
        self.target = "/"
        self.script: collections.deque[str] = collections.deque()
        self.delay_s = 0.0
        self.accept_sessions = True
        self.rotate_on_call = False
        self.validate_result: Any = True
        self.error_detail = "Nothing to check the availability for."
        self.seen: list[Seen] = []
        self.sessions: set[str] = set()
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._next_id = 100
        self.records: dict[str, dict[int, dict[str, Any]]] = {
            "product.product": {
                1: {
                    "id": 1,
                    "barcode": "4006381333931",
                    "uom_id": [1, "Units"],
                    "type": "product",
                },
                2: {
                    "id": 2,
                    "barcode": "5901234123457",
                    "uom_id": [1, "Units"],
                    "type": "consu",
                },
                3: {
                    "id": 3,
                    "barcode": False,
                    "uom_id": [1, "Units"],
                    "type": "service",
                },
            },
            "stock.picking.type": {
                7: {
                    "id": 7,
                    "code": "outgoing",
                    "default_location_src_id": [8, "WH/Stock"],
                    "default_location_dest_id": [5, "Partners/Customers"],
                },
            },
            "stock.picking": {},
            "res.partner": {
                9: {
                    "id": 9,
                    "is_company": True,
                    "supplier_rank": 1,
                    "customer_rank": 0,
                },
                10: {
                    "id": 10,
                    "is_company": True,
                    "supplier_rank": 0,
                    "customer_rank": 3,
                },
            },
        }
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeOdoo:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def expire_sessions(self) -> None:
        with self._lock:
            self.sessions.clear()

    def calls(self, path_prefix: str) -> list[Seen]:
        with self._lock:
            return [seen for seen in self.seen if seen.path.startswith(path_prefix)]

    def forget(self, model: str, record_id: int) -> None:
        with self._lock:
            del self.records[model][record_id]

    def next_mode(self, path: str) -> str:
        with self._lock:
            if not path.startswith(self.target):
                return "ok"
            return self.script.popleft() if self.script else self.mode

    # --- Odoo's routes -------------------------------------------------

    def authenticate(self, params: dict[str, Any]) -> tuple[Any, str | None]:
        if (params.get("db"), params.get("login"), params.get("password")) != (
            DB,
            LOGIN,
            PASSWORD,
        ):
            name = "odoo.exceptions.AccessDenied"
            return _server_error(name, "Access Denied"), None
        sid = secrets.token_hex(20)
        with self._lock:
            self.sessions.add(sid)
        return {"uid": UID, "db": DB, "username": LOGIN, "session_id": ""}, sid

    def call_kw(self, params: dict[str, Any], cookie: str | None) -> tuple[Any, Any]:
        sid = (cookie or "").removeprefix("session_id=")
        with self._lock:
            known = self.accept_sessions and sid in self.sessions
        if not known:
            error = _error(
                100,
                "Odoo Session Expired",
                "odoo.http.SessionExpiredException",
                "Session expired",
            )
            return error, None
        new_sid = None
        if self.rotate_on_call:
            new_sid = secrets.token_hex(20)
            with self._lock:
                self.sessions.discard(sid)
                self.sessions.add(new_sid)
        result = self.model_call(
            params["model"], params["method"], params["args"], params["kwargs"]
        )
        return result, new_sid

    def jsonrpc(self, params: dict[str, Any]) -> Any:
        service, method, args = params["service"], params["method"], params["args"]
        if (service, method) == ("common", "version"):
            return {
                "server_version": "17.0",
                "server_serie": "17.0",
                "server_version_info": [17, 0, 0, "final", 0, ""],
                "protocol_version": 1,
            }
        if (service, method) == ("common", "login"):
            return UID if tuple(args) == (DB, LOGIN, PASSWORD) else False
        if (service, method) == ("object", "execute_kw"):
            db, uid, password, model, name, call_args, kwargs = args
            if (db, uid, password) != (DB, UID, PASSWORD):
                return _server_error("odoo.exceptions.AccessDenied", "Access Denied")
            return self.model_call(model, name, call_args, kwargs)
        return _server_error("builtins.KeyError", f"{service}.{method}")

    def model_call(
        self, model: str, method: str, args: list[Any], kwargs: dict[str, Any]
    ) -> Any:
        """The few model methods the probes use; an error dict stands for failure."""
        with self._lock:
            table = self.records.setdefault(model, {})
            if method == "search_read":
                domain = args[0] if args else kwargs.get("domain", [])
                rows = [r for r in table.values() if _matches(r, domain)]
                rows = rows[: kwargs.get("limit") or None]
                return [self._fields(r, kwargs.get("fields")) for r in rows]
            if method == "read":
                rows = [table[i] for i in args[0] if i in table]
                return [self._fields(r, kwargs.get("fields")) for r in rows]
            if method == "create":
                self._next_id += 1
                table[self._next_id] = {
                    **args[0],
                    "id": self._next_id,
                    "state": "draft",
                }
                return self._next_id
            picking_states = {
                "action_confirm": "confirmed",
                "action_assign": "assigned",
                "button_validate": "done",
            }
            if method in picking_states:
                for record_id in args[0]:
                    table[record_id]["state"] = picking_states[method]
                return self.validate_result if method == "button_validate" else True
            # purchase.order needs a second approval; action_post answers False.
            states = {"button_confirm": "to approve", "button_approve": "purchase"}
            states["action_post"] = "posted"
            if method in states:
                for record_id in args[0]:
                    table[record_id]["state"] = states[method]
                return method != "action_post"
        return _server_error("builtins.AttributeError", f"{model}.{method}")

    @staticmethod
    def _fields(record: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
        if not fields:
            return dict(record)
        return {"id": record["id"], **{f: record.get(f, False) for f in fields}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        fake: FakeOdoo = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        cookie = self.headers.get("Cookie")
        with fake._lock:
            content_type = self.headers.get("Content-Type")
            fake.seen.append(Seen(self.path, cookie, body, content_type))

        mode = fake.next_mode(self.path)
        if fake.delay_s:
            time.sleep(fake.delay_s)
        if mode == "hang":
            fake.release.wait(60)
            self.close_connection = True
            return
        if mode == "reset":
            # SO_LINGER 0 makes close() send RST instead of FIN.
            linger = struct.pack("ii", 1, 0)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            self.connection.close()
            self.close_connection = True
            return
        if mode == "http_502":
            return self._send(502, b"<html>Bad Gateway</html>", "text/html")
        if mode == "http_404":
            return self._send(404, b"<html>Not Found</html>", "text/html")
        if mode == "not_json":
            return self._send(200, b"<html>Odoo is starting</html>", "text/html")

        params = body.get("params") or {}
        new_sid = None
        if mode == "jsonrpc_error":
            outcome: Any = _server_error("odoo.exceptions.UserError", fake.error_detail)
        elif self.path == "/web/session/authenticate":
            outcome, new_sid = fake.authenticate(params)
        elif self.path.startswith("/web/dataset/call_kw"):
            outcome, new_sid = fake.call_kw(params, cookie)
        elif self.path == "/jsonrpc":
            outcome = fake.jsonrpc(params)
        else:
            return self._send(404, b"<html>Not Found</html>", "text/html")

        is_error = isinstance(outcome, dict) and "code" in outcome and "data" in outcome
        key = "error" if is_error else "result"
        answer = {"jsonrpc": "2.0", "id": body.get("id"), key: outcome}
        cookie_header = (
            f"session_id={new_sid}; Expires=Wed, 01 Jan 2031 00:00:00 GMT;"
            " HttpOnly; Path=/"
            if new_sid
            else None
        )
        self._send(200, json.dumps(answer).encode(), "application/json", cookie_header)

    def _send(
        self, status: int, payload: bytes, content_type: str, cookie: str | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        if cookie:
            self.send_header("Set-Cookie", cookie)
        self.end_headers()
        self.wfile.write(payload)


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
