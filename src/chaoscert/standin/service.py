"""Odoo's services as the JSON routes call them: session, dataset, common, object.

Each database unit of work runs in one transaction, committed before the
route answers, under the client-side deadline of `Database`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg

from chaoscert.standin import records, security
from chaoscert.standin.db import Cursor, Database
from chaoscert.standin.exceptions import (
    AccessDenied,
    AccessError,
    SessionExpired,
    as_validation_error,
)
from chaoscert.standin.models import REGISTRY
from chaoscert.standin.orm import Env
from chaoscert.standin.sessions import Session, SessionStore

_logger = logging.getLogger(__name__)

T = TypeVar("T")

VERSION_INFO: dict[str, Any] = {
    "server_version": "17.0",
    "server_version_info": [17, 0, 0, "final", 0, ""],
    "server_serie": "17.0",
    "protocol_version": 1,
}
COMPANY = {"id": 1, "name": "Chaoscert Logistics"}


@dataclass
class HttpContext:
    """What a service sees of its HTTP request, and the cookies it sets."""

    session_id: str | None
    base_url: str
    new_session_id: str | None = None
    notes: dict[str, str] = field(default_factory=dict)


class Services:
    def __init__(
        self,
        db_name: str,
        database: Database,
        sessions: SessionStore,
        bootstrap: Callable[[Cursor], None] | None = None,
    ) -> None:
        self.db_name = db_name
        self.database = database
        self.sessions = sessions
        self._bootstrap = bootstrap

    # -- /web/session/* ------------------------------------------------------

    def authenticate(
        self,
        http: HttpContext,
        db: str,
        login: str,
        password: str,
        base_location: str | None = None,
    ) -> dict[str, Any]:
        if db != self.db_name:
            raise AccessError("Database not found.")
        user = self._run(lambda cr: security.login(cr, login, password))
        sid = self.sessions.new_sid()
        session = Session(
            sid=sid,
            db=db,
            uid=user.uid,
            login=user.login,
            name=user.name,
            partner_id=user.partner_id,
            token=security.session_token(user, sid),
        )
        self.sessions.save(session)
        if http.session_id:
            # Odoo rotates the session on login; the old one is gone.
            self.sessions.delete(http.session_id)
        http.new_session_id = sid
        return self._session_info(session, http.base_url)

    def get_session_info(self, http: HttpContext) -> dict[str, Any]:
        session = self._valid_session(http)
        return self._session_info(session, http.base_url)

    def destroy(self, http: HttpContext) -> None:
        if http.session_id:
            self.sessions.delete(http.session_id)

    # -- /web/dataset/call_kw ------------------------------------------------

    def call_kw(
        self,
        http: HttpContext,
        model: str,
        method: str,
        args: Any,
        kwargs: Any,
        path: str | None = None,
    ) -> Any:
        session = self._session(http)
        http.notes["call"] = f"{model}.{method}"

        def work(cr: Cursor) -> Any:
            if (
                security.check_session(cr, session.uid, session.sid, session.token)
                is None
            ):
                raise SessionExpired()
            return records.call_kw(
                Env(cr, session.uid, REGISTRY), model, method, args, kwargs
            )

        try:
            return self._run(work)
        except SessionExpired:
            self.sessions.delete(session.sid)
            raise

    # -- /jsonrpc --------------------------------------------------------------

    def jsonrpc(self, http: HttpContext, service: str, method: str, args: Any) -> Any:
        if not isinstance(args, list):
            raise TypeError(f"args must be a list, not {type(args).__name__}")
        http.notes["call"] = f"{service}.{method}"
        dispatch: dict[str, dict[str, Callable[..., Any]]] = {
            "common": {
                "version": self._version,
                "login": self._login,
                "authenticate": self._authenticate,
            },
            "object": {"execute_kw": self._execute_kw, "execute": self._execute},
            "db": {"list": self._list, "server_version": self._server_version},
        }
        methods = dispatch[service]  # Odoo answers an unknown service with KeyError
        if service == "object" and method not in methods:
            raise NameError(f"Method not available {method}")
        if method not in methods:
            raise KeyError(f"exp_{method}")
        return methods[method](*args)

    def version_info(self, http: HttpContext) -> dict[str, Any]:
        return dict(VERSION_INFO)

    # -- /web/health -----------------------------------------------------------

    def database_reachable(self) -> bool:
        try:
            self.database.run(lambda cr: cr.execute("SELECT 1"))
        except psycopg.Error as exc:
            _logger.warning("health: database unreachable: %s", _first_line(exc))
            return False
        return True

    # -- services behind /jsonrpc ----------------------------------------------

    def _version(self) -> dict[str, Any]:
        return dict(VERSION_INFO)

    def _login(self, db: str, login: str, password: str) -> int | bool:
        return self._authenticate(db, login, password, None)

    def _authenticate(
        self, db: str, login: str, password: str, user_agent_env: Any
    ) -> int | bool:
        self._check_db(db)
        try:
            return self._run(lambda cr: security.login(cr, login, password)).uid
        except AccessDenied:
            return False

    def _execute_kw(
        self,
        db: str,
        uid: Any,
        password: str,
        model: str,
        method: str,
        args: Any,
        kwargs: Any = None,
    ) -> Any:
        self._check_db(db)
        user_id = int(uid)

        def work(cr: Cursor) -> Any:
            security.check(cr, user_id, password)
            env = Env(cr, user_id, REGISTRY)
            return records.call_kw(env, model, method, args, kwargs or {})

        return self._run(work)

    def _execute(
        self, db: str, uid: Any, password: str, model: str, method: str, *args: Any
    ) -> Any:
        return self._execute_kw(db, uid, password, model, method, list(args))

    def _list(self) -> list[str]:
        return [self.db_name]

    def _server_version(self) -> str:
        return str(VERSION_INFO["server_version"])

    # -- helpers ---------------------------------------------------------------

    def _check_db(self, db: str) -> None:
        if db != self.db_name:
            # What Odoo 17 lets through when the registry cannot connect.
            raise psycopg.OperationalError(
                f'connection to server failed: FATAL:  database "{db}" does not exist'
            )

    def _session(self, http: HttpContext) -> Session:
        session = self.sessions.get(http.session_id) if http.session_id else None
        if session is None or session.db != self.db_name:
            raise SessionExpired()
        return session

    def _valid_session(self, http: HttpContext) -> Session:
        session = self._session(http)
        valid = self._run(
            lambda cr: security.check_session(
                cr, session.uid, session.sid, session.token
            )
        )
        if valid is None:
            self.sessions.delete(session.sid)
            raise SessionExpired()
        return session

    def _run(self, work: Callable[[Cursor], T]) -> T:
        self._ensure_schema()
        try:
            return self.database.run(work)
        except psycopg.IntegrityError as exc:
            raise as_validation_error(exc) from exc

    def _ensure_schema(self) -> None:
        if self._bootstrap is None:
            return
        self.database.run(
            self._bootstrap, isolation=psycopg.IsolationLevel.READ_COMMITTED
        )
        self._bootstrap = None

    def _session_info(self, session: Session, base_url: str) -> dict[str, Any]:
        return {
            "uid": session.uid,
            "is_system": True,
            "is_admin": True,
            "is_internal_user": True,
            "user_context": {"lang": "en_US", "tz": "UTC", "uid": session.uid},
            "db": session.db,
            "server_version": VERSION_INFO["server_version"],
            "server_version_info": VERSION_INFO["server_version_info"],
            "support_url": "https://www.odoo.com/help",
            "name": session.name,
            "username": session.login,
            "partner_display_name": session.name,
            "partner_id": session.partner_id,
            "company_id": COMPANY["id"],
            "web.base.url": base_url,
            "active_ids_limit": 20000,
            "home_action_id": False,
            "cache_hashes": {},
            "currencies": {},
            "user_companies": {
                "current_company": COMPANY["id"],
                "allowed_companies": {
                    str(COMPANY["id"]): {
                        **COMPANY,
                        "sequence": 10,
                        "child_ids": [],
                        "parent_id": False,
                    }
                },
                "disallowed_ancestor_companies": {},
            },
        }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
