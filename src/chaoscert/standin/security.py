"""Passwords, logins and session tokens of res.users."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from chaoscert.standin.db import Cursor
from chaoscert.standin.exceptions import AccessDenied

# Fewer rounds than Odoo's pbkdf2-sha512 (600,000): probes call execute_kw
# with the password on every request; verified pairs are cached per worker.
ROUNDS = 100_000
SCHEME = "pbkdf2-sha512"
_CACHE_MAX = 256
_verified: set[bytes] = set()


@dataclass(frozen=True)
class User:
    uid: int
    login: str
    name: str
    partner_id: int
    password_hash: str


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ROUNDS)
    return f"${SCHEME}${ROUNDS}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str | None) -> bool:
    if not stored or not isinstance(password, str):
        return False
    key = hashlib.sha256(f"{stored}\0{password}".encode()).digest()
    if key in _verified:
        return True
    try:
        _, scheme, rounds, salt, digest = stored.split("$")
        computed = hashlib.pbkdf2_hmac(
            "sha512", password.encode(), base64.b64decode(salt), int(rounds)
        )
        expected = base64.b64decode(digest)
    except ValueError:
        return False
    if scheme != SCHEME or not hmac.compare_digest(computed, expected):
        return False
    if len(_verified) >= _CACHE_MAX:
        _verified.clear()
    _verified.add(key)
    return True


def session_token(user: User, sid: str) -> str:
    """Ties a session to the password it was opened with, as Odoo's token does."""
    return hmac.new(user.password_hash.encode(), sid.encode(), "sha256").hexdigest()


def login(cr: Cursor, login: str, password: str) -> User:
    """The active user with these credentials, else AccessDenied."""
    cr.execute(_USER_BY_LOGIN, (login,))
    user = _user(cr)
    if user is None or not verify_password(password, user.password_hash):
        raise AccessDenied()
    return user


def check(cr: Cursor, uid: int, password: str) -> User:
    """Checks uid and password as Odoo's object service does, else AccessDenied."""
    user = _by_id(cr, uid)
    if user is None or not verify_password(password, user.password_hash):
        raise AccessDenied()
    return user


def check_session(cr: Cursor, uid: int, sid: str, token: str) -> User | None:
    """The session's user if the session is still valid for it."""
    user = _by_id(cr, uid)
    if user is None or not hmac.compare_digest(session_token(user, sid), token):
        return None
    return user


_USER_BY_ID = """
    SELECT u.id, u.login, p.name, u.partner_id, u.password
      FROM res_users u JOIN res_partner p ON p.id = u.partner_id
     WHERE u.active AND u.id = %s
"""
_USER_BY_LOGIN = """
    SELECT u.id, u.login, p.name, u.partner_id, u.password
      FROM res_users u JOIN res_partner p ON p.id = u.partner_id
     WHERE u.active AND u.login = %s
"""


def _by_id(cr: Cursor, uid: int) -> User | None:
    if not 0 < uid < 2**31:
        return None
    cr.execute(_USER_BY_ID, (uid,))
    return _user(cr)


def _user(cr: Cursor) -> User | None:
    row = cr.fetchone()
    if row is None:
        return None
    uid, user_login, name, partner_id, password_hash = row
    return User(uid, user_login, name, partner_id, password_hash or "")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
