"""Sessions as files in a directory that every replica shares.

Stock Odoo keeps sessions under data_dir/sessions; several replicas need that
directory on shared storage, or a user routed to another replica is logged
out. The stand-in does the same, so that failure mode stays observable.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

_logger = logging.getLogger(__name__)

_SID = re.compile(r"[A-Za-z0-9_-]{40,128}")
MAX_AGE_S = 7 * 24 * 3600  # Odoo's SESSION_LIFETIME
_GC_PROBABILITY = 0.001  # Odoo collects stale sessions on a few requests, too


@dataclass(frozen=True)
class Session:
    sid: str
    db: str
    uid: int
    login: str
    name: str
    partner_id: int
    token: str


class SessionStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def new_sid() -> str:
        return secrets.token_urlsafe(63)

    def save(self, session: Session) -> None:
        """Write atomically, so another replica never reads half a session."""
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(asdict(session), handle)
            os.replace(tmp, self._path(session.sid))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if secrets.randbelow(int(1 / _GC_PROBABILITY)) == 0:
            self.collect_garbage()

    def get(self, sid: str) -> Session | None:
        if not _SID.fullmatch(sid):
            return None
        try:
            data = json.loads(self._path(sid).read_text(encoding="utf-8"))
            return Session(**data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError):
            _logger.warning("session file %s is unreadable; ignoring it", sid[:8])
            return None

    def delete(self, sid: str) -> None:
        if _SID.fullmatch(sid):
            self._path(sid).unlink(missing_ok=True)

    def collect_garbage(self, max_age_s: float = MAX_AGE_S) -> int:
        """Remove sessions (and stray temporary files) older than max_age_s."""
        threshold = time.time() - max_age_s
        removed = 0
        for path in self.directory.iterdir():
            try:
                if path.stat().st_mtime < threshold:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        if removed:
            _logger.info("removed %d stale session files", removed)
        return removed

    def _path(self, sid: str) -> Path:
        return self.directory / sid
