"""The platform interface, fault handles and the registry that heals them.

A platform discovers what runs where and injects faults. Injecting returns a
FaultHandle that knows how to heal its fault. Every live handle is kept in
the FaultRegistry, which heals them at the end of a scenario, when a step
fails, and on SIGINT, SIGTERM or interpreter exit. A fault that cannot be
healed is reported loudly and kept in the registry's record on disk, so the
next run can find and heal it.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import json
import logging
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from chaoscert.errors import ChaoscertError, ConfigError, FaultError
from chaoscert.platforms.logs import LogText

log = logging.getLogger("chaoscert.faults")

FAULT_KINDS = (
    "node_hang",
    "node_crash",
    "database_primary_hang",
    "database_primary_crash",
)


def utc_now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


@dataclass
class Event:
    """Something the platform did or saw, on the run's time axis."""

    source: str
    text: str
    mono: float = field(default_factory=time.monotonic)
    at: str = field(default_factory=utc_now_iso)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "text": self.text,
            "mono": self.mono,
            "at": self.at,
        }


@dataclass
class FaultHandle:
    """A live fault: what it hit, when, and how to undo it."""

    kind: str
    target: str
    heal_action: Callable[[], None]
    details: dict[str, Any] = field(default_factory=dict)
    injected_mono: float = field(default_factory=time.monotonic)
    injected_at: str = field(default_factory=utc_now_iso)
    healed_mono: float | None = None
    healed_at: str | None = None
    heal_error: str | None = None

    @property
    def healed(self) -> bool:
        return self.healed_mono is not None

    def heal(self) -> None:
        """Undo the fault; idempotent. Raises FaultError if it cannot."""
        if self.healed:
            return
        try:
            self.heal_action()
        except Exception as exc:
            self.heal_error = f"{type(exc).__name__}: {exc}"
            raise FaultError(
                f"could not heal {self.kind} on {self.target}: {self.heal_error}"
            ) from exc
        self.healed_mono = time.monotonic()
        self.healed_at = utc_now_iso()
        self.heal_error = None
        log.info("healed %s on %s", self.kind, self.target)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target": self.target,
            "details": self.details,
            "injected_at": self.injected_at,
            "healed_at": self.healed_at,
            "injected_mono": self.injected_mono,
            "healed_mono": self.healed_mono,
            "heal_error": self.heal_error,
        }


class UndoLog(list[dict[str, Any]]):
    """A fault's undo steps; every step added is on disk before the act it
    undoes, so a run killed halfway through a fault leaves what heals it."""

    def __init__(self, on_change: Callable[[], None]):
        super().__init__()
        self._on_change = on_change

    def append(self, step: dict[str, Any]) -> None:
        super().append(step)
        self._on_change()


class LeftoverFault(BaseModel):
    """One entry of a live-fault record, as a killed run left it."""

    model_config = ConfigDict(extra="ignore")

    kind: str
    target: str
    injected_at: str = "unknown"
    undo: list[dict[str, Any]]


def read_leftovers(record: Path) -> list[LeftoverFault]:
    """The faults a record names; ConfigError (the file is kept) if unreadable."""
    try:
        entries = json.loads(record.read_text())
        if not isinstance(entries, list):
            raise ValueError("not a list of faults")
        return [
            LeftoverFault(
                kind=entry["kind"],
                target=entry["target"],
                injected_at=entry.get("injected_at") or "unknown",
                undo=entry.get("details", {}).get("undo", []),
            )
            for entry in entries
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        reason = (
            exc.errors()[0]["msg"]
            if isinstance(exc, ValidationError)
            else type(exc).__name__
            + (f": {exc}" if isinstance(exc, ValueError) else "")
        )
        raise ConfigError(
            f"{record}: the record of live faults is unreadable ({reason[:120]});"
            " it is kept: heal what it names by hand, then delete it"
        ) from None


def heal_leftovers_with(
    record: Path | None, undo: Callable[[list[dict[str, Any]]], None]
) -> list[str]:
    """Replay every leftover fault's undo steps (each one tried); the record
    keeps only the faults that could not be healed, and FaultError names them."""
    if record is None or not record.exists():
        return []
    healed, failed, errors = [], [], []
    for fault in read_leftovers(record):
        what = f"{fault.kind} on {fault.target} (injected {fault.injected_at})"
        try:
            undo(fault.undo)
            healed.append(what)
        except (ChaoscertError, KeyError, TypeError, ValueError) as exc:
            failed.append(fault)
            errors.append(f"{what}: {exc}")
    if failed:
        record.write_text(
            json.dumps(
                [
                    {
                        "kind": f.kind,
                        "target": f.target,
                        "injected_at": f.injected_at,
                        "details": {"undo": f.undo},
                    }
                    for f in failed
                ],
                indent=2,
            )
        )
        done = f" (healed: {'; '.join(healed)})" if healed else ""
        raise FaultError(
            f"could not heal what a killed run left: {'; '.join(errors)}{done};"
            f" still on record in {record}"
        )
    record.unlink(missing_ok=True)
    return healed


class FaultRegistry:
    """Every live fault of this process; heals them on any way out."""

    # The signal that ended this process's run, for its exit code (128 + n).
    received_signal: ClassVar[int | None] = None

    def __init__(self, record: Path | None = None):
        self._live: list[FaultHandle] = []
        self._lock = threading.RLock()
        self.record = record
        self._installed = False
        self._previous: dict[int, Any] = {}

    def add(self, handle: FaultHandle) -> FaultHandle:
        with self._lock:
            self._live.append(handle)
            self._save()
        return handle

    def live(self) -> list[FaultHandle]:
        with self._lock:
            return [handle for handle in self._live if not handle.healed]

    def heal_all(self) -> list[str]:
        """Heal every live fault, newest first; return the errors of failures."""
        errors = []
        with self._lock:
            for handle in reversed(self._live):
                try:
                    handle.heal()
                except FaultError as exc:
                    log.error("%s", exc)
                    errors.append(str(exc))
            self._live = [handle for handle in self._live if not handle.healed]
            self._save()
        return errors

    def save(self) -> None:
        """Rewrite the record of live faults (after a handle's details changed)."""
        with self._lock:
            self._save()

    def _save(self) -> None:
        if self.record is None:
            return
        live = [handle.to_dict() for handle in self._live if not handle.healed]
        if live:
            self.record.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.record.with_suffix(".tmp")
            tmp.write_text(json.dumps(live, indent=2))
            tmp.replace(self.record)
        else:
            self.record.unlink(missing_ok=True)

    def install(self) -> None:
        """Heal on interpreter exit, SIGTERM and SIGINT (then let them proceed)."""
        if self._installed:
            return
        self._installed = True
        atexit.register(self.heal_all)
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.warning("signal %d: healing %d live fault(s)", signum, len(self.live()))
        self.heal_all()
        FaultRegistry.received_signal = signum
        # Both stop the run the same way: pytest ends the session on
        # KeyboardInterrupt (healing, recording what was measured), whereas
        # SystemExit inside a test would only fail that test and go on.
        raise KeyboardInterrupt(f"signal {signum}")

    def uninstall(self) -> None:
        for signum, previous in self._previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signum, previous)
        self._previous.clear()
        atexit.unregister(self.heal_all)
        self._installed = False


@dataclass
class Endpoint:
    """Where users reach the platform, and as whom the probes log in."""

    base_url: str
    database: str
    login: str
    password: SecretStr


class Platform(ABC):
    """One place faults can be injected: the local stack, kind, a cluster."""

    name: str = ""

    def __init__(self) -> None:
        self.registry = FaultRegistry()
        self.events: list[Event] = []

    def event(self, source: str, text: str) -> Event:
        item = Event(source, text)
        self.events.append(item)
        log.info("%s: %s", source, text)
        return item

    @abstractmethod
    def endpoint(self) -> Endpoint:
        """The URL and credentials probes use."""

    @abstractmethod
    def ensure_up(self) -> None:
        """Bring the platform to a usable state (start it if this platform can)."""

    @abstractmethod
    def wait_steady(self, timeout_s: float) -> float:
        """Wait for steady state; return seconds waited, or raise ComponentError."""

    @abstractmethod
    def database_primary(self) -> str:
        """The node that holds the database primary now."""

    @abstractmethod
    def inject(self, kind: str, target: str) -> FaultHandle:
        """Inject fault `kind` on `target`; registered before it acts."""

    @abstractmethod
    def plan(self, kind: str, target: str) -> str:
        """What `kind` on `target` would hit now, without touching anything."""

    @abstractmethod
    def observe(self) -> None:
        """Record what changed on the platform since the last call, as events."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Platform, topology and settings for the results (no secrets)."""

    @abstractmethod
    def secrets(self) -> list[str]:
        """Secret values this platform knows, so outputs can be checked and redacted."""

    def heal_all(self) -> list[str]:
        return self.registry.heal_all()

    def log_marks(self) -> dict[str, int]:
        """Where each component's log stands now (see ``component_logs``)."""
        return {}

    def component_logs(self, marks: dict[str, int]) -> list[LogText]:
        """What the components logged since ``marks``, as short excerpts for
        the evidence; empty where the platform cannot read its logs."""
        return []

    def run_fault(
        self,
        kind: str,
        what: str,
        act: Callable[[UndoLog], None],
        undo: Callable[[list[dict[str, Any]]], None],
    ) -> FaultHandle:
        """Register a fault, then act; `act` adds each undo step before the
        change it undoes, and `undo` replays them (newest first) to heal."""
        steps = UndoLog(self.registry.save)
        handle = FaultHandle(kind, what, lambda: undo(steps), {"undo": steps})
        self.registry.add(handle)
        try:
            act(steps)
        finally:
            self.registry.save()
        self.event("fault", f"{kind.replace('_', ' ')}: {what}")
        return handle

    @abstractmethod
    def acquire(self) -> None:
        """Take the platform for this run; raise if another run holds it."""

    @abstractmethod
    def release(self) -> None:
        """Give the platform back (also done by the process exiting)."""

    def heal_leftovers(self) -> list[str]:
        """Heal faults a killed run left live (from the registry's record)."""
        return []

    def take(self) -> list[str]:
        """Take the platform for a run: hold it, heal on signals and exit,
        heal what a killed run left (returned, to be said), bring it up. A
        failure on the way gives the platform back before it propagates."""
        self.acquire()
        try:
            self.registry.install()
            healed = self.heal_leftovers()
            for line in healed:
                log.warning("healed a fault a previous run left behind: %s", line)
            self.ensure_up()
        except BaseException:
            self.release()
            raise
        return healed
