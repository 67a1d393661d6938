"""Step definitions: thin; every decision lives in chaoscert.scenario."""

from __future__ import annotations

import re

from pytest_bdd import given, parsers, then, when

from chaoscert.platforms.base import Platform
from chaoscert.scenario import ScenarioRun

WORKFLOW_WORDS = {
    "warehouse scanning": "warehouse_scanning",
    "dispatch": "dispatch",
    "procurement approval": "procurement_approval",
    "invoice posting": "invoice_posting",
}


def workflow_names(text: str) -> list[str]:
    """'warehouse scanning and dispatch' -> ['warehouse_scanning', 'dispatch']."""
    words = [w.strip() for w in re.split(r",|\band\b", text) if w.strip()]
    unknown = [w for w in words if w not in WORKFLOW_WORDS]
    if unknown:
        raise ValueError(
            f"unknown workflow {unknown[0]!r}; known: {', '.join(WORKFLOW_WORDS)}"
        )
    return [WORKFLOW_WORDS[w] for w in words]


@given(parsers.parse("the platform is in steady state within {seconds:d} seconds"))
def steady_state(chaoscert_platform: Platform, seconds: int) -> None:
    chaoscert_platform.wait_steady(seconds)


@given(parsers.parse("{workflows} are probed"))
def probed(scenario_run: ScenarioRun, workflows: str) -> None:
    scenario_run.start_traffic(workflow_names(workflows))


@given(parsers.parse("every workflow succeeds for {seconds:d} seconds"))
def baseline(scenario_run: ScenarioRun, seconds: int) -> None:
    scenario_run.run_for(seconds)
    scenario_run.assert_baseline(seconds)


@when(parsers.re(r"the node holding the Postgres primary (?P<mode>hangs|crashes)"))
def primary_node_fails(scenario_run: ScenarioRun, mode: str) -> None:
    kind = "hang" if mode == "hangs" else "crash"
    scenario_run.inject(f"database_primary_{kind}")


@when(parsers.parse("the fault lasts {seconds:d} seconds"))
def fault_lasts(scenario_run: ScenarioRun, seconds: int) -> None:
    scenario_run.run_for(seconds)


@when("the fault is healed")
def fault_healed(scenario_run: ScenarioRun) -> None:
    scenario_run.heal()


@then(parsers.parse("every workflow is available again within {seconds:d} seconds"))
def available_again(scenario_run: ScenarioRun, seconds: int) -> None:
    scenario_run.wait_available(seconds)


@then(parsers.parse("no acknowledged {workflow} is lost"))
def no_write_lost(scenario_run: ScenarioRun, workflow: str) -> None:
    scenario_run.finish_measurement()
    scenario_run.assert_no_lost_writes(workflow_names(workflow)[0])


@then("every workflow meets its tier")
def meets_tier(scenario_run: ScenarioRun) -> None:
    scenario_run.finish_measurement()
    scenario_run.assert_tiers_met()
