"""Findings and recommendations come from what was measured, never generic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from chaoscert.report.findings import findings_for_run
from chaoscert.results import (
    EventResult,
    FaultResult,
    ProbeSettings,
    RunResults,
    ScenarioResult,
    WorkflowResult,
)

T0 = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)
INJECTED = 1000.0


def wf(
    name: str,
    max_outage_s: float,
    limit_s: float = 30.0,
    lost: int = 0,
    acknowledged: int = 300,
    recovered: bool = True,
    windows: int = 1,
    downtime_s: float | None = None,
) -> WorkflowResult:
    over = max_outage_s > limit_s or lost > 0 or not recovered
    return WorkflowResult.model_validate(
        {
            "name": name,
            "tier": "tier1",
            "samples": 600,
            "failed": int(max_outage_s * 10),
            "max_outage_s": max_outage_s,
            "downtime_s": max_outage_s if downtime_s is None else downtime_s,
            "recovery_s": max_outage_s if recovered else None,
            "recovered": recovered,
            "lost_writes": lost,
            "acknowledged_writes": acknowledged,
            "resolution_s": 0.1,
            "slo": {"max_outage_s": limit_s, "rpo_writes": 0, "slow_threshold_s": 2},
            "verdict": "fail" if over else "pass",
            "reasons": ["broke its tier"] if over else [],
            "windows": [
                {"start_mono": INJECTED + i, "end_mono": INJECTED + i + 0.1}
                for i in range(windows)
            ],
        }
    )


def scenario(
    workflows: list[WorkflowResult],
    kind: str = "node_hang",
    target: str = "node a1 (Postgres leader)",
    lasted_s: float = 45.0,
    events: list[EventResult] | None = None,
    **fields: Any,
) -> ScenarioResult:
    values: dict[str, Any] = {
        "feature": "f",
        "name": "the scenario",
        "status": "failed" if any(w.verdict == "fail" for w in workflows) else "passed",
        "fault": FaultResult(
            kind=kind,
            target=target,
            injected_at=T0,
            healed_at=T0 + timedelta(seconds=lasted_s),
            injected_mono=INJECTED,
            healed_mono=INJECTED + lasted_s,
        ),
        "workflows": workflows,
        "events": events or [],
    }
    values.update(fields)
    return ScenarioResult.model_validate(values)


def run(
    *scenarios: ScenarioResult, platform: str = "local", **environment: Any
) -> RunResults:
    return RunResults(
        run_id="r1",
        platform=platform,
        topology=str(environment.pop("topology", "reference")),
        environment=environment,
        started_at=T0,
        complete=True,
        probe=ProbeSettings(rates_hz={"dispatch": 10}, timeout_s=2, resolution_s=0.1),
        scenarios=list(scenarios),
    )


def leader_event(after_s: float) -> EventResult:
    return EventResult(
        at=T0,
        mono=INJECTED + after_s,
        source="patroni",
        text="leader changed from a1 to b1 (when a poll saw it)",
    )


def test_a_clean_run_has_no_findings() -> None:
    results = run(scenario([wf("dispatch", 2.0), wf("warehouse_scanning", 0.0)]))

    assert findings_for_run(results) == []


def test_lost_writes_on_asynchronous_replication_say_so_and_name_the_setting() -> None:
    results = run(
        scenario(
            [wf("dispatch", 20.0, lost=13, acknowledged=364)],
            kind="replication_stall",
            target="WAL senders of the primary on a1",
        ),
        patroni={"synchronous_mode": "off", "ttl": 20},
    )

    [finding] = findings_for_run(results)

    assert finding.severity == "critical"
    assert "13 of 364 dispatches" in finding.measured
    assert "its tier allows none" in finding.measured
    assert "synchronous_mode off" in finding.recommendation
    assert finding.anchor == "scenario-1"


def test_lost_writes_with_quorum_commit_point_elsewhere() -> None:
    results = run(
        scenario([wf("dispatch", 20.0, lost=2)], kind="database_primary_crash"),
        patroni={"synchronous_mode": "quorum", "maximum_lag_on_failover": 1048576},
    )

    [finding] = findings_for_run(results)

    assert "synchronous_mode quorum" in finding.recommendation
    assert "maximum_lag_on_failover 1048576" in finding.recommendation
    assert "asynchronous" not in finding.recommendation


def test_an_outage_as_long_as_the_fault_with_one_ingress_names_the_single_replica() -> (
    None
):
    results = run(
        scenario(
            [wf("warehouse_scanning", 45.3), wf("dispatch", 45.3)],
            target="node a2 (application: app, ingress)",
        ),
        topology="single-ingress",
        replicas={"ingress": 1, "app": 3, "postgres": 3, "etcd": 3},
    )

    [finding] = findings_for_run(results)

    assert finding.severity == "critical"
    assert "as long as the fault lasted (45 s)" in finding.measured
    assert "Warehouse scanning and dispatch were down" in finding.measured
    assert "one ingress replica in topology single-ingress" in finding.recommendation


def test_a_pass_close_to_the_limit_blames_failover_timing_when_the_leader_moved() -> (
    None
):
    results = run(
        scenario([wf("dispatch", 25.7)], events=[leader_event(21.5)]),
        patroni={"ttl": 20, "loop_wait": 1},
    )

    [finding] = findings_for_run(results)

    assert finding.severity == "warning"
    assert "within 4.3 s of the 30 s limit" in finding.measured
    assert "ttl 20 s" in finding.recommendation


def test_a_pass_with_room_to_spare_is_no_finding() -> None:
    results = run(scenario([wf("dispatch", 12.0)], events=[leader_event(10.0)]))

    assert findings_for_run(results) == []


def test_a_kubernetes_node_loss_that_waited_for_eviction_names_the_toleration() -> None:
    results = run(
        scenario([wf("dispatch", 306.0)], target="node worker-a", lasted_s=5.0),
        platform="kubernetes",
    )

    [finding] = findings_for_run(results)

    assert "over the limit of 30 s" in finding.measured
    assert "300 s" in finding.recommendation
    assert "node.kubernetes.io/unreachable" in finding.recommendation


def test_the_same_outage_on_the_local_stack_says_nothing_of_kubernetes() -> None:
    results = run(
        scenario([wf("dispatch", 40.0)], lasted_s=5.0, events=[leader_event(33.0)]),
        patroni={"ttl": 20},
    )

    [finding] = findings_for_run(results)

    assert "Kubernetes" not in finding.recommendation
    assert "leader changed 33 s after the fault" in finding.recommendation


def test_not_recovering_is_critical() -> None:
    results = run(scenario([wf("dispatch", 50.0, recovered=False)], lasted_s=5.0))

    found = findings_for_run(results)

    assert found[0].severity == "critical"
    assert "had not recovered when measurement ended" in found[0].measured


def test_flapping_counts_windows_and_quotes_the_health_checks() -> None:
    flapping = wf("dispatch", 1.5, windows=14, downtime_s=12.0)
    results = run(
        scenario([flapping], lasted_s=5.0),
        ingress={"check_interval_ms": 1000, "fall": 2, "rise": 2},
    )

    [finding] = findings_for_run(results)

    assert "14 separate windows" in finding.measured
    assert "every 1000 ms" in finding.recommendation


def test_a_few_blips_are_not_flapping() -> None:
    blips = wf("dispatch", 0.2, windows=12, downtime_s=1.5)

    assert findings_for_run(run(scenario([blips], lasted_s=5.0))) == []


def test_a_fault_that_could_not_be_healed_comes_first_with_the_command() -> None:
    broken = scenario([wf("dispatch", 40.0)], lasted_s=5.0, status="error")
    assert broken.fault is not None
    broken.fault.heal_error = "node a1 stays frozen: EBUSY"
    results = run(broken, scenario([wf("dispatch", 26.0)]))

    found = findings_for_run(results)

    assert found[0].severity == "critical"
    assert "could not be healed: node a1 stays frozen" in found[0].measured
    assert "chaoscert heal --platform local" in found[0].recommendation


def test_regressions_become_warnings_naming_the_run_before() -> None:
    results = run(scenario([wf("dispatch", 12.0)]))

    [finding] = findings_for_run(
        results, [(1, "dispatch's longest outage rose to 12 s", "r0")]
    )

    assert finding.severity == "warning"
    assert finding.measured == "dispatch's longest outage rose to 12 s"
    assert "run r0" in finding.recommendation


def patroni_log(node: str, *lines: str) -> dict[str, Any]:
    return {"component": f"patroni on {node}", "source": "x.log", "lines": list(lines)}


REFUSAL = (
    "2026-12-04 09:28:04,876 INFO: My wal position exceeds maximum replication lag"
)


def test_a_promotion_patroni_refused_for_lag_is_named_from_its_log() -> None:
    logs = [
        patroni_log("a1", "INFO: no action. I am (a1), a secondary", REFUSAL),
        patroni_log("b1", "INFO: no action. I am (b1), the leader with the lock"),
    ]
    results = run(
        scenario([wf("dispatch", 43.7)], kind="replication_stall", logs=logs),
        patroni={
            "ttl": 20,
            "synchronous_mode": "quorum",
            "maximum_lag_on_failover": 1048576,
        },
    )

    [finding] = findings_for_run(results)

    # Down for the whole fault, yet not for want of a replica: Patroni refused.
    assert "as long as the fault lasted" in finding.measured
    assert "Patroni refused to promote a replica" in finding.recommendation
    assert "give it a replica" not in finding.recommendation
    assert "patroni on a1" in finding.recommendation
    assert "1048576 bytes" in finding.recommendation
    assert "without losing acknowledged writes" in finding.recommendation


def test_the_same_refusal_on_asynchronous_replication_names_the_trade() -> None:
    results = run(
        scenario(
            [wf("dispatch", 43.7)],
            kind="replication_stall",
            logs=[patroni_log("a1", REFUSAL)],
        ),
        patroni={"ttl": 20, "synchronous_mode": "off"},
    )

    [finding] = findings_for_run(results)

    assert "trades this outage for lost writes" in finding.recommendation


def test_no_refusal_in_the_logs_no_refusal_in_the_advice() -> None:
    results = run(
        scenario(
            [wf("dispatch", 40.0)],
            lasted_s=5.0,
            events=[leader_event(33.0)],
            logs=[patroni_log("a1", "INFO: promoted self to leader")],
        ),
        patroni={"ttl": 20},
    )

    [finding] = findings_for_run(results)

    assert "refused" not in finding.recommendation


def test_a_refusal_shorter_than_the_fault_is_advised_on_too() -> None:
    results = run(
        scenario(
            [wf("dispatch", 43.7)],
            kind="database_primary_crash",
            lasted_s=120.0,
            logs=[patroni_log("c1", REFUSAL)],
        ),
        patroni={"synchronous_mode": "quorum"},
    )

    [finding] = findings_for_run(results)

    assert "over the limit of 30 s" in finding.measured
    assert "Patroni refused to promote a replica" in finding.recommendation
    assert "patroni on c1" in finding.recommendation
