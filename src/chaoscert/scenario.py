"""One scenario's run: traffic, a fault, recovery, and the verdict per workflow.

Steps, the CLI and other front ends drive a ScenarioRun; it owns the probes,
the live fault and the measurements, so the logic lives here once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from chaoscert import slo
from chaoscert.config import SloConfig
from chaoscert.errors import ChaoscertError
from chaoscert.platforms.base import FaultHandle, Platform
from chaoscert.probes.engine import ProbeSession
from chaoscert.probes.ledger import LedgerCheck
from chaoscert.probes.samples import Sample
from chaoscert.probes.workflows import get_workflow
from chaoscert.results import (
    EventResult,
    FaultResult,
    LogExcerpt,
    RunWriter,
    ScenarioResult,
    Status,
    probe_settings,
    workflow_result,
)

log = logging.getLogger("chaoscert.scenario")

OBSERVE_INTERVAL_S = 0.5
# A workflow counts as available again after this many successes in a row.
RECOVERED_AFTER_SUCCESSES = 5
# After recovery, traffic goes on this long so that a relapse (a healed node
# rejoining, a second failover) is measured and judged too.
SETTLE_AFTER_RECOVERY_S = 10.0

# What a scenario is doing now, for displays (ScenarioRun.phase, on_change).
Phase = Literal[
    "starting",
    "steady state",
    "baseline",
    "injecting",
    "fault injected",
    "healed",
    "recovering",
    "measuring",
    "verdict",
    "teardown",
]


@dataclass
class ProbeOptions:
    rate_hz: float = 10.0
    timeout_s: float = 2.0
    max_in_flight: int = 64
    rates_hz: dict[str, float] = field(default_factory=dict)

    def rate_of(self, workflow: str) -> float:
        return self.rates_hz.get(workflow, self.rate_hz)

    @classmethod
    def for_slo(
        cls, slo_config: SloConfig, rate_hz: float, timeout_s: float
    ) -> ProbeOptions:
        """`rate_hz` for every workflow whose tier sets no rate of its own."""
        tier_rates = {
            workflow: tier.probe_rate_hz
            for workflow in slo_config.workflows
            if (tier := slo_config.tier_of(workflow)).probe_rate_hz is not None
        }
        return cls(rate_hz=rate_hz, timeout_s=timeout_s, rates_hz=tier_rates)


def start_run(
    reports_dir: Path,
    platform: Platform,
    slo_config: SloConfig,
    options: ProbeOptions,
    run_id: str | None = None,
    driver: str | None = None,
) -> RunWriter:
    """The writer of a new run directory, describing the platform and probes."""
    described = platform.describe()
    rates = {w: options.rate_of(w) for w in slo_config.workflows}
    return RunWriter.start(
        reports_dir,
        platform=platform.name,
        topology=str(described.get("topology", "")),
        probe=probe_settings(rates, options.timeout_s),
        tiers=slo_config.tiers.values(),
        run_id=run_id,
        platform_note=str(described.get("note", "")),
        environment={**described, **({"driver": driver} if driver else {})},
    )


class ScenarioRun:
    """The state of one scenario, from steady state to verdict."""

    def __init__(
        self,
        platform: Platform,
        slo_config: SloConfig,
        probe_options: ProbeOptions,
        feature: str = "",
        name: str = "",
        tags: list[str] | None = None,
    ):
        self.platform = platform
        self.slo = slo_config
        self.options = probe_options
        self.feature = feature
        self.name = name
        self.tags = tags or []
        self.started_mono = time.monotonic()
        self.first_event = len(platform.events)
        self.log_marks = self._log_marks()
        self.probes: ProbeSession | None = None
        self.workflows: list[str] = []
        self.faults: list[FaultHandle] = []
        self.samples: dict[str, list[Sample]] = {}
        self.ledger: dict[str, LedgerCheck] = {}
        self.verdicts: dict[str, slo.WorkflowVerdict] = {}
        self._observer: threading.Thread | None = None
        self._observing = threading.Event()
        self.phase: Phase = "starting"
        self.phase_note = ""  # e.g. the fault being injected
        # Called on the scenario's thread after each phase change; a display
        # reads the rest (probes, faults, verdicts) from this object.
        self.on_change: Callable[[Phase], None] | None = None

    def set_phase(self, phase: Phase, note: str = "") -> None:
        """Enter `phase` and tell the observer; its failures never stop the run."""
        self.phase, self.phase_note = phase, note
        if self.on_change is None:
            return
        try:
            self.on_change(phase)
        except Exception as exc:  # a display must not break a scenario
            log.debug("phase observer failed on %s: %r", phase, exc)

    def _log_marks(self) -> dict[str, int]:
        try:
            return self.platform.log_marks()
        except (ChaoscertError, OSError) as exc:
            log.debug("log marks: %s", exc)
            return {}

    def _component_logs(self) -> list[LogExcerpt]:
        try:
            texts = self.platform.component_logs(self.log_marks)
        except (ChaoscertError, OSError) as exc:
            log.debug("component logs: %s", exc)
            return []
        return [
            LogExcerpt(
                component=t.component,
                source=t.source,
                lines=list(t.lines),
                omitted=t.omitted,
            )
            for t in texts
        ]

    # -- traffic -----------------------------------------------------------------
    def start_traffic(self, workflows: list[str]) -> None:
        """Start probing `workflows`, each at its configured rate."""
        for workflow in workflows:
            self.slo.tier_of(workflow)
        endpoint = self.platform.endpoint()
        self.workflows = list(workflows)
        self.probes = ProbeSession.at(
            endpoint,
            self.workflows,
            rate_hz={w: self.options.rate_of(w) for w in self.workflows},
            timeout_s=self.options.timeout_s,
            max_in_flight=self.options.max_in_flight,
        )
        self.probes.prepare()
        self.probes.start()
        self._start_observing()
        self.set_phase("baseline")

    def scale_rate(self, workflow: str, factor: float) -> None:
        """Run `workflow` at `factor` times its configured rate from now on."""
        assert self.probes is not None, "traffic was not started"
        rate_hz = self.options.rate_of(workflow) * factor
        self.probes.set_rate(workflow, rate_hz)
        self.platform.event(
            "probes", f"{slo.workflow_label(workflow)} now at {rate_hz:g} per second"
        )

    def wait_steady(self, timeout_s: float) -> None:
        """Wait for the platform's steady state, at most `timeout_s`."""
        self.set_phase("steady state")
        self.platform.wait_steady(timeout_s)

    def run_for(self, seconds: float) -> None:
        """Let traffic (and any fault) run for `seconds`."""
        time.sleep(seconds)

    def _start_observing(self) -> None:
        self._observing.set()

        def observe() -> None:
            while self._observing.is_set():
                try:
                    self.platform.observe()
                except ChaoscertError as exc:
                    log.debug("observation failed: %s", exc)
                time.sleep(OBSERVE_INTERVAL_S)

        self._observer = threading.Thread(
            target=observe, name="chaoscert-observe", daemon=True
        )
        self._observer.start()

    def _stop_observing(self) -> None:
        self._observing.clear()
        if self._observer:
            self._observer.join(OBSERVE_INTERVAL_S + 5)

    # -- faults ------------------------------------------------------------------
    @property
    def fault(self) -> FaultHandle | None:
        """The scenario's first fault: recovery is measured from its injection."""
        return self.faults[0] if self.faults else None

    def inject(self, kind: str, target: str = "") -> FaultHandle:
        self.set_phase("injecting", f"{kind} on {target}" if target else kind)
        handle = self.platform.inject(kind, target)
        self.faults.append(handle)
        self.set_phase("fault injected")
        return handle

    def stall_replication_then_crash_primary(self, stall_s: float) -> None:
        """Force the condition that exposes unreplicated commits: the primary
        stops sending WAL for `stall_s` while writes go on, then its node
        crashes. Asynchronous replication acknowledges those commits anyway and
        loses them; synchronous or quorum commit makes them wait instead."""
        stall = self.inject("replication_stall")
        self.run_for(stall_s)
        self.inject("database_primary_crash")
        stall.heal()
        self.platform.event("fault", f"{stall.kind} on {stall.target} healed")

    def heal(self) -> None:
        """Heal every fault of the scenario, newest first."""
        for handle in reversed(self.faults):
            if not handle.healed:
                handle.heal()
                self.platform.event("fault", f"{handle.kind} on {handle.target} healed")
        self.set_phase("healed")

    # -- recovery ----------------------------------------------------------------
    def wait_available(self, timeout_s: float) -> dict[str, float]:
        """Wait until every workflow has succeeded RECOVERED_AFTER_SUCCESSES times in
        a row, then keep measuring SETTLE_AFTER_RECOVERY_S; return seconds waited
        per workflow. Raise naming those that did not recover."""
        assert self.probes is not None, "traffic was not started"
        self.set_phase("recovering")
        started = time.monotonic()
        waited: dict[str, float] = {}
        deadline = started + timeout_s
        while time.monotonic() < deadline and len(waited) < len(self.workflows):
            for workflow in self.workflows:
                if workflow in waited:
                    continue
                tail = self.probes.samples(workflow)[-RECOVERED_AFTER_SUCCESSES:]
                if len(tail) == RECOVERED_AFTER_SUCCESSES and all(s.ok for s in tail):
                    waited[workflow] = time.monotonic() - started
            time.sleep(0.2)
        missing = [w for w in self.workflows if w not in waited]
        if missing:
            names = ", ".join(slo.workflow_label(w) for w in missing)
            raise AssertionError(
                f"{names} not available again within {timeout_s:.0f} s of asking"
            )
        self.run_for(SETTLE_AFTER_RECOVERY_S)
        return waited

    # -- measurement ---------------------------------------------------------------
    def finish_measurement(
        self, verify_timeout_s: float = 90.0
    ) -> dict[str, slo.WorkflowVerdict]:
        """Stop traffic, read every acknowledged write back, judge each workflow."""
        if self.verdicts:
            return self.verdicts
        if self.probes is None:
            raise AssertionError("no traffic was measured in this scenario")
        self.set_phase("measuring")
        self.samples = self.probes.stop()
        self._stop_observing()
        self.ledger = self.probes.verify_writes(verify_timeout_s)
        injected = self.fault.injected_mono if self.fault else None
        for workflow in self.workflows:
            check = self.ledger.get(workflow)
            self.verdicts[workflow] = slo.judge(
                workflow,
                self.samples.get(workflow, []),
                self.slo.tier_of(workflow),
                injected,
                list(check.lost) if check else 0,
                1.0 / self.options.rate_of(workflow),
            )
        self.set_phase("verdict")
        return self.verdicts

    def failures(self) -> list[str]:
        return [reason for v in self.verdicts.values() for reason in v.reasons]

    # -- assertions (their messages are report text) ---------------------------------
    def assert_baseline(self, seconds: float) -> None:
        """Every workflow succeeded throughout the last `seconds` before any fault."""
        assert self.probes is not None, "traffic was not started"
        self.set_phase("baseline")
        since = time.monotonic() - seconds
        # Attempts still waiting for an answer count too: let them end first.
        time.sleep(self.options.timeout_s)
        for workflow in self.workflows:
            recent = [
                s
                for s in self.probes.samples(workflow)
                if since <= s.start_mono <= since + seconds
            ]
            failed = [s for s in recent if not s.ok]
            if not recent or failed:
                first = f": {failed[0].error_kind} {failed[0].error}" if failed else ""
                raise AssertionError(
                    f"before any fault, {slo.workflow_label(workflow)} had"
                    f" {len(failed)} failed of {len(recent)} attempts in {seconds:g} s"
                    f"{first}; the platform is not in steady state"
                )

    def assert_no_lost_writes(self, workflow: str | None = None) -> None:
        """No acknowledged write of `workflow` (default: of any workflow) is lost."""
        if workflow is not None and workflow not in self.ledger:
            raise AssertionError(f"{slo.workflow_label(workflow)} keeps no ledger")
        lost = []
        for name, check in self.ledger.items():
            if check.lost and workflow in (None, name):
                shown = ", ".join(str(i) for i in check.lost[:10])
                lost.append(
                    f"{len(check.lost)} of {check.acknowledged} acknowledged"
                    f" {slo.workflow_label(name)} writes were lost (ids {shown})"
                )
        if lost:
            raise AssertionError("; ".join(lost))

    def assert_max_outage(self, limit_s: float) -> None:
        over = [
            f"{slo.workflow_label(w)} was down for {v.figures.max_outage_s:.1f} s"
            for w, v in self.verdicts.items()
            if v.figures.max_outage_s > limit_s
        ]
        if over:
            raise AssertionError(
                "; ".join(over) + f" (expected no outage over {limit_s:g} s)"
            )

    def assert_platform_recovers(self, timeout_s: float) -> None:
        """Heal every live fault and wait for steady state within `timeout_s`."""
        self.set_phase("steady state")
        errors = self.platform.heal_all()
        if errors:
            raise AssertionError("; ".join(errors))
        try:
            seconds = self.platform.wait_steady(timeout_s)
        except ChaoscertError as exc:
            raise AssertionError(f"the platform did not recover: {exc}") from None
        self.platform.event("platform", f"steady state again after {seconds:.1f} s")

    def assert_tiers_met(self) -> None:
        reasons = self.failures()
        if reasons:
            raise AssertionError("; ".join(reasons))

    # -- teardown ------------------------------------------------------------------
    def close(self) -> list[str]:
        """Heal what is live and stop traffic; return heal errors (also on failure)."""
        errors = self.platform.heal_all()
        self._stop_observing()
        if self.probes is not None:
            if not self.samples:
                try:
                    self.samples = self.probes.stop()
                except ChaoscertError as exc:
                    log.warning("stopping probes: %s", exc)
            self.probes.close()
        return errors

    def result(self, status: Status, error: str | None = None) -> ScenarioResult:
        fault = None
        if self.fault is not None:
            # The fault window runs from the first injection to the last heal.
            last = max(self.faults, key=lambda h: h.healed_mono or float("inf"))
            healed = all(h.healed for h in self.faults)
            fault = FaultResult(
                kind=self.fault.kind,
                target=self.fault.target,
                injected_at=self.fault.injected_at,
                healed_at=last.healed_at if healed else None,
                injected_mono=self.fault.injected_mono,
                healed_mono=last.healed_mono if healed else None,
                details={
                    **self.fault.details,
                    "together_with": [
                        f"{h.kind} on {h.target}" for h in self.faults[1:]
                    ],
                },
                heal_error=self.fault.heal_error,
            )
        events = [
            EventResult(
                at=event.at, mono=event.mono, source=event.source, text=event.text
            )
            for event in self.platform.events[self.first_event :]
        ]
        return ScenarioResult(
            feature=self.feature,
            name=self.name,
            status=status,
            tags=self.tags,
            fault=fault,
            workflows=[
                workflow_result(
                    verdict,
                    self.ledger[w].acknowledged if w in self.ledger else 0,
                    writes=get_workflow(w).write_model is not None,
                )
                for w, verdict in self.verdicts.items()
            ],
            events=events,
            logs=self._component_logs(),
            error=error,
            started_mono=self.started_mono,
            duration_s=time.monotonic() - self.started_mono,
        )

    def all_samples(self) -> list[Sample]:
        return [s for samples in self.samples.values() for s in samples]
