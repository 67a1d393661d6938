"""One probe attempt, as measured; the unit every SLO figure is computed from."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

_TIMES = ("scheduled_mono", "start_mono", "end_mono", "start_wall")
_TEXTS = ("workflow", "error_kind", "error")


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
        """A sample read back from JSON; TypeError or ValueError names the field
        when ``data`` is not one (a file or journal may hold anything)."""
        if not isinstance(data, dict):
            raise TypeError(f"a sample is an object, not {type(data).__name__}")
        # Quoted: a key may hold a line break, and the message is one line.
        unknown = sorted(repr(key) for key in data if key not in _FIELDS)
        if unknown:
            raise TypeError(f"unknown field {unknown[0]}")
        sample = cls(**data)
        for name in _TIMES:
            value = getattr(sample, name)
            if not _is_number(value) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, not {value!r}")
        for name in _TEXTS:
            if not isinstance(getattr(sample, name), str):
                raise TypeError(f"{name} must be text, not {getattr(sample, name)!r}")
        if not isinstance(sample.ok, bool):
            raise TypeError(f"ok must be true or false, not {sample.ok!r}")
        if not _is_integer(sample.seq):
            raise TypeError(f"seq must be an integer, not {sample.seq!r}")
        if sample.write_id is not None and not _is_integer(sample.write_id):
            raise TypeError(f"write_id must be an integer, not {sample.write_id!r}")
        return sample


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_FIELDS = frozenset(field.name for field in fields(Sample))
