"""Chaos Toolkit probes: workflow traffic, measurements and verdicts.

`start_workflow_traffic` starts the probes of the business workflows,
`workflows_available_again` waits for recovery, `stop_workflow_traffic`
stops them and returns the measurement (and writes a chaoscert run
directory). The boolean probes are for a steady-state hypothesis with
`tolerance: true`: `workflows_available` (a short burst of traffic now),
`workflows_meet_tiers`, `no_acknowledged_write_lost` and
`no_outage_longer_than` (on the last measured scenario; before any
measurement they hold, having nothing to judge). Configuration and secrets
are read as in chaoscert.ctk.actions.
"""

from __future__ import annotations

import logging
from typing import Any

from chaoscert.ctk.session import session
from chaoscert.slo import workflow_label

__all__ = [
    "no_acknowledged_write_lost",
    "no_outage_longer_than",
    "start_workflow_traffic",
    "stop_workflow_traffic",
    "workflows_available",
    "workflows_available_again",
    "workflows_meet_tiers",
]

log = logging.getLogger("chaoscert.ctk")

Configuration = dict[str, Any] | None
Secrets = dict[str, Any] | None


def start_workflow_traffic(
    scenario: str,
    family: str = "",
    workflows: list[str] | None = None,
    steady_within_s: float = 120.0,
    baseline_s: float = 5.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Wait (at most `steady_within_s`) for steady state, start probing
    `workflows` (default: every workflow of the SLO file) at their tiers'
    rates, and check `baseline_s` seconds of clean traffic. `scenario` names
    the scenario in the results and report; `family` is its catalogue family."""
    ctk = session(configuration, secrets)
    chosen = list(workflows or ctk.slo.workflows)
    ctk.platform.wait_steady(float(steady_within_s))
    run = ctk.start_scenario(scenario, family, chosen)
    if float(baseline_s) > 0:
        run.run_for(float(baseline_s))
        run.assert_baseline(float(baseline_s))
    return {
        "scenario": scenario,
        "rates_hz": {w: run.options.rate_of(w) for w in chosen},
    }


def workflows_available_again(
    within_s: float = 60.0, configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, float]:
    """Wait until every probed workflow succeeds 5 times in a row, at most
    `within_s` seconds, then measure 10 s more; returns the seconds waited per
    workflow. Fails naming the workflows that did not recover."""
    run = session(configuration, secrets).current()
    waited = run.wait_available(float(within_s))
    return {workflow: round(seconds, 1) for workflow, seconds in waited.items()}


def stop_workflow_traffic(
    configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Heal what is live, stop the traffic, read every acknowledged write back
    and judge each workflow against its tier. Writes a chaoscert run directory
    (results.json, samples, report.html) and returns the measurement: per
    workflow the verdict, its reasons, max_outage_s, downtime_s (summed),
    samples, failed, acknowledged_writes and lost_writes; run_dir and report;
    and an embedded copy of the results and samples for `chaoscert report`."""
    output = session(configuration, secrets).finish_scenario()
    for name, figures in output["workflows"].items():
        log.info(
            "%s: %s (longest outage %.1f s, %d of %d acknowledged writes lost)",
            workflow_label(name),
            figures["verdict"].upper(),
            figures["max_outage_s"],
            figures["lost_writes"],
            figures["acknowledged_writes"],
        )
    log.info("chaoscert report: %s", output["report"])
    return output


def workflows_available(
    tier: str = "tier1",
    burst_s: float = 2.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> bool:
    """True when every workflow of `tier` answers now: a `burst_s` second burst
    of probe traffic whose last 5 attempts per workflow all succeed."""
    ctk = session(configuration, secrets)
    problems = ctk.unavailable(ctk.tier_workflows(tier), float(burst_s))
    for problem in problems:
        log.warning("not available: %s", problem)
    return not problems


def workflows_meet_tiers(
    workflows: list[str] | None = None,
    tier: str | None = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> bool:
    """True when the last measured scenario kept `workflows` (or those of
    `tier`, default every workflow) within their tiers: outage, summed
    downtime, lost writes, error budget, recovery. True before any measurement."""
    verdicts = session(configuration, secrets).verdicts(workflows, tier)
    if verdicts is None:
        log.info("no scenario measured yet in this run: no tier broken")
        return True
    for verdict in verdicts:
        for reason in verdict.reasons:
            log.warning("tier not met: %s", reason)
    return all(verdict.passed for verdict in verdicts)


def no_acknowledged_write_lost(
    workflows: list[str] | None = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> bool:
    """True when no write acknowledged to `workflows` (default: any) was lost
    in the last measured scenario. True before any measurement."""
    verdicts = session(configuration, secrets).verdicts(workflows, None)
    if verdicts is None:
        return True
    lost = [v.figures for v in verdicts if v.figures.lost_writes]
    for figures in lost:
        log.warning(
            "%d acknowledged %s writes were lost",
            figures.lost_writes,
            workflow_label(figures.workflow),
        )
    return not lost


def no_outage_longer_than(
    limit_s: float,
    workflows: list[str] | None = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> bool:
    """True when no workflow (of `workflows`, default all) was down for more
    than `limit_s` seconds at once in the last measured scenario. True before
    any measurement."""
    verdicts = session(configuration, secrets).verdicts(workflows, None)
    if verdicts is None:
        return True
    over = [v.figures for v in verdicts if v.figures.max_outage_s > float(limit_s)]
    for figures in over:
        log.warning(
            "%s was down for %.1f s (expected no outage over %g s)",
            workflow_label(figures.workflow),
            figures.max_outage_s,
            float(limit_s),
        )
    return not over
