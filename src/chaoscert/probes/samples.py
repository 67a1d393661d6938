"""One probe attempt, as measured; the unit every SLO figure is computed from."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(slots=True)
class Sample:
    """One attempt of a workflow.

    Times ending in ``_mono`` are ``time.monotonic()`` seconds (measurement);
    ``start_wall`` is Unix time for display only. ``ok`` is the transport and
    protocol outcome; whether a slow success counts as failed is the SLO's
    decision (see ``chaoscert.slo``), not the probe's.
    """

    workflow: str
    seq: int
    scheduled_mono: float
    start_mono: float
    end_mono: float
    start_wall: float
    ok: bool
    error_kind: str = ""  # timeout, connect, reset, http_5xx, jsonrpc, saturated, ...
    error: str = ""  # short text, never a secret
    write_id: int | None = None  # id of the acknowledged write, if any

    @property
    def latency_s(self) -> float:
        return self.end_mono - self.start_mono

    @property
    def slip_s(self) -> float:
        """How late the attempt started against its schedule."""
        return self.start_mono - self.scheduled_mono

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sample:
        return cls(**data)
