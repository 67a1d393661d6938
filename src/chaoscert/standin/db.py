"""One pooled Postgres connection per worker, every transaction under a deadline."""

from __future__ import annotations

import logging
import math
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeAlias, TypeVar

import psycopg
from psycopg import IsolationLevel, errors
from psycopg.conninfo import conninfo_to_dict

_logger = logging.getLogger(__name__)

Cursor: TypeAlias = psycopg.Cursor[tuple[Any, ...]]
T = TypeVar("T")

# Odoo retries these up to 5 times (odoo.service.model.retrying).
RETRYABLE = (
    errors.SerializationFailure,
    errors.DeadlockDetected,
    errors.LockNotAvailable,
)
MAX_TRIES = 5


class Database:
    """The worker's single connection, reopened when broken, as Odoo's pool does.

    Every unit of work runs in one transaction that is committed before the
    caller answers, bounded by `timeout_s` on the client side.
    """

    def __init__(self, conninfo: str, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._conninfo = conninfo
        self._connect_kwargs = connect_defaults(conninfo, timeout_s)
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        # Sync workers serve one request at a time; the lock keeps a threaded
        # worker class from sharing the one connection between requests.
        self._lock = threading.Lock()

    def run(
        self,
        work: Callable[[Cursor], T],
        isolation: IsolationLevel = IsolationLevel.REPEATABLE_READ,
    ) -> T:
        """Run `work` in a transaction and commit; retry concurrency failures.

        Odoo's cursors are REPEATABLE READ, so concurrent updates of one row
        end in a serialization failure that is retried after a random pause.
        """
        with self._lock:
            return self._run(work, isolation)

    def _run(self, work: Callable[[Cursor], T], isolation: IsolationLevel) -> T:
        for attempt in range(1, MAX_TRIES + 1):
            try:
                return self._attempt(work, isolation)
            except RETRYABLE as exc:
                if attempt == MAX_TRIES:
                    _logger.info("%s, maximum number of tries reached", exc.sqlstate)
                    raise
                # Shorter pauses than Odoo's (up to 2**n s): the probes' SLOs
                # are seconds, and this backoff only spreads concurrent writers.
                pause_s = random.uniform(0.0, 0.05 * 2**attempt)
                _logger.debug("%s, retry %d in %.3fs", exc.sqlstate, attempt, pause_s)
                time.sleep(pause_s)
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _attempt(self, work: Callable[[Cursor], T], isolation: IsolationLevel) -> T:
        conn = self._connection()
        conn.isolation_level = isolation
        watchdog = _Watchdog(conn.pgconn.socket, self.timeout_s)
        untrusted = False
        try:
            with watchdog:
                try:
                    with conn.cursor() as cur:
                        result = work(cur)
                    conn.commit()
                except BaseException:
                    untrusted = not _rolled_back(conn)
                    raise
        except psycopg.Error as exc:
            if watchdog.fired:
                # Plain OperationalError: what clients see for a lost server.
                raise psycopg.OperationalError(
                    f"the database did not answer within {self.timeout_s:g} s"
                    " (client-side deadline); the connection was dropped"
                ) from exc
            raise
        finally:
            # Only once the watchdog is disarmed: it must never act on an fd
            # that closing the connection has freed for reuse. A watchdog that
            # fired just as the work finished leaves the answer standing, but
            # the socket is shut down all the same.
            if watchdog.fired or untrusted or conn.broken:
                self._drop()
        return result

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        self._drop()
        self._conn = psycopg.connect(self._conninfo, **self._connect_kwargs)
        _logger.debug(
            "connected to the database (backend pid %d)", self._conn.info.backend_pid
        )
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.close()
        except psycopg.Error:
            _logger.debug("closing a dead connection failed", exc_info=True)


class _Watchdog:
    """Shuts the connection's socket down when a transaction outlives its deadline.

    A frozen primary answers nothing, yet its kernel still accepts connections
    and acknowledges data, so a blocked read would wait for TCP's own timeouts
    (many minutes). Odoo bounds a stuck request with limit_time_real (120 s),
    which kills the worker; the stand-in bounds every round trip much sooner,
    from the client side, so that a probe sees an error within seconds and the
    worker lives on. Shutting the socket down makes the blocked libpq call
    fail at once; the connection is then dropped and reopened later.
    """

    def __init__(self, fd: int, timeout_s: float) -> None:
        self.fired = False
        self._fd = fd
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._finished = False
        self._timer = threading.Timer(timeout_s, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Under the lock, so the socket is never shut down once the caller may
        # close the connection and the fd number may be reused.
        with self._lock:
            self._finished = True
        self._timer.cancel()

    def _fire(self) -> None:
        with self._lock:
            if self._finished:
                return
            self.fired = True
            _logger.warning(
                "no answer from the database within %g s; shutting the socket down",
                self._timeout_s,
            )
            try:
                with socket.socket(fileno=os.dup(self._fd)) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                _logger.debug("socket shutdown failed", exc_info=True)


def _rolled_back(conn: psycopg.Connection[tuple[Any, ...]]) -> bool:
    """Roll back; False when the connection can no longer be trusted."""
    if conn.broken or conn.closed:
        return False
    try:
        conn.rollback()
    except psycopg.Error:
        _logger.debug("rollback failed; the connection will be dropped", exc_info=True)
        return False
    return True


def connect_defaults(conninfo: str, timeout_s: float) -> dict[str, Any]:
    """Parameters added to the conninfo only where it does not set them."""
    params = conninfo_to_dict(conninfo)
    defaults: dict[str, Any] = {}
    if "connect_timeout" not in params:
        # Without it, connecting to a frozen host would wait forever.
        defaults["connect_timeout"] = max(2, math.ceil(timeout_s))
    if "application_name" not in params:
        defaults["application_name"] = "chaoscert-standin"
    return defaults


def describe(conninfo: str) -> str:
    """Hosts, ports and database of a conninfo, never its password."""
    params = conninfo_to_dict(conninfo)
    return " ".join(
        f"{key}={params[key]}"
        for key in ("host", "hostaddr", "port", "dbname", "user")
        if key in params
    )
