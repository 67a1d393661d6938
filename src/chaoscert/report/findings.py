"""Findings and recommendations, written from what a run measured.

Every finding rests on a figure of this run (an outage, lost writes, a missed
recovery, a thin margin, a regression against earlier runs) and its
recommendation on what the run knows of the platform (its replicas, Patroni's
timing, whether commits are synchronous). A condition that was not measured
gives no finding: there is no generic advice here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from chaoscert.report.phrases import fault_phrase
from chaoscert.results import RunResults, ScenarioResult, WorkflowResult
from chaoscert.slo import human_duration, workflow_label, write_noun

Severity = Literal["critical", "warning", "note"]

# A workflow down for this share of the fault's duration had no stand-in.
WHOLE_FAULT_SHARE = 0.9
WHOLE_FAULT_MIN_S = 10.0
# A pass this close to the limit (share of it) is a warning.
THIN_MARGIN_SHARE = 0.75
# Kubernetes evicts pods from an unreachable node after this by default.
DEFAULT_EVICTION_S = 300.0
EVICTION_SLACK_S = 45.0
FLAPPING_WINDOWS = 5
# Short outages matter once they add up to this share of the limit.
FLAPPING_SHARE = 0.25

_Add = Callable[[Severity, str, str], None]
_SEVERITY_ORDER = {"critical": 0, "warning": 1, "note": 2}
_LEADER_EVENT = re.compile(r"leader changed|new primary|switchover from", re.I)


@dataclass(frozen=True)
class Finding:
    """One thing the run showed (``measured``) and what to do about it."""

    severity: Severity
    scenario_index: int | None
    scenario: str
    measured: str
    recommendation: str

    @property
    def anchor(self) -> str:
        return f"scenario-{self.scenario_index}" if self.scenario_index else ""


def findings_for_run(
    results: RunResults, regressions: Sequence[tuple[int, str, str]] = ()
) -> list[Finding]:
    """The run's findings, most severe first. ``regressions`` holds
    ``(scenario index, sentence, previous run id)`` from the history."""
    context = _Context(results)
    found: list[Finding] = []
    for index, scenario in enumerate(results.scenarios, start=1):
        found += _scenario_findings(index, scenario, context)
    for index, sentence, previous in regressions:
        name = results.scenarios[index - 1].name
        found.append(
            Finding(
                "warning",
                index,
                name,
                sentence,
                f"Compare this run's evidence with run {previous}, the last one"
                " before it: the platform changed between them, or it is"
                " slower now.",
            )
        )
    return sorted(found, key=lambda f: _SEVERITY_ORDER[f.severity])


class _Context:
    """What the run knows of the platform, read from its environment."""

    def __init__(self, results: RunResults):
        env: dict[str, Any] = results.environment
        self.platform = results.platform
        self.topology = results.topology
        self.replicas: dict[str, int] = {
            str(k): int(v)
            for k, v in (env.get("replicas") or {}).items()
            if isinstance(v, int)
        }
        self.patroni: dict[str, Any] = dict(env.get("patroni") or {})
        self.ingress: dict[str, Any] = dict(env.get("ingress") or {})
        database = env.get("database")
        self.flavour = (
            str(database.get("flavour", "")) if isinstance(database, dict) else ""
        )


def _scenario_findings(
    index: int, scenario: ScenarioResult, context: _Context
) -> list[Finding]:
    out: list[Finding] = []

    def add(severity: Severity, measured: str, recommendation: str) -> None:
        out.append(Finding(severity, index, scenario.name, measured, recommendation))

    fault = scenario.fault
    if fault is not None and fault.heal_error:
        add(
            "critical",
            f"The fault {fault.kind} on {fault.target} could not be healed:"
            f" {fault.heal_error}.",
            f"Heal it before anything else: `chaoscert heal --platform"
            f" {context.platform}` replays the undo steps on record; then check"
            " that the platform is in steady state.",
        )
    elif scenario.status == "error" and scenario.error:
        add(
            "warning",
            f"The scenario ended in an error, so its figures are partial:"
            f" {scenario.error}.",
            "Re-run this scenario; the component logs in its evidence show what"
            " the platform was doing when it stopped.",
        )
    if scenario.status not in ("passed", "failed"):
        return out

    when = _when(scenario)
    judged = [w for w in scenario.workflows if w.samples > 0]
    _lost_writes(add, scenario, judged, when, context)
    _not_recovered(add, scenario, judged, when)
    whole = _whole_fault(add, scenario, judged, when, context)
    _over_limit(add, scenario, judged, when, context, skip=whole)
    _thin_margin(add, scenario, judged, when, context)
    _flapping(add, judged, when, context)
    return out


def _lost_writes(
    add: _Add,
    scenario: ScenarioResult,
    judged: list[WorkflowResult],
    when: str,
    context: _Context,
) -> None:
    lost = [w for w in judged if w.lost_writes > w.slo.rpo_writes]
    if not lost:
        return
    parts = [
        f"{w.lost_writes} of {w.acknowledged_writes}"
        f" {write_noun(w.name, w.acknowledged_writes)}"
        for w in lost
    ]
    allowed = sorted({w.slo.rpo_writes for w in lost})
    allows = "none" if allowed == [0] else "at most " + "/".join(map(str, allowed))
    tiers = "its tier allows" if len(lost) == 1 else "their tiers allow"
    measured = (
        f"Acknowledged writes were lost{when}: {', '.join(parts)}; {tiers} {allows}."
    )
    add("critical", measured, _lost_writes_advice(scenario, context))


def _lost_writes_advice(scenario: ScenarioResult, context: _Context) -> str:
    mode = str(context.patroni.get("synchronous_mode", ""))
    if not _database_fault(scenario):
        return (
            "These writes were acknowledged to users and then gone without the"
            " database primary being lost: find where the workflow acknowledges"
            " before its commit is durable."
        )
    if mode == "off":
        return (
            "Replication is asynchronous here (Patroni synchronous_mode off): the"
            " primary acknowledged commits that no standby had received. Turn on"
            " quorum or synchronous commit (Patroni synchronous_mode quorum or on;"
            " CloudNativePG spec.postgresql.synchronous) so that an acknowledged"
            " write survives the loss of the primary."
        )
    if mode:
        lag = context.patroni.get("maximum_lag_on_failover")
        return (
            f"Commits are meant to wait for a standby here (synchronous_mode {mode})"
            " and yet acknowledged writes were lost: check synchronous_commit on"
            " the database and that failover never promotes a standby outside the"
            f" synchronous set (maximum_lag_on_failover {lag})."
        )
    flavour = context.flavour or "the database operator"
    return (
        f"The new primary lacked writes the old one had acknowledged: have"
        f" {flavour} require a synchronous standby for every commit (CloudNativePG"
        " spec.postgresql.synchronous; Patroni synchronous_mode)."
    )


def _not_recovered(
    add: _Add, scenario: ScenarioResult, judged: list[WorkflowResult], when: str
) -> None:
    stuck = [w for w in judged if not w.recovered]
    if not stuck:
        return
    add(
        "critical",
        f"{_names(stuck)} had not recovered when measurement ended{when}.",
        "Healing the fault did not bring everything back: the component logs"
        " and events in this scenario's evidence show what stayed down.",
    )


def _whole_fault(
    add: _Add,
    scenario: ScenarioResult,
    judged: list[WorkflowResult],
    when: str,
    context: _Context,
) -> set[str]:
    fault = scenario.fault
    if fault is None or fault.injected_mono is None or fault.healed_mono is None:
        return set()
    lasted = fault.healed_mono - fault.injected_mono
    if lasted < WHOLE_FAULT_MIN_S:
        return set()
    whole = [w for w in judged if w.max_outage_s >= WHOLE_FAULT_SHARE * lasted]
    if not whole:
        return set()
    failing = any(w.verdict == "fail" for w in whole)
    add(
        "critical" if failing else "warning",
        f"{_names(whole)} {'was' if len(whole) == 1 else 'were'} down for as long"
        f" as the fault lasted ({human_duration(lasted)}){when}: nothing took over"
        f" while {fault.target} was gone.",
        _single_point_advice(scenario, context),
    )
    return {w.name for w in whole}


def _refusal_advice(scenario: ScenarioResult, context: _Context) -> str:
    """Advice when Patroni's log says it refused to promote a lagging
    replica; empty when it does not."""
    refused = _refused_promotion(scenario)
    if not refused:
        return ""
    limit = context.patroni.get("maximum_lag_on_failover")
    setting = (
        f"maximum_lag_on_failover, {limit} bytes here"
        if isinstance(limit, int)
        else "maximum_lag_on_failover"
    )
    synchronous = context.patroni.get("synchronous_mode") in ("on", "quorum")
    trade = (
        "With synchronous commit, the replicas in the quorum already hold"
        " every acknowledged commit: a higher limit lets Patroni promote one"
        " without losing acknowledged writes."
        if synchronous
        else "With asynchronous replication a higher limit trades this outage"
        " for lost writes: decide which the tier can bear."
    )
    return (
        f"Patroni refused to promote a replica ({refused}: the replicas were"
        f" further behind the lost primary than {setting}), so service came"
        f" back only with the lost primary. {trade}"
    )


def _single_point_advice(scenario: ScenarioResult, context: _Context) -> str:
    refusal = _refusal_advice(scenario, context)
    if refusal:
        return refusal
    kind = _kind(scenario)
    single = [
        service for service in ("ingress", "app") if context.replicas.get(service) == 1
    ]
    if single:
        what = " and ".join(
            "one ingress replica" if s == "ingress" else "one app replica"
            for s in single
        )
        return (
            f"There is {what} in topology {context.topology}: run at least one per"
            " zone, so that losing a node or a zone leaves users a way in."
        )
    if "zone" in kind:
        return (
            "Something every workflow needs ran only in this zone: give it a"
            " replica in another zone (spread constraints across the zone label)."
        )
    target = scenario.fault.target if scenario.fault else "it"
    return (
        f"Something every workflow needs ran only on {target}: give it a replica"
        " on another node and check that traffic moves to it."
    )


def _over_limit(
    add: _Add,
    scenario: ScenarioResult,
    judged: list[WorkflowResult],
    when: str,
    context: _Context,
    skip: set[str],
) -> None:
    over = [
        w
        for w in judged
        if w.recovered and w.max_outage_s > w.slo.max_outage_s and w.name not in skip
    ]
    if not over:
        return
    worst = max(over, key=lambda w: w.max_outage_s)
    measured = (
        f"{_names(over)} {'was' if len(over) == 1 else 'were'} down for up to"
        f" {human_duration(worst.max_outage_s, above_s=worst.slo.max_outage_s)}"
        f"{when}, over the limit of {human_duration(worst.slo.max_outage_s)}."
    )
    add("critical", measured, _slow_recovery_advice(scenario, worst, context))


def _slow_recovery_advice(
    scenario: ScenarioResult, worst: WorkflowResult, context: _Context
) -> str:
    kind = _kind(scenario)
    recovery = worst.recovery_s or worst.max_outage_s
    refusal = _refusal_advice(scenario, context)
    if refusal:
        return refusal
    if (
        context.platform == "kubernetes"
        and ("node" in kind or "zone" in kind)
        and abs(recovery - DEFAULT_EVICTION_S) <= EVICTION_SLACK_S
    ):
        return (
            f"Recovery took {human_duration(recovery)}, about Kubernetes' default"
            " 300 s before pods on an unreachable node are evicted: give the Odoo"
            " and Traefik pods a shorter toleration for node.kubernetes.io/"
            "unreachable and not-ready, so that they are rescheduled sooner."
        )
    leader = _leader_change_s(scenario)
    if leader is not None and context.patroni.get("ttl"):
        return (
            f"The Postgres leader changed {human_duration(leader)} after the fault;"
            f" Patroni waits for the leader key to expire (ttl"
            f" {context.patroni['ttl']} s) before it promotes a replica. A shorter"
            " ttl, or clients that reconnect at once, shorten the outage."
        )
    if leader is not None:
        return (
            f"The database primary changed {human_duration(leader)} after the"
            " fault; users got service back later still: check how quickly Odoo"
            " reconnects to the new primary and how quickly the operator fails"
            " over."
        )
    return (
        "Users waited longer than the limit for what the fault took to come back;"
        " the events of this scenario show what the platform did meanwhile."
    )


def _thin_margin(
    add: _Add,
    scenario: ScenarioResult,
    judged: list[WorkflowResult],
    when: str,
    context: _Context,
) -> None:
    thin = [
        w
        for w in judged
        if w.verdict == "pass"
        and w.max_outage_s > THIN_MARGIN_SHARE * w.slo.max_outage_s
    ]
    if not thin:
        return
    tightest = max(thin, key=lambda w: w.max_outage_s / w.slo.max_outage_s)
    margin = tightest.slo.max_outage_s - tightest.max_outage_s
    measured = (
        f"{_names(thin)} passed, but within {human_duration(margin)} of the"
        f" {human_duration(tightest.slo.max_outage_s)} limit{when}"
        f" ({human_duration(tightest.max_outage_s)} down)."
    )
    leader = _leader_change_s(scenario)
    ttl = context.patroni.get("ttl")
    if leader is not None and ttl:
        advice = (
            f"Most of it is leader failover: Patroni promotes a replica only after"
            f" the leader key expires (ttl {ttl} s, loop_wait"
            f" {context.patroni.get('loop_wait')} s). A slower day fails this"
            " scenario; a shorter ttl widens the margin."
        )
    else:
        advice = (
            "A few seconds more and this scenario fails: watch its trend in the"
            " nightly runs and look at what the platform waited on in its events."
        )
    add("warning", measured, advice)


def _flapping(
    add: _Add, judged: list[WorkflowResult], when: str, context: _Context
) -> None:
    flapping = [
        w
        for w in judged
        if len(w.windows) >= FLAPPING_WINDOWS
        and w.downtime_s > 1.5 * w.max_outage_s
        and w.downtime_s >= FLAPPING_SHARE * w.slo.max_outage_s
    ]
    if not flapping:
        return
    worst = max(flapping, key=lambda w: len(w.windows))
    checks = ""
    if context.ingress.get("check_interval_ms"):
        checks = (
            f" (here every {context.ingress['check_interval_ms']} ms, down after"
            f" {context.ingress.get('fall')} failures, up after"
            f" {context.ingress.get('rise')} successes)"
        )
    add(
        "critical" if worst.verdict == "fail" else "warning",
        f"{workflow_label(worst.name)} failed in {len(worst.windows)} separate"
        f" windows{when}, adding up to {human_duration(worst.downtime_s)} though"
        f" none lasted over {human_duration(worst.max_outage_s)}.",
        "Outages that come and go point at servers marked up before they can"
        f" serve: compare the load balancers' health checks{checks} with what"
        " the components' logs show.",
    )


# What Patroni logs when a replica is too far behind to be promoted.
REFUSED_PROMOTION = ("exceeds maximum replication lag", "not the healthiest node")


def _refused_promotion(scenario: ScenarioResult) -> str:
    """Which database node's log says Patroni refused a promotion, quoted."""
    for excerpt in scenario.logs:
        if "patroni" not in excerpt.component:
            continue
        for line in excerpt.lines:
            if REFUSED_PROMOTION[0] in line:
                return f'{excerpt.component}: "{REFUSED_PROMOTION[0]}"'
    return ""


def _database_fault(scenario: ScenarioResult) -> bool:
    fault = scenario.fault
    if fault is None:
        return False
    together = " ".join(map(str, fault.details.get("together_with", [])))
    text = f"{fault.kind} {fault.target} {together}"
    return bool(re.search(r"database|primary|replication|leader", text, re.I))


def _kind(scenario: ScenarioResult) -> str:
    return scenario.fault.kind.lower() if scenario.fault else ""


def _leader_change_s(scenario: ScenarioResult) -> float | None:
    fault = scenario.fault
    if fault is None or fault.injected_mono is None:
        return None
    for event in scenario.events:
        if (
            event.mono is not None
            and event.mono >= fault.injected_mono
            and _LEADER_EVENT.search(event.text)
        ):
            return event.mono - fault.injected_mono
    return None


def _when(scenario: ScenarioResult) -> str:
    return f" when {fault_phrase(scenario.fault)}" if scenario.fault else ""


def _names(workflows: Sequence[WorkflowResult]) -> str:
    labels = [workflow_label(w.name) for w in workflows]
    if len(labels) == 1:
        return labels[0].capitalize()
    text = ", ".join(labels[:-1]) + f" and {labels[-1]}"
    return text[:1].upper() + text[1:]
