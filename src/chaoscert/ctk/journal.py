"""Measurements in Chaos Toolkit journals, and journals back into reports.

The probe that stops traffic returns a measurement: the figures and verdict
per workflow for a reader of the journal, and an embedded copy of the
scenario's results and samples, so the report can be rebuilt from the
journal alone (`chaoscert report JOURNAL`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from chaoscert.config import load_json
from chaoscert.errors import ConfigError
from chaoscert.history import history_path
from chaoscert.probes.samples import Sample
from chaoscert.report import render_report
from chaoscert.results import RunResults, RunWriter, ScenarioResult, results_from
from chaoscert.slo import WorkflowVerdict

log = logging.getLogger("chaoscert.ctk")

MEASUREMENT_KEY = "chaoscert_measurement"
MEASUREMENT_VERSION = 1
JOURNAL_STATUSES = ("completed", "failed", "aborted", "interrupted")


def measurement(
    results: RunResults,
    scenario: ScenarioResult,
    verdicts: Mapping[str, WorkflowVerdict],
    samples: list[Sample],
    run_dir: Path,
) -> dict[str, Any]:
    """The measurement probe's output (JSON-ready) for one judged scenario."""
    workflows = {}
    for workflow in scenario.workflows:
        workflows[workflow.name] = {
            "tier": workflow.tier,
            "verdict": workflow.verdict,
            "max_outage_s": round(workflow.max_outage_s, 3),
            "downtime_s": round(workflow.downtime_s, 3),
            "recovered": workflow.recovered,
            "samples": workflow.samples,
            "failed": workflow.failed,
            "acknowledged_writes": workflow.acknowledged_writes,
            "lost_writes": workflow.lost_writes,
            "reasons": list(verdicts[workflow.name].reasons)
            if workflow.name in verdicts
            else list(workflow.reasons),
        }
    embedded = results.model_copy(update={"scenarios": [scenario]})
    return {
        MEASUREMENT_KEY: MEASUREMENT_VERSION,
        "scenario": scenario.name,
        "status": scenario.status,
        "error": scenario.error,
        "workflows": workflows,
        "run_dir": str(run_dir.resolve()),
        "report": str((run_dir / "report.html").resolve()),
        "results": embedded.model_dump(mode="json"),
        "samples": [sample.to_dict() for sample in samples],
    }


def report_from_journal(journal: Path, reports_dir: Path) -> Path:
    """Write a run directory and its report.html from a Chaos Toolkit journal.

    Raises ConfigError, naming the file and what is wrong, when it is not a
    journal or carries no chaoscert measurement.
    """
    data = _read_journal(journal)
    found = list(_measurements(journal, data))
    if not found:
        raise ConfigError(
            f"{journal}: no chaoscert measurement in this journal (no activity"
            " returned one: did stop_workflow_traffic run and succeed?)"
        )

    first = found[0][0]
    writer = RunWriter.start(
        reports_dir,
        platform=first.platform,
        topology=first.topology,
        probe=first.probe,
        platform_note=first.platform_note,
        environment={**first.environment, "journal": str(journal)},
    )
    writer.results.tiers = dict(first.tiers)
    writer.results.started_at = first.started_at
    for results, samples in found:
        for scenario in results.scenarios:
            writer.add_scenario(
                scenario.model_copy(update={"samples_file": None}), samples
            )
    complete = data.get("status") == "completed" and all(r.complete for r, _ in found)
    writer.finish(complete=complete)
    writer.results.ended_at = found[-1][0].ended_at or writer.results.ended_at
    writer.write()
    # A rebuild shows the trend but is not a new run: the history keeps the
    # run `chaos` itself recorded.
    history = history_path(reports_dir)
    return render_report(writer.run_dir, history if history.exists() else None)


def _read_journal(path: Path) -> dict[str, Any]:
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("run"), list):
        raise ConfigError(
            f"{path}: not a Chaos Toolkit journal (no list of runs under 'run')"
        )
    if data.get("status") not in JOURNAL_STATUSES:
        raise ConfigError(
            f"{path}: not a Chaos Toolkit journal (status {data.get('status')!r},"
            f" expected one of {', '.join(JOURNAL_STATUSES)})"
        )
    return data


def _activity_runs(data: dict[str, Any]) -> Iterator[Any]:
    # Only the journal's shape is trusted here, not its content: what is not
    # a list or a mapping where one is expected holds no measurement.
    yield from data["run"]
    yield from _listed(data.get("rollbacks"))
    steady_states = data.get("steady_states")
    for phase in ("before", "during", "after"):
        states = steady_states.get(phase) if isinstance(steady_states, dict) else None
        for state in states if isinstance(states, list) else [states]:
            if isinstance(state, dict):
                yield from _listed(state.get("probes"))


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _measurements(
    path: Path, data: dict[str, Any]
) -> Iterator[tuple[RunResults, list[Sample]]]:
    for number, entry in enumerate(_activity_runs(data), start=1):
        output = entry.get("output") if isinstance(entry, dict) else None
        if not isinstance(output, dict) or MEASUREMENT_KEY not in output:
            continue
        activity = entry.get("activity")
        name = f"activity {number}"
        if isinstance(activity, dict):
            name = activity.get("name", name)
        where = f"{path}: activity {name!r}"
        if output[MEASUREMENT_KEY] != MEASUREMENT_VERSION:
            raise ConfigError(
                f"{where}: measurement format {output[MEASUREMENT_KEY]!r} is not"
                f" one this chaoscert reads ({MEASUREMENT_VERSION})"
            )
        results = results_from(output.get("results"), Path(where))
        try:
            samples = [Sample.from_dict(s) for s in output.get("samples") or []]
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: a sample is malformed: {exc}") from None
        yield results, samples
