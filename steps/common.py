"""Step definitions: thin; every decision lives in chaoscert.scenario."""

from __future__ import annotations

import re

from pytest_bdd import given, parsers, then, when

from chaoscert.config import WORKFLOWS
from chaoscert.scenario import ScenarioRun

# "warehouse scanning" -> "warehouse_scanning", for every workflow chaoscert knows.
WORKFLOW_WORDS = {name.replace("_", " "): name for name in WORKFLOWS}

# "<target> hangs|crashes": the fault kind and the platform's target for it.
NODE_TARGETS = {
    "the node holding the Postgres primary": ("node", "primary"),
    "a node holding only a Postgres replica": ("node", "replica"),
    "an application node": ("node", "app"),
    "the zone of the Postgres primary": ("zone", "primary"),
}
NODE_FAILURE = re.compile(
    r"(?P<target>"
    + "|".join(re.escape(t) for t in NODE_TARGETS)
    + r"|node [a-z][a-z0-9]*|zone [a-z][a-z0-9-]*) (?P<mode>hangs|crashes)"
)


def workflow_names(text: str) -> list[str]:
    """'warehouse scanning and dispatch' -> ['warehouse_scanning', 'dispatch']."""
    words = [w.strip() for w in re.split(r",|\band\b", text) if w.strip()]
    unknown = [w for w in words if w not in WORKFLOW_WORDS]
    if unknown:
        raise ValueError(
            f"unknown workflow {unknown[0]!r}; known: {', '.join(WORKFLOW_WORDS)}"
        )
    return [WORKFLOW_WORDS[w] for w in words]


# Converters: a step's parameters are checked when the catalogue is collected,
# so a bad one is refused before anything starts (chaoscert.pytest_plugin).
def one_workflow(text: str) -> str:
    """'dispatch' -> 'dispatch'; exactly one workflow."""
    names = workflow_names(text)
    if len(names) != 1:
        raise ValueError(f"one workflow expected, not {text!r}")
    return names[0]


def written(text: str) -> str | None:
    """'write' (any workflow's) -> None, else the one workflow named."""
    return None if text == "write" else one_workflow(text)


def duration_s(value: int) -> int:
    if value < 0:
        raise ValueError(f"a duration cannot be negative, not {value} seconds")
    return value


def rate_factor(value: int) -> int:
    if value < 1:
        raise ValueError(f"a rate factor must be at least 1, not {value}")
    return value


SECONDS = {"seconds": duration_s}


# -- Given ---------------------------------------------------------------------
@given(
    parsers.parse("the platform is in steady state within {seconds:d} seconds"),
    converters=SECONDS,
)
def steady_state(scenario_run: ScenarioRun, seconds: int) -> None:
    scenario_run.wait_steady(seconds)


@given("every workflow is probed")
def every_workflow_probed(scenario_run: ScenarioRun) -> None:
    scenario_run.start_traffic(list(scenario_run.slo.workflows))


@given(
    parsers.parse("{workflows} are probed"), converters={"workflows": workflow_names}
)
def probed(scenario_run: ScenarioRun, workflows: list[str]) -> None:
    scenario_run.start_traffic(workflows)


@given(
    parsers.parse("every workflow succeeds for {seconds:d} seconds"), converters=SECONDS
)
def baseline(scenario_run: ScenarioRun, seconds: int) -> None:
    scenario_run.run_for(seconds)
    scenario_run.assert_baseline(seconds)


# -- When ----------------------------------------------------------------------
@when(parsers.re(NODE_FAILURE.pattern))
def node_or_zone_fails(scenario_run: ScenarioRun, target: str, mode: str) -> None:
    scope, name = NODE_TARGETS.get(target, tuple(target.split(" ", 1)))
    kind = "hang" if mode == "hangs" else "crash"
    scenario_run.inject(f"{scope}_{kind}", name)


@when("the Postgres primary is switched over to a replica through Patroni")
def switchover(scenario_run: ScenarioRun) -> None:
    scenario_run.inject("database_switchover", "replica")


@when(parsers.re(r"an? (?P<service>ingress|app) replica is killed"))
def replica_killed(scenario_run: ScenarioRun, service: str) -> None:
    scenario_run.inject(f"{service}_replica_kill", "")


@when(parsers.re(r"(?P<count>one|two) etcd members? (?:is|are) lost"))
def etcd_lost(scenario_run: ScenarioRun, count: str) -> None:
    kind = "dcs_member_loss" if count == "one" else "dcs_quorum_loss"
    scenario_run.inject(kind, "")


@when(
    parsers.parse(
        "replication to every replica stalls for {seconds:d} seconds"
        " before the node holding the Postgres primary crashes"
    ),
    converters=SECONDS,
)
def stall_then_crash(scenario_run: ScenarioRun, seconds: int) -> None:
    scenario_run.stall_replication_then_crash_primary(seconds)


@when(
    parsers.parse("{workflow} runs at {factor:d} times its rate"),
    converters={"workflow": one_workflow, "factor": rate_factor},
)
def burst(scenario_run: ScenarioRun, workflow: str, factor: int) -> None:
    scenario_run.scale_rate(workflow, factor)


@when(parsers.parse("the fault lasts {seconds:d} seconds"), converters=SECONDS)
def fault_lasts(scenario_run: ScenarioRun, seconds: int) -> None:
    scenario_run.run_for(seconds)


@when(parsers.parse("{seconds:d} seconds pass"), converters=SECONDS)
def time_passes(scenario_run: ScenarioRun, seconds: int) -> None:
    scenario_run.run_for(seconds)


@when("the fault is healed")
def fault_healed(scenario_run: ScenarioRun) -> None:
    scenario_run.heal()


# -- Then ----------------------------------------------------------------------
@then(
    parsers.parse("every workflow is available again within {seconds:d} seconds"),
    converters=SECONDS,
)
def available_again(scenario_run: ScenarioRun, seconds: int) -> None:
    scenario_run.wait_available(seconds)


@then(
    parsers.parse("the platform recovers within {seconds:d} seconds"),
    converters=SECONDS,
)
def platform_recovers(scenario_run: ScenarioRun, seconds: int) -> None:
    scenario_run.assert_platform_recovers(seconds)


@then(
    parsers.parse("no acknowledged {workflow} is lost"),
    converters={"workflow": written},
)
def no_write_lost(scenario_run: ScenarioRun, workflow: str | None) -> None:
    scenario_run.finish_measurement()
    scenario_run.assert_no_lost_writes(workflow)


@then(
    parsers.parse("no workflow is down for more than {seconds:d} seconds"),
    converters=SECONDS,
)
def no_outage_over(scenario_run: ScenarioRun, seconds: int) -> None:
    scenario_run.finish_measurement()
    scenario_run.assert_max_outage(seconds)


@then("every workflow meets its tier")
def meets_tier(scenario_run: ScenarioRun) -> None:
    scenario_run.finish_measurement()
    scenario_run.assert_tiers_met()
