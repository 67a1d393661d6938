"""Async client for Odoo's JSON-RPC surface (web session and external API).

Every foreign error is mapped here, once: a JSON-RPC error (sent with HTTP 200)
becomes :class:`OdooError` or :class:`SessionExpired`; everything that kept an
Odoo answer from arriving becomes :class:`TransportError` with a ``kind``:
``timeout``, ``connect``, ``reset``, ``http_5xx``, ``http_<code>``,
``bad_response`` or ``transport``.

Session cookie: the client keeps its own ``session_id`` and sets the
``Cookie`` header of each request itself, replacing whatever the shared
``httpx`` cookie jar would add. Several clients (one per workflow, or several
users) can then share one ``httpx.AsyncClient`` without sending each other's
session: with real Odoo 17 that would even log the other user out, because
authenticating rotates the session that the request carried.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import Any

import httpx
from pydantic import SecretStr

from chaoscert.errors import OdooError, SessionExpired, TransportError

log = logging.getLogger(__name__)

SESSION_COOKIE = "session_id"
SESSION_EXPIRED_NAME = "odoo.http.SessionExpiredException"
ACCESS_DENIED_NAME = "odoo.exceptions.AccessDenied"
MAX_MESSAGE_CHARS = 300


class OdooClient:
    """One Odoo user on one database, over a caller-provided ``httpx`` client.

    ``timeout_s`` bounds every request as a whole (connect, send, wait, read);
    each call may pass its own. The caller owns ``http`` and closes it.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        db: str,
        login: str,
        password: str | SecretStr,
        *,
        timeout_s: float = 10.0,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.base_url = base_url.rstrip("/")
        self.db = db
        self.login = login
        self.timeout_s = timeout_s
        self._http = http
        # A SecretStr argument keeps the value out of tracebacks' frame arguments.
        self._password = (
            password if isinstance(password, SecretStr) else SecretStr(password)
        )
        self._ids = itertools.count(1)
        self._session_id: str | None = None
        self._session_generation = 0
        self._session_lock = asyncio.Lock()
        self._uid: int | None = None
        self._exchanges: set[asyncio.Future[httpx.Response]] = set()

    def __repr__(self) -> str:
        return (
            f"OdooClient(base_url={self.base_url!r}, db={self.db!r},"
            f" login={self.login!r}, authenticated={self._session_id is not None})"
        )

    @property
    def authenticated(self) -> bool:
        return self._session_id is not None

    async def authenticate(self, timeout_s: float | None = None) -> dict[str, Any]:
        """Open a web session; returns Odoo's session info (``uid``, ...)."""
        # A fresh login carries no cookie: sending the current session would make
        # Odoo rotate (delete) it under calls still in flight with it.
        params = {
            "db": self.db,
            "login": self.login,
            "password": self._password.get_secret_value(),
        }
        response = await self._post("/web/session/authenticate", params, timeout_s)
        info = self._result(response)
        if not isinstance(info, dict) or not info.get("uid"):
            raise OdooError(
                f"Odoo opened no session for {self.login!r} on {self.db!r}"
                " (uid is empty: two-factor authentication?)",
                name=ACCESS_DENIED_NAME,
            )
        session_id = response.cookies.get(SESSION_COOKIE)
        if not session_id:
            raise TransportError(
                "authenticate answered without a session_id cookie", "bad_response"
            )
        self._session_id = session_id
        self._session_generation += 1
        log.debug("session opened for %s on %s", self.login, self.db)
        return info

    async def call_kw(
        self,
        model: str,
        method: str,
        args: list[Any],
        kwargs: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        """Call ``model.method`` as the web client does, with the session.

        Authenticates first if needed; on an expired session, authenticates
        again once and retries once.
        """
        if self._session_id is None:
            await self._reauthenticate(self._session_generation, timeout_s)
        generation = self._session_generation
        try:
            return await self._call_kw_once(model, method, args, kwargs, timeout_s)
        except SessionExpired:
            await self._reauthenticate(generation, timeout_s)
            return await self._call_kw_once(model, method, args, kwargs, timeout_s)

    async def execute_kw(
        self,
        model: str,
        method: str,
        args: list[Any],
        kwargs: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        """Call ``model.method`` through ``/jsonrpc`` as an integration does."""
        uid = await self._login_uid(timeout_s)
        call_args = [
            self.db,
            uid,
            self._password.get_secret_value(),
            model,
            method,
            args,
            kwargs or {},
        ]
        try:
            return await self._service("object", "execute_kw", call_args, timeout_s)
        except OdooError as exc:
            if exc.name == ACCESS_DENIED_NAME:
                self._uid = None  # the user may have been recreated: log in again
            raise

    async def version(self, timeout_s: float | None = None) -> dict[str, Any]:
        """``common.version()``: server_version, server_serie, protocol_version."""
        result = await self._service("common", "version", [], timeout_s)
        if not isinstance(result, dict):
            raise TransportError("common.version answered no object", "bad_response")
        return result

    async def _login_uid(self, timeout_s: float | None) -> int:
        if self._uid is None:
            args = [self.db, self.login, self._password.get_secret_value()]
            uid = await self._service("common", "login", args, timeout_s)
            if not isinstance(uid, int) or isinstance(uid, bool) or uid <= 0:
                raise OdooError(
                    f"Odoo refused the login of {self.login!r} on {self.db!r}",
                    name=ACCESS_DENIED_NAME,
                )
            self._uid = uid
        return self._uid

    async def _reauthenticate(
        self, seen_generation: int, timeout_s: float | None
    ) -> None:
        # Concurrent calls that all see the session expire log in once, not once
        # each: whoever gets the lock second finds a newer session and reuses it.
        async with self._session_lock:
            if self._session_generation != seen_generation:
                return
            if self._session_id is not None:
                log.info("session of %s expired; authenticating again", self.login)
            await self.authenticate(timeout_s)

    async def _call_kw_once(
        self,
        model: str,
        method: str,
        args: list[Any],
        kwargs: dict[str, Any] | None,
        timeout_s: float | None,
    ) -> Any:
        params = {
            "model": model,
            "method": method,
            "args": args,
            "kwargs": kwargs or {},
        }
        path = f"/web/dataset/call_kw/{model}.{method}"
        response = await self._post(path, params, timeout_s, self._session_id)
        return self._result(response)

    async def _service(
        self, service: str, method: str, args: list[Any], timeout_s: float | None
    ) -> Any:
        params = {"service": service, "method": method, "args": args}
        response = await self._post("/jsonrpc", params, timeout_s)
        return self._result(response)

    async def _post(
        self,
        path: str,
        params: dict[str, Any],
        timeout_s: float | None,
        session_id: str | None = None,
    ) -> httpx.Response:
        """POST one JSON-RPC envelope; returns the response only if HTTP 200."""
        bound_s = self.timeout_s if timeout_s is None else timeout_s
        envelope = {
            "jsonrpc": "2.0",
            "method": "call",
            "params": params,
            "id": next(self._ids),
        }
        request = self._http.build_request(
            "POST", self.base_url + path, json=envelope, timeout=bound_s
        )
        request.headers.pop("Cookie", None)
        if session_id is not None:
            request.headers["Cookie"] = f"{SESSION_COOKIE}={session_id}"

        response = await self._send(request, path, bound_s)
        if response.status_code != 200:
            status = response.status_code
            kind = "http_5xx" if status >= 500 else f"http_{status}"
            raise TransportError(f"POST {path}: HTTP {status}", kind)
        rotated = response.cookies.get(SESSION_COOKIE)
        if session_id is not None and rotated and rotated != session_id:
            self._session_id = rotated  # Odoo may rotate the session on any answer
        return response

    async def _send(
        self, request: httpx.Request, path: str, bound_s: float
    ) -> httpx.Response:
        started = time.monotonic()
        # The exchange runs in a task of its own that no timeout here or above
        # cancels: httpx ends it by its own timeout for each phase. A request
        # cancelled inside httpx's pool can keep its connection slot for good
        # (seen after long stalls: every slot taken, the probe timing out
        # against a healthy server), so only the caller stops waiting.
        exchange = asyncio.ensure_future(self._http.send(request))
        self._exchanges.add(exchange)
        exchange.add_done_callback(self._exchange_done)
        try:
            # This bounds the whole exchange for the caller, so a server that
            # trickles its answer byte by byte cannot hold a call forever.
            async with asyncio.timeout(bound_s):
                response = await asyncio.shield(exchange)
        except TimeoutError:
            raise TransportError(
                f"POST {path}: no complete answer within {bound_s:g} s", "timeout"
            ) from None
        except httpx.HTTPError as exc:
            raise self._transport_error(path, exc) from None
        elapsed_s = time.monotonic() - started
        log.debug("POST %s -> %d in %.3f s", path, response.status_code, elapsed_s)
        return response

    def _exchange_done(self, exchange: asyncio.Future[httpx.Response]) -> None:
        self._exchanges.discard(exchange)
        if not exchange.cancelled():
            exchange.exception()  # an abandoned exchange's failure is expected

    def abandon_exchanges(self) -> None:
        """Cancel exchanges still running after their callers gave up; call
        only when the HTTP client is about to be closed."""
        for exchange in list(self._exchanges):
            exchange.cancel()

    def _transport_error(self, path: str, exc: httpx.HTTPError) -> TransportError:
        if isinstance(exc, httpx.TimeoutException):
            kind = "timeout"
        elif isinstance(exc, httpx.ConnectError):
            kind = "connect"
        elif isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
            kind = "reset"
        elif isinstance(exc, httpx.DecodingError):
            kind = "bad_response"
        else:
            kind = "transport"
        detail = self._scrub(str(exc)) or "no detail"
        return TransportError(f"POST {path}: {type(exc).__name__}: {detail}", kind)

    def _result(self, response: httpx.Response) -> Any:
        """Unwrap a JSON-RPC answer, raising its error as OdooError."""
        try:
            body = response.json()
        except ValueError:
            content_type = response.headers.get("content-type", "no content type")
            raise TransportError(
                f"{response.request.url.path}: answer is not JSON ({content_type})",
                "bad_response",
            ) from None
        if not isinstance(body, dict):
            raise TransportError("answer is not a JSON-RPC envelope", "bad_response")
        if "error" in body:
            raise self._odoo_error(body["error"])
        if "result" not in body:
            raise TransportError(
                "envelope has neither result nor error", "bad_response"
            )
        return body["result"]

    def _odoo_error(self, error: Any) -> OdooError:
        if not isinstance(error, dict):
            return OdooError(self._scrub(str(error)))
        data = error.get("data")
        if not isinstance(data, dict):
            data = {}
        code = error.get("code")
        if not isinstance(code, int):
            code = 0
        name = str(data.get("name") or "")
        # data.message says what went wrong; the top-level message is generic
        # ("Odoo Server Error"). data.debug (a traceback) is never kept.
        message = str(data.get("message") or error.get("message") or "Odoo error")
        message = self._scrub(message)[:MAX_MESSAGE_CHARS]
        if code == 100 or name == SESSION_EXPIRED_NAME:
            return SessionExpired(message, code, name)
        return OdooError(message, code, name)

    def _scrub(self, text: str) -> str:
        secret = self._password.get_secret_value()
        return text.replace(secret, "***") if secret else text
