"""The probe engine: workflows on a fixed schedule, from synchronous code.

A :class:`ProbeSession` runs its own asyncio loop in a background thread, so
pytest steps, the CLI and Chaos Toolkit activities drive it with plain calls::

    with ProbeSession(url, "prod", "probe", secret, ["dispatch"], rate_hz=10) as s:
        s.prepare()
        s.start()
        ...  # inject and heal a fault
        samples = s.stop()
        checks = s.verify_writes()

Attempt k of a workflow is scheduled at ``t0 + k / rate_hz`` (monotonic) and
starts then whether or not earlier attempts finished; each is bounded by
``timeout_s`` on the client side, so a hung server never stalls the schedule.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from pydantic import SecretStr
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_fixed,
)

from chaoscert.errors import (
    ChaoscertError,
    ComponentError,
    OdooError,
    SessionExpired,
    TransportError,
)
from chaoscert.odoo import OdooClient
from chaoscert.probes.ledger import Ledger, LedgerCheck, verify
from chaoscert.probes.samples import Sample
from chaoscert.probes.workflows import Workflow, WorkflowFailed, get_workflow

if TYPE_CHECKING:
    from chaoscert.platforms.base import Endpoint

log = logging.getLogger("chaoscert.probes")

T = TypeVar("T")

# Extra seconds a synchronous call waits for the loop beyond its own bound.
LOOP_GRACE_S = 2.0
ERROR_CHARS = 200
KEEPALIVE_EXPIRY_S = 1.5
# Reading back 200 ids right after a recovery may be slower than one attempt.
VERIFY_REQUEST_TIMEOUT_S = 10.0
# Preparing a workflow is tried again for this long after a failure.
PREPARE_RETRY_S = 10.0
PREPARE_RETRY_WAIT_S = 0.5


@dataclass(slots=True)
class Tally:
    """Counts of one workflow's finished attempts, kept as they finish, for
    displays; the SLO figures come from the samples, not from here.

    ``latest_*`` describe the newest attempt by schedule that has finished;
    ``since_mono`` is the start of the attempt that began its current up or
    down state. ``ok`` is the probe's outcome: a slow success counts as ok.
    """

    samples: int = 0
    failed: int = 0
    latest_seq: int = 0
    latest_ok: bool | None = None
    latest_error_kind: str = ""
    latest_error: str = ""
    since_mono: float | None = None

    def add(self, sample: Sample) -> None:
        self.samples += 1
        if not sample.ok:
            self.failed += 1
        if sample.seq < self.latest_seq:
            return  # finished after newer attempts: not the current state
        if sample.ok != self.latest_ok:
            self.since_mono = sample.start_mono
        self.latest_seq = sample.seq
        self.latest_ok = sample.ok
        self.latest_error_kind = sample.error_kind
        self.latest_error = sample.error

    @property
    def success_pct(self) -> float | None:
        """Finished attempts that succeeded, in percent; None before any."""
        if not self.samples:
            return None
        return 100.0 * (self.samples - self.failed) / self.samples


@dataclass(eq=False)
class _Probe:
    """One workflow's schedule, client and results; touched only on the loop."""

    workflow: Workflow
    client: OdooClient
    http: httpx.AsyncClient
    rate_hz: float
    seq: int = 0
    slipped: int = 0
    last_slot_mono: float = 0.0
    scheduler: asyncio.Task[None] | None = None
    in_flight: set[asyncio.Task[None]] = field(default_factory=set)
    samples: list[Sample] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)

    @property
    def name(self) -> str:
        return self.workflow.name


class ProbeSession:
    """Probes for several workflows against one Odoo, each with its own session.

    ``rate_hz`` is attempts per second, for all workflows or per workflow;
    ``timeout_s`` bounds each attempt (and each request in it); at most
    ``max_in_flight`` attempts of one workflow run at once.
    """

    def __init__(
        self,
        base_url: str,
        db: str,
        login: str,
        password: str | SecretStr,
        workflows: Sequence[str],
        rate_hz: float | Mapping[str, float] = 10.0,
        timeout_s: float = 2.0,
        max_in_flight: int = 64,
    ) -> None:
        if not workflows:
            raise ValueError("at least one workflow is needed")
        if timeout_s <= 0 or max_in_flight < 1:
            raise ValueError("timeout_s must be positive and max_in_flight >= 1")
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.max_in_flight = max_in_flight
        self.ledger = Ledger()
        self._samples_lock = threading.Lock()
        self._prepared = False
        self._running = False
        self._closed = False
        chosen = [get_workflow(name) for name in dict.fromkeys(workflows)]
        rates = {
            flow.name: rate_hz.get(flow.name, 0.0)
            if isinstance(rate_hz, Mapping)
            else rate_hz
            for flow in chosen
        }
        for name, rate in rates.items():
            _check_rate(name, rate)

        self._probes: dict[str, _Probe] = {}
        for flow in chosen:
            http = self._new_http(flow.name)
            client = OdooClient(
                http, base_url, db, login, password, timeout_s=timeout_s
            )
            self._probes[flow.name] = _Probe(
                flow, client, http, float(rates[flow.name])
            )

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="chaoscert-probes", daemon=True
        )
        self._thread.start()

    @classmethod
    def at(
        cls,
        endpoint: Endpoint,
        workflows: Sequence[str],
        rate_hz: float | Mapping[str, float] = 10.0,
        timeout_s: float = 2.0,
        max_in_flight: int = 64,
    ) -> ProbeSession:
        """Probes for ``workflows`` where a platform's users come in."""
        return cls(
            endpoint.base_url,
            endpoint.database,
            endpoint.login,
            endpoint.password,
            workflows,
            rate_hz=rate_hz,
            timeout_s=timeout_s,
            max_in_flight=max_in_flight,
        )

    def __repr__(self) -> str:
        return (
            f"ProbeSession(base_url={self.base_url!r},"
            f" workflows={list(self._probes)!r}, running={self._running})"
        )

    def __enter__(self) -> ProbeSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def prepare(self, timeout_s: float = 30.0) -> None:
        """Resolve what each workflow needs through the API, within ``timeout_s``."""
        self._run(self._prepare_all(), timeout_s, "preparing the probes")
        self._prepared = True
        log.info("probes prepared: %s", ", ".join(self._probes))

    def start(self) -> None:
        """Start every workflow's schedule (preparing first if not yet done)."""
        if self._running:
            raise RuntimeError("probes are already running")
        if not self._prepared:
            self.prepare()
        self._run(self._start_all(), LOOP_GRACE_S, "starting the probes")
        self._running = True
        rates = ", ".join(
            f"{p.name} at {p.rate_hz:g} Hz" for p in self._probes.values()
        )
        log.info(
            "probes started: %s (timeout %g s, at most %d in flight each)",
            rates,
            self.timeout_s,
            self.max_in_flight,
        )

    def set_rate(self, workflow: str, rate_hz: float) -> None:
        """Change one workflow's rate; the new schedule starts one new interval on."""
        probe = self._probe(workflow)
        _check_rate(workflow, rate_hz)
        self._run(self._set_rate(probe, float(rate_hz)), LOOP_GRACE_S, "changing rate")
        log.info("probe %s now at %g Hz", workflow, rate_hz)

    def stop(self) -> dict[str, list[Sample]]:
        """Stop scheduling, wait (bounded) for attempts in flight, return samples."""
        if self._running:
            bound_s = self.timeout_s + LOOP_GRACE_S
            self._run(self._stop_all(bound_s), bound_s + LOOP_GRACE_S, "stopping")
            self._running = False
            for probe in self._probes.values():
                samples = self.samples(probe.name)
                log.info(
                    "probe %s stopped: %d samples, %d failed, %d slots slipped,"
                    " %d writes acknowledged",
                    probe.name,
                    len(samples),
                    sum(not sample.ok for sample in samples),
                    probe.slipped,
                    len(self.ledger.ids(probe.name)),
                )
        return {name: self.samples(name) for name in self._probes}

    def samples(self, workflow: str) -> list[Sample]:
        """A snapshot of ``workflow``'s samples so far, in start order."""
        probe = self._probe(workflow)
        with self._samples_lock:
            return sorted(probe.samples, key=lambda sample: sample.seq)

    def tally(self, workflow: str) -> Tally:
        """``workflow``'s counts so far, without copying its samples; any thread."""
        probe = self._probe(workflow)
        with self._samples_lock:
            return replace(probe.tally)

    @property
    def slipped(self) -> dict[str, int]:
        """Per workflow, schedule slots skipped because the loop fell behind."""
        return {name: probe.slipped for name, probe in self._probes.items()}

    def verify_writes(self, timeout_s: float = 60.0) -> dict[str, LedgerCheck]:
        """Read every acknowledged write back; a missing one is reported lost."""
        checks = self._run(self._verify_all(timeout_s), timeout_s, "verifying writes")
        for name, check in checks.items():
            log.info(
                "writes of %s: %d acknowledged, %d read back, %d lost",
                name,
                check.acknowledged,
                check.verified,
                len(check.lost),
            )
        return checks

    def close(self) -> None:
        """Stop the probes, close connections and the loop; safe to call twice."""
        if self._closed:
            return
        try:
            self.stop()
            self._run(self._close_http(), LOOP_GRACE_S, "closing connections")
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(LOOP_GRACE_S)
            if not self._thread.is_alive():
                self._loop.close()

    def _new_http(self, workflow: str) -> httpx.AsyncClient:
        # One pool per workflow, sized to its attempts in flight: a workflow
        # whose attempts hang cannot starve another one of connections. Idle
        # connections are dropped before gunicorn's 2 s keep-alive would drop
        # them, so a race with the server's close is not counted as an outage.
        limits = httpx.Limits(
            max_connections=self.max_in_flight,
            max_keepalive_connections=self.max_in_flight,
            keepalive_expiry=KEEPALIVE_EXPIRY_S,
        )
        return httpx.AsyncClient(
            limits=limits,
            timeout=httpx.Timeout(self.timeout_s),
            headers={"User-Agent": f"chaoscert-probe/{workflow}"},
        )

    def _probe(self, workflow: str) -> _Probe:
        try:
            return self._probes[workflow]
        except KeyError:
            raise ValueError(f"no probe for workflow {workflow!r}") from None

    def _run(self, coro: Coroutine[Any, Any, T], timeout_s: float, what: str) -> T:
        """Run ``coro`` on the probe loop within ``timeout_s``, from this thread."""
        if self._closed:
            coro.close()
            raise RuntimeError("the probe session is closed")
        future = asyncio.run_coroutine_threadsafe(
            asyncio.wait_for(coro, timeout_s), self._loop
        )
        try:
            return future.result(timeout_s + LOOP_GRACE_S)
        except (TimeoutError, concurrent.futures.TimeoutError):
            future.cancel()
            raise ComponentError(
                f"{what} did not finish within {timeout_s:g} s", component="odoo"
            ) from None

    async def _prepare_all(self) -> None:
        await asyncio.gather(*(self._prepare(p) for p in self._probes.values()))

    async def _prepare(self, probe: _Probe) -> None:
        # Preparing measures nothing, so a passing failure is tried again: an
        # app's first query after a failover may meet its dead database
        # connection ("server closed the connection unexpectedly").
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type((OdooError, TransportError)),
            stop=stop_after_delay(PREPARE_RETRY_S),
            wait=wait_fixed(PREPARE_RETRY_WAIT_S),
            reraise=True,
        ):
            with attempt:
                await probe.workflow.prepare(probe.client)

    async def _start_all(self) -> None:
        now = time.monotonic()
        for probe in self._probes.values():
            probe.scheduler = self._loop.create_task(self._schedule(probe, now))

    async def _set_rate(self, probe: _Probe, rate_hz: float) -> None:
        probe.rate_hz = rate_hz
        if probe.scheduler is None:
            return
        probe.scheduler.cancel()
        first = max(time.monotonic(), probe.last_slot_mono + 1.0 / rate_hz)
        probe.scheduler = self._loop.create_task(self._schedule(probe, first))

    async def _schedule(self, probe: _Probe, first_mono: float) -> None:
        interval_s = 1.0 / probe.rate_hz
        k = 0
        while True:
            delay_s = first_mono + k * interval_s - time.monotonic()
            if delay_s > 0:
                await asyncio.sleep(delay_s)

            # If the loop was blocked past later slots, start only the latest
            # due one and count the rest as slipped: bursting to catch up would
            # bunch attempts at one instant and claim coverage of a period
            # nobody probed; the gap is the probe's, not the server's.
            due = int((time.monotonic() - first_mono) / interval_s)
            if due > k:
                probe.slipped += due - k
                k = due
            slot_mono = first_mono + k * interval_s
            self._launch(probe, slot_mono)
            probe.last_slot_mono = slot_mono
            k += 1

    def _launch(self, probe: _Probe, slot_mono: float) -> None:
        probe.seq += 1
        if len(probe.in_flight) >= self.max_in_flight:
            # Never queue: waiting for a free place would shift every later
            # attempt off its slot and measure the probe's queue, not the server.
            # The slot is recorded as failed at once so each slot has a sample.
            now = time.monotonic()
            self._keep(
                Sample(
                    workflow=probe.name,
                    seq=probe.seq,
                    scheduled_mono=slot_mono,
                    start_mono=now,
                    end_mono=now,
                    start_wall=time.time(),
                    ok=False,
                    error_kind="saturated",
                    error=f"{len(probe.in_flight)} attempts already in flight",
                ),
                probe,
            )
            return
        task = self._loop.create_task(self._attempt(probe, probe.seq, slot_mono))
        probe.in_flight.add(task)
        task.add_done_callback(probe.in_flight.discard)

    async def _attempt(self, probe: _Probe, seq: int, slot_mono: float) -> None:
        now = time.monotonic()
        sample = Sample(probe.name, seq, slot_mono, now, now, time.time(), ok=False)
        try:
            write_id = await asyncio.wait_for(
                probe.workflow.attempt(probe.client), self.timeout_s
            )
        except TimeoutError:
            error = f"no outcome within {self.timeout_s:g} s"
            self._finish(probe, sample, kind="timeout", error=error)
        except asyncio.CancelledError:
            error = "still running when the probes stopped"
            self._finish(probe, sample, kind="cancelled", error=error)
            raise
        except Exception as exc:  # a probe must outlive any failure of one attempt
            kind, error = _classify(exc)
            if kind == "internal":
                log.exception(
                    "probe %s attempt %d failed unexpectedly", probe.name, seq
                )
            self._finish(probe, sample, kind=kind, error=error)
        else:
            self._finish(probe, sample, write_id=write_id)

    def _finish(
        self,
        probe: _Probe,
        sample: Sample,
        *,
        kind: str = "",
        error: str = "",
        write_id: int | None = None,
    ) -> None:
        sample.end_mono = time.monotonic()
        sample.ok = not kind
        sample.error_kind = kind
        sample.error = error[:ERROR_CHARS]
        sample.write_id = write_id
        self._keep(sample, probe)
        if write_id is not None and sample.ok:
            self.ledger.record(probe.name, write_id)

    def _keep(self, sample: Sample, probe: _Probe) -> None:
        with self._samples_lock:
            probe.samples.append(sample)
            probe.tally.add(sample)

    async def _stop_all(self, bound_s: float) -> None:
        for probe in self._probes.values():
            if probe.scheduler is not None:
                probe.scheduler.cancel()
                probe.scheduler = None
        pending = {task for probe in self._probes.values() for task in probe.in_flight}
        if pending:
            _, late = await asyncio.wait(pending, timeout=bound_s)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=LOOP_GRACE_S)

    async def _verify_all(self, timeout_s: float) -> dict[str, LedgerCheck]:
        checks: dict[str, LedgerCheck] = {}
        for name, probe in self._probes.items():
            model = probe.workflow.write_model
            ids = self.ledger.ids(name)
            if model is None or not ids:
                checks[name] = LedgerCheck(acknowledged=len(ids), verified=len(ids))
                continue
            request_timeout_s = max(self.timeout_s, VERIFY_REQUEST_TIMEOUT_S)
            checks[name] = await verify(
                probe.client,
                model,
                ids,
                timeout_s=request_timeout_s,
                states=probe.workflow.acknowledged_states,
            )
        return checks

    async def _close_http(self) -> None:
        for probe in self._probes.values():
            probe.client.abandon_exchanges()
            await probe.http.aclose()


def _check_rate(workflow: str, rate_hz: float) -> None:
    if not rate_hz > 0:
        raise ValueError(f"rate of workflow {workflow!r} must be > 0 Hz, got {rate_hz}")


def _classify(exc: Exception) -> tuple[str, str]:
    """Error kind and short text of a failed attempt."""
    if isinstance(exc, TransportError):
        return exc.kind, str(exc)
    if isinstance(exc, SessionExpired):
        return "session_expired", str(exc)
    if isinstance(exc, OdooError):
        return "jsonrpc", f"{exc.name or 'odoo error'}: {exc}"
    if isinstance(exc, WorkflowFailed):
        return "workflow", str(exc)
    if isinstance(exc, ChaoscertError):
        return "probe", str(exc)
    return "internal", f"{type(exc).__name__}: {exc}"
