"""Odoo's exceptions as the stand-in raises them, and their JSON-RPC error shape."""

from __future__ import annotations

import traceback
from typing import Any, ClassVar

import psycopg

SESSION_EXPIRED_CODE = 100
SERVER_ERROR_CODE = 200  # Odoo 16 and 17; newer releases send 0
_DBAPI = frozenset(
    {
        "Warning",
        "InterfaceError",
        "DataError",
        "OperationalError",
        "IntegrityError",
        "InternalError",
        "ProgrammingError",
        "NotSupportedError",
        "DatabaseError",
        "Error",
    }
)


class OdooException(Exception):
    """An exception that clients see under an Odoo class path (`data.name`)."""

    odoo_name: ClassVar[str] = "odoo.exceptions.UserError"
    show_traceback: ClassVar[bool] = True


class UserError(OdooException):
    odoo_name = "odoo.exceptions.UserError"


class ValidationError(UserError):
    odoo_name = "odoo.exceptions.ValidationError"


class AccessError(UserError):
    odoo_name = "odoo.exceptions.AccessError"


class MissingError(UserError):
    odoo_name = "odoo.exceptions.MissingError"


class AccessDenied(OdooException):
    """Bad credentials; Odoo hides the traceback of this one on purpose."""

    odoo_name = "odoo.exceptions.AccessDenied"
    show_traceback = False

    def __init__(self, message: str = "Access Denied") -> None:
        super().__init__(message)


class SessionExpired(OdooException):
    odoo_name = "odoo.http.SessionExpiredException"
    show_traceback = False

    def __init__(self, message: str = "Session expired") -> None:
        super().__init__(message)


def class_path(exc: BaseException) -> str:
    """The `data.name` Odoo 17 would send for this exception."""
    if isinstance(exc, OdooException):
        return exc.odoo_name
    if isinstance(exc, psycopg.Error):
        # Odoo 17 runs on psycopg2; clients match on its class paths. Errors
        # with a SQLSTATE have a psycopg2.errors class of the same name; the
        # others (psycopg 3's own, such as ConnectionTimeout) do not, so they
        # show as their DB-API base class, as psycopg2 would raise them.
        if exc.sqlstate:
            return f"psycopg2.errors.{type(exc).__name__}"
        base = next(cls for cls in type(exc).__mro__ if cls.__name__ in _DBAPI)
        return f"psycopg2.{base.__name__}"
    module = type(exc).__module__
    return f"{module}.{type(exc).__qualname__}"


def error_payload(exc: BaseException) -> dict[str, Any]:
    """The `error` member of a JSON-RPC answer, as Odoo 17 builds it."""
    hidden = isinstance(exc, OdooException) and not exc.show_traceback
    data = {
        "name": class_path(exc),
        "message": str(exc),
        "arguments": [_jsonable(arg) for arg in exc.args],
        "context": {},
        "debug": "" if hidden else "".join(traceback.format_exception(exc)),
    }
    if isinstance(exc, SessionExpired):
        return {
            "code": SESSION_EXPIRED_CODE,
            "message": "Odoo Session Expired",
            "data": data,
        }
    return {"code": SERVER_ERROR_CODE, "message": "Odoo Server Error", "data": data}


def as_validation_error(exc: psycopg.IntegrityError) -> ValidationError:
    """Odoo turns constraint violations into ValidationError; so does the stand-in."""
    diag = exc.diag
    where = ", ".join(
        f"{label}: {value}"
        for label, value in (
            ("table", diag.table_name),
            ("field", diag.column_name),
            ("constraint", diag.constraint_name),
        )
        if value
    )
    detail = diag.message_primary or str(exc)
    message = f"The operation cannot be completed: {detail}"
    return ValidationError(f"{message} ({where})" if where else message)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
