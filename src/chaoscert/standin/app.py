"""WSGI entry point of the Odoo stand-in: `chaoscert.standin.app:application`.

Run it under gunicorn with sync (prefork) workers, e.g.
`gunicorn -w 2 -b 127.0.1.1:8069 chaoscert.standin.app:application`. Each
worker keeps one database connection. Configuration comes only from these
environment variables:

CHAOSCERT_STANDIN_DSN (required)
    libpq conninfo of the database, e.g. "host=127.0.1.1,127.0.2.1 port=25432,
    25432 dbname=logistics user=odoo passfile=/x/pgpass
    target_session_attrs=read-write connect_timeout=2". Passed to psycopg as
    is; when it sets no connect_timeout, the statement timeout is used. Only
    its hosts, ports, dbname and user are ever logged.
CHAOSCERT_STANDIN_DB (required)
    The Odoo database name clients send, e.g. "logistics".
CHAOSCERT_STANDIN_SESSIONS_DIR (required)
    Directory of session files, shared by every replica (Odoo's
    data_dir/sessions on shared storage); created if missing.
CHAOSCERT_STANDIN_ADMIN_LOGIN (default "admin")
CHAOSCERT_STANDIN_ADMIN_PASSWORD_FILE (optional)
    File holding the admin's password (never logged). When set, each worker
    runs `chaoscert.standin.schema.bootstrap`'s work (idempotent, 50 products
    at least) before its first database request, and again on the next
    request if that failed; when unset, the schema must exist already.
CHAOSCERT_STANDIN_STATEMENT_TIMEOUT_S (default 5)
    Client-side bound, in seconds, on every database transaction: past it the
    connection's socket is shut down and the client gets a JSON-RPC error
    (see `chaoscert.standin.db`). Odoo's limit_time_real plays this role.
CHAOSCERT_STANDIN_LOG_LEVEL (default INFO)
    Level of the "chaoscert.standin" loggers, given a stderr handler when
    nothing else configured logging (gunicorn does not).
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import psycopg
from psycopg.conninfo import conninfo_to_dict

from chaoscert.errors import ConfigError
from chaoscert.standin import schema
from chaoscert.standin.db import Cursor, Database, describe
from chaoscert.standin.exceptions import OdooException, SessionExpired, error_payload
from chaoscert.standin.service import HttpContext, Services
from chaoscert.standin.sessions import MAX_AGE_S, SessionStore

_logger = logging.getLogger(__name__)

ENV_PREFIX = "CHAOSCERT_STANDIN_"
MAX_BODY_BYTES = 16 * 1024 * 1024
JSON_MIMETYPES = ("application/json", "application/json-rpc")
BOOTSTRAP_PRODUCTS = 50

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


@dataclass(frozen=True)
class Settings:
    dsn: str
    db_name: str
    sessions_dir: Path
    admin_login: str = "admin"
    admin_password_file: Path | None = None
    statement_timeout_s: float = 5.0
    log_level: str = "INFO"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        def get(name: str, default: str | None = None) -> str:
            value = environ.get(ENV_PREFIX + name, "").strip() or default
            if value is None:
                raise ConfigError(f"environment variable {ENV_PREFIX}{name} is not set")
            return value

        timeout = get("STATEMENT_TIMEOUT_S", "5")
        try:
            timeout_s = float(timeout)
        except ValueError:
            timeout_s = 0.0
        if timeout_s <= 0:
            raise ConfigError(
                f"{ENV_PREFIX}STATEMENT_TIMEOUT_S must be a positive number of"
                f" seconds, not {timeout!r}"
            )
        password_file = get("ADMIN_PASSWORD_FILE", "")
        dsn = get("DSN")
        try:
            conninfo_to_dict(dsn)
        except psycopg.Error:
            # The message could quote the password; name the variable only.
            raise ConfigError(
                f"{ENV_PREFIX}DSN is not a valid libpq conninfo"
            ) from None
        return cls(
            dsn=dsn,
            db_name=get("DB"),
            sessions_dir=Path(get("SESSIONS_DIR")),
            admin_login=get("ADMIN_LOGIN", "admin"),
            admin_password_file=Path(password_file) if password_file else None,
            statement_timeout_s=timeout_s,
            log_level=get("LOG_LEVEL", "INFO").upper(),
        )

    def read_admin_password(self) -> str:
        assert self.admin_password_file is not None
        try:
            text = self.admin_password_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read the admin password file {self.admin_password_file}:"
                f" {exc.strerror}"
            ) from None
        return text.rstrip("\r\n")


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> Response:
        return cls(status, json.dumps(payload, default=_json_default).encode())

    @classmethod
    def text(cls, status: int, text: str) -> Response:
        return cls(status, text.encode(), "text/plain; charset=utf-8")


class StandinApp:
    """Routes requests to Odoo's services and wraps answers in Odoo's envelopes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        database = Database(settings.dsn, settings.statement_timeout_s)
        sessions = SessionStore(settings.sessions_dir)
        bootstrap = self._bootstrap if settings.admin_password_file else None
        self.services = Services(settings.db_name, database, sessions, bootstrap)
        self._json_routes: dict[str, Callable[..., Any]] = {
            "/web/session/authenticate": self.services.authenticate,
            "/web/session/get_session_info": self.services.get_session_info,
            "/web/session/destroy": self.services.destroy,
            "/web/dataset/call_kw": self.services.call_kw,
            "/web/webclient/version_info": self.services.version_info,
            "/jsonrpc": self.services.jsonrpc,
        }

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        started = time.monotonic()
        path = environ.get("PATH_INFO", "") or "/"
        try:
            response = self._route(environ, path)
        except Exception:
            _logger.exception("unexpected error on %s", path)
            response = Response.text(500, "500: Internal Server Error")
        status = HTTPStatus(response.status)
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
            ("Cache-Control", "no-store"),
            *response.headers,
        ]
        start_response(f"{status.value} {status.phrase}", headers)
        _logger.debug(
            "%s %s -> %d in %.3fs",
            environ.get("REQUEST_METHOD", "?"),
            path,
            response.status,
            time.monotonic() - started,
        )
        return [response.body]

    def _route(self, environ: dict[str, Any], path: str) -> Response:
        if path == "/web/health":
            return self._health(environ)
        handler = self._json_routes.get(path)
        if handler is None and path.startswith("/web/dataset/call_kw/"):
            handler = self.services.call_kw  # the suffix is informative only
        if handler is None:
            return Response.text(404, "404: Not Found")
        return self._json_request(environ, path, handler)

    def _health(self, environ: dict[str, Any]) -> Response:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        info: dict[str, Any] = {"status": "pass"}
        # Like Odoo, any non-empty value asks for the database check.
        if query.get("db_server_status", [""])[0]:
            reachable = self.services.database_reachable()
            info["db_server_status"] = reachable
            if not reachable:
                info["status"] = "fail"
                return Response.json(info, status=500)
        return Response.json(info)

    def _json_request(
        self, environ: dict[str, Any], path: str, handler: Callable[..., Any]
    ) -> Response:
        mimetype = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if mimetype not in JSON_MIMETYPES:
            return Response.text(
                400,
                f"Request inferred type is compatible with ['http'] but {path!r} is"
                " type='json'.\n\nPlease verify the Content-Type request header"
                " and try again.",
            )
        body = _read_body(environ)
        if body is None:
            return Response.text(413, "413: Request Entity Too Large")
        try:
            request = json.loads(body)
        except ValueError:
            return Response.text(400, "400: Bad Request\n\nInvalid JSON data")
        if not isinstance(request, dict) or not isinstance(
            request.get("params", {}), dict
        ):
            return Response.text(400, "400: Bad Request\n\nInvalid JSON-RPC data")

        http = HttpContext(
            session_id=_cookie(environ, "session_id"),
            base_url=f"{environ.get('wsgi.url_scheme', 'http')}://"
            f"{environ.get('HTTP_HOST', 'localhost')}",
        )
        answer: dict[str, Any] = {"jsonrpc": "2.0", "id": request.get("id")}
        try:
            answer["result"] = _call_route(handler, http, request.get("params", {}))
        except Exception as exc:
            answer["error"] = error_payload(exc)
            _log_error(path, http, exc)
        response = Response.json(answer)
        if http.new_session_id:
            response.headers.append(
                ("Set-Cookie", _session_cookie(http.new_session_id))
            )
        return response

    def _bootstrap(self, cr: Cursor) -> None:
        password = self.settings.read_admin_password()
        schema.install(cr, self.settings.admin_login, password, BOOTSTRAP_PRODUCTS)
        _logger.debug("schema checked (bootstrap on first database request)")


def _call_route(
    handler: Callable[..., Any], http: HttpContext, params: dict[str, Any]
) -> Any:
    """Call with the params the handler accepts; Odoo drops the others too."""
    accepted = set(inspect.signature(handler).parameters) - {"http"}
    ignored = sorted(set(params) - accepted)
    if ignored:
        _logger.debug("ignoring unexpected parameters %s", ignored)
    return handler(http, **{k: v for k, v in params.items() if k in accepted})


def _log_error(path: str, http: HttpContext, exc: Exception) -> None:
    where = http.notes.get("call", path)
    if isinstance(exc, SessionExpired):
        _logger.debug("%s: session expired", where)
    elif isinstance(exc, OdooException):
        _logger.info("%s: %s: %s", where, exc.odoo_name, _first_line(exc))
    else:
        _logger.warning("%s: %s: %s", where, type(exc).__name__, _first_line(exc))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_body(environ: dict[str, Any]) -> bytes | None:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH") or ""
    if length.isdigit():
        if int(length) > MAX_BODY_BYTES:
            return None
        return bytes(stream.read(int(length)))
    body = bytes(stream.read(MAX_BODY_BYTES + 1))
    return None if len(body) > MAX_BODY_BYTES else body


def _cookie(environ: dict[str, Any], name: str) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(environ.get("HTTP_COOKIE", ""))
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None and morsel.value else None


def _session_cookie(sid: str) -> str:
    expires = datetime.now(UTC) + timedelta(seconds=MAX_AGE_S)
    return (
        f"session_id={sid}; Expires={format_datetime(expires, usegmt=True)};"
        f" Max-Age={MAX_AGE_S}; HttpOnly; Path=/"
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _configure_logging(level: str) -> None:
    logger = logging.getLogger("chaoscert.standin")
    logger.setLevel(level)
    if logging.getLogger().handlers or logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    )
    logger.addHandler(handler)


def create_app(environ: Mapping[str, str]) -> StandinApp:
    settings = Settings.from_environ(environ)
    _configure_logging(settings.log_level)
    app = StandinApp(settings)
    _logger.info(
        "stand-in worker %d serving database %r from %s (sessions in %s,"
        " deadline %g s, bootstrap %s)",
        os.getpid(),
        settings.db_name,
        describe(settings.dsn),
        settings.sessions_dir,
        settings.statement_timeout_s,
        "on first request" if settings.admin_password_file else "off",
    )
    return app


application = create_app(os.environ)
