"""The ledger of acknowledged writes, and reading every one of them back.

An acknowledged write is one Odoo confirmed to the probe (a validated picking,
an approved order, a posted invoice). After recovery every such id must still
be readable through the API; a missing one is lost data and counts against
the tier's RPO.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from chaoscert.errors import TransportError
from chaoscert.odoo import OdooClient

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LedgerCheck:
    """Outcome of reading acknowledged writes back: ``lost`` ids were not found."""

    acknowledged: int
    verified: int
    lost: list[int] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.lost


class Ledger:
    """Acknowledged write ids per workflow; safe to append from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[str, list[int]] = {}

    def record(self, workflow: str, write_id: int) -> None:
        with self._lock:
            self._ids.setdefault(workflow, []).append(write_id)

    def ids(self, workflow: str) -> list[int]:
        """A snapshot of the ids acknowledged to ``workflow``, in order."""
        with self._lock:
            return list(self._ids.get(workflow, ()))

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {name: len(ids) for name, ids in self._ids.items()}


async def verify(
    client: OdooClient,
    model: str,
    ids: Iterable[int],
    batch: int = 200,
    *,
    timeout_s: float = 10.0,
    attempts: int = 3,
    states: Sequence[str] = (),
) -> LedgerCheck:
    """Read every id back from ``model``; each batch is one bounded request.

    With ``states``, a record must also still be in one of them: a picking
    found but no longer ``done`` lost the validation that was acknowledged.

    A batch that fails on transport is retried up to ``attempts`` times in
    all (short exponential backoff); if it still fails the TransportError
    propagates, because an unverifiable write is neither verified nor lost.
    """
    wanted = sorted(set(ids))
    found: set[int] = set()
    for start in range(0, len(wanted), batch):
        rows = await _read(
            client, model, wanted[start : start + batch], timeout_s, attempts, states
        )
        found.update(
            int(row["id"]) for row in rows if not states or row.get("state") in states
        )

    lost = [record_id for record_id in wanted if record_id not in found]
    if lost:
        log.warning(
            "%d of %d acknowledged %s writes are missing or reverted: %s",
            len(lost),
            len(wanted),
            model,
            lost[:20],
        )
    return LedgerCheck(
        acknowledged=len(wanted), verified=len(wanted) - len(lost), lost=lost
    )


async def _read(
    client: OdooClient,
    model: str,
    chunk: Sequence[int],
    timeout_s: float,
    attempts: int,
    states: Sequence[str],
) -> list[dict[str, Any]]:
    # active_test off: an archived record was kept, not lost.
    fields = ["id", "state"] if states else ["id"]
    kwargs = {"fields": fields, "context": {"active_test": False}}
    domain = [[("id", "in", list(chunk))]]
    retrying = AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=0.2, max=2.0),
        retry=retry_if_exception_type(TransportError),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            rows = await client.execute_kw(
                model, "search_read", domain, kwargs, timeout_s=timeout_s
            )
    return list(rows)
