"""Render a run directory's results.json into one self-contained report.html."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from chaoscert.errors import ChaoscertError, ConfigError
from chaoscert.history import Trend, trends_for_run
from chaoscert.probes.samples import Sample
from chaoscert.report.charts import (
    png_data_uri,
    time_zero_mono,
    timeline_png,
    trend_png,
)
from chaoscert.report.findings import findings_for_run
from chaoscert.report.phrases import fault_phrase
from chaoscert.results import (
    FaultResult,
    RunResults,
    ScenarioResult,
    ScheduleResult,
    TierSlo,
    WorkflowResult,
    load_results,
    read_samples,
    scenario_samples_path,
    write_atomically,
)
from chaoscert.slo import (
    allows_phrase,
    human_duration,
    lost_writes_phrase,
    tier_label,
    workflow_label,
)

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class TierHeadline:
    heading: str
    status: str  # CERTIFIED, NOT CERTIFIED, NOT CERTIFIED (incomplete), NOT MEASURED
    css: str  # pass, fail, unknown
    sentence: str


@dataclass(frozen=True)
class WorkflowView:
    result: WorkflowResult
    tier_heading: str
    findings: list[str]
    windows: list[str]


@dataclass(frozen=True)
class EventView:
    at: str
    relative: str
    source: str
    text: str


@dataclass(frozen=True)
class ScenarioView:
    result: ScenarioResult
    anchor: str
    fault_text: str
    chart_uri: str | None
    chart_note: str
    samples_count: int | None
    workflows: list[WorkflowView]
    events: list[EventView] = field(default_factory=list)
    healed_after: str = ""


@dataclass(frozen=True)
class Overall:
    """The one line the first screen leads with."""

    status: str
    css: str
    sentence: str


@dataclass(frozen=True)
class Blocker:
    anchor: str
    scenario: str
    sentence: str


@dataclass(frozen=True)
class MatrixCell:
    outage: str
    limit: str
    lost: str
    css: str
    title: str


@dataclass(frozen=True)
class MatrixRow:
    anchor: str
    name: str
    status: str
    cells: list[MatrixCell | None]


@dataclass(frozen=True)
class TrendRow:
    workflow: str
    limit: str
    values: str
    latest: str
    baseline: str
    regression: str | None


@dataclass(frozen=True)
class TrendView:
    anchor: str
    scenario: str
    chart_uri: str | None
    rows: list[TrendRow]
    runs: int


def render_report(run_dir: Path, history: Path | None = None) -> Path:
    """Write ``run_dir/report.html`` from ``run_dir/results.json`` and the samples
    files it names; returns the report's path. With ``history`` (the nightly
    history store), the report also shows each figure's trend over earlier
    runs and flags regressions. A missing samples file or an incomplete run
    still renders, and says so."""
    results = load_results(run_dir)
    scenarios = [
        _scenario_view(run_dir, index, scenario, results)
        for index, scenario in enumerate(results.scenarios, start=1)
    ]
    trends = _trends(history, results)
    regressions = _regressions(results, trends)
    headlines = tier_headlines(results)
    html = (
        _environment()
        .get_template("report.html.j2")
        .render(
            run=results,
            overall=overall_verdict(headlines),
            headlines=headlines,
            blockers=blockers(results),
            scenarios=scenarios,
            status_counts=_status_counts(results),
            resolution=_resolution_text(results),
            matrix_workflows=_matrix_workflows(results),
            matrix=_matrix(results),
            findings=findings_for_run(results, regressions),
            trend_views=_trend_views(results, trends),
            history_note=_history_note(history, trends),
            regressions=len(regressions),
            configuration=json.dumps(
                {
                    "environment": results.environment,
                    "probe": results.probe.model_dump(),
                    "tiers": {k: v.model_dump() for k, v in results.tiers.items()},
                },
                indent=2,
                sort_keys=True,
                default=str,
            ),
        )
    )

    path = run_dir / REPORT_FILE
    write_atomically(path, html)
    log.info("report of run %s written to %s", results.run_id, path)
    return path


def overall_verdict(headlines: Sequence[TierHeadline]) -> Overall:
    """Certified for go-live only when every tier is certified."""
    failed = [h for h in headlines if h.status == "NOT CERTIFIED"]
    if failed:
        names = ", ".join(h.heading for h in failed)
        return Overall(
            "NOT CERTIFIED for go-live",
            "fail",
            f"{_count(len(failed), 'tier')} broke a limit: {names}",
        )
    if not headlines:
        return Overall("NOT MEASURED", "unknown", "no tier was measured in this run")
    unknown = [h for h in headlines if h.css != "pass"]
    if unknown:
        return Overall(
            "NOT CERTIFIED: incomplete",
            "unknown",
            "no limit was seen broken, but not everything was measured",
        )
    return Overall(
        "CERTIFIED for go-live",
        "pass",
        f"every tier kept its limits in every scenario ({len(headlines)} tiers)",
    )


def blockers(results: RunResults) -> list[Blocker]:
    """What stands in the way of certification, one line per scenario, in
    business terms: the worst broken limit of the scenario, or its error."""
    out = []
    for index, scenario in enumerate(results.scenarios, start=1):
        failing = [w for w in scenario.workflows if w.verdict != "pass"]
        anchor = f"scenario-{index}"
        if failing:
            worst = min(failing, key=_severity)
            sentence = _failure_sentence(scenario, worst)
            others = [workflow_label(w.name) for w in failing if w is not worst]
            if others:
                sentence += f" (also failing: {', '.join(others)})"
            out.append(Blocker(anchor, scenario.name, sentence))
        elif scenario.status == "error":
            why = (scenario.error or "an error").splitlines()[0][:300]
            out.append(
                Blocker(anchor, scenario.name, f"the scenario ended in an error: {why}")
            )
    return out


def _resolution_text(results: RunResults) -> str:
    """The resolution the run planned and, when a probe fell behind, the one it
    had: a report must never claim a finer stopwatch than was used."""
    rates = [r for r in results.probe.rates_hz.values() if r > 0]
    if not rates:
        return "not recorded"
    finest, coarsest = 1 / max(rates), 1 / min(rates)
    if abs(finest - coarsest) < 1e-9:
        text = f"outages measured to within {human_duration(finest)}"
    else:
        text = (
            f"outages measured to within {human_duration(finest)} (tier-1 probes)"
            f" to {human_duration(coarsest)}"
        )
    recorded = [
        w.schedule for s in results.scenarios for w in s.workflows if w.schedule
    ]
    if not recorded:
        return (
            f"{text} as planned (how the probes kept their schedule was not recorded)"
        )
    slipped = _slipped_schedules(results)
    if not slipped:
        return text + "; every probe kept its schedule"
    scenarios = {name for name, _ in slipped}
    worst = max((schedule for _, schedule in slipped), key=_slip_ratio)
    return (
        f"{text}; the probes fell behind their schedule in"
        f" {_count(len(scenarios), 'scenario')}: at worst"
        f" {_schedule_words(worst)}"
    )


def _slipped_schedules(results: RunResults) -> list[tuple[str, ScheduleResult]]:
    return [
        (scenario.name, workflow.schedule)
        for scenario in results.scenarios
        for workflow in scenario.workflows
        if workflow.schedule is not None and not workflow.schedule.kept
    ]


def _slip_ratio(schedule: ScheduleResult) -> float:
    return schedule.resolution_s / schedule.interval_s


def _schedule_words(schedule: ScheduleResult) -> str:
    """``every 100 ms planned, 99 % of intervals within 104 ms; 3 slots skipped``."""
    text = (
        f"every {_ms(schedule.interval_s)} planned, 99 % of intervals within"
        f" {_ms(schedule.resolution_s)}"
    )
    if schedule.skipped:
        text += f"; {_count(schedule.skipped, 'slot')} skipped"
    return text


def schedule_evidence(schedule: ScheduleResult | None) -> str:
    """One cell of evidence: planned and achieved resolution, late starts."""
    if schedule is None:
        return "not recorded"
    kept = "kept" if schedule.kept else "NOT kept"
    return (
        f"{_schedule_words(schedule)}; late starts p99 {_ms(schedule.late_p99_s)},"
        f" max {_ms(schedule.late_max_s)}; schedule {kept}"
    )


def _ms(seconds: float) -> str:
    if seconds >= 1.0:
        return human_duration(seconds)
    return f"{seconds * 1000:.3g} ms"


def _matrix_workflows(results: RunResults) -> list[str]:
    names: list[str] = [w for w in results.probe.rates_hz]
    for scenario in results.scenarios:
        names += [w.name for w in scenario.workflows if w.name not in names]
    judged = {w.name for s in results.scenarios for w in s.workflows}
    return [name for name in names if name in judged]


def _matrix(results: RunResults) -> list[MatrixRow]:
    columns = _matrix_workflows(results)
    rows = []
    for index, scenario in enumerate(results.scenarios, start=1):
        by_name = {w.name: w for w in scenario.workflows}
        cells = [_cell(by_name[name]) if name in by_name else None for name in columns]
        rows.append(
            MatrixRow(f"scenario-{index}", scenario.name, scenario.status, cells)
        )
    return rows


def _cell(w: WorkflowResult) -> MatrixCell:
    if w.samples == 0:
        outage = "not measured"
    elif not w.recovered:
        outage = "not recovered"
    else:
        outage = human_duration(w.max_outage_s, above_s=w.slo.max_outage_s)
    if w.writes:
        lost = f"{w.lost_writes} of {w.acknowledged_writes} lost"
    else:
        lost = "reads only"
    title = "; ".join(w.reasons) or "within its limits"
    return MatrixCell(
        outage, human_duration(w.slo.max_outage_s), lost, w.verdict, title
    )


def _trends(history: Path | None, results: RunResults) -> list[Trend]:
    if history is None:
        return []
    try:
        return trends_for_run(history, results)
    except ChaoscertError as exc:
        log.warning("no trend in the report: %s", exc)
        return []


def _trend_key(feature: str, scenario: str) -> tuple[str, str]:
    return feature, scenario


def _regressions(
    results: RunResults, trends: Sequence[Trend]
) -> list[tuple[int, str, str]]:
    index_of = {
        _trend_key(s.feature, s.name): i
        for i, s in enumerate(results.scenarios, start=1)
    }
    out = []
    for trend in trends:
        index = index_of.get(_trend_key(trend.feature, trend.scenario))
        if trend.regression and index is not None:
            previous = trend.points[-2].run_id if len(trend.points) > 1 else "?"
            out.append((index, trend.regression, previous))
    return out


def _trend_views(results: RunResults, trends: Sequence[Trend]) -> list[TrendView]:
    grouped: dict[tuple[str, str], list[Trend]] = {}
    for trend in trends:
        grouped.setdefault(_trend_key(trend.feature, trend.scenario), []).append(trend)
    views = []
    for index, scenario in enumerate(results.scenarios, start=1):
        mine = grouped.get(_trend_key(scenario.feature, scenario.name), [])
        if not mine:
            continue
        runs = max(len(t.points) for t in mine)
        chart = png_data_uri(trend_png(mine)) if runs > 1 else None
        rows = [
            TrendRow(
                workflow=workflow_label(t.workflow),
                limit=human_duration(t.limit_s),
                values=" · ".join(f"{p.max_outage_s:.1f}" for p in t.points[:-1][-8:])
                or "none",
                latest=f"{t.points[-1].max_outage_s:.1f} s" if t.points else "—",
                baseline="—" if t.baseline_s is None else f"{t.baseline_s:.1f} s",
                regression=t.regression,
            )
            for t in mine
        ]
        views.append(TrendView(f"scenario-{index}", scenario.name, chart, rows, runs))
    return views


def _history_note(history: Path | None, trends: Sequence[Trend]) -> str:
    if history is None:
        return "no history store was given for this report"
    runs = max((len(t.points) for t in trends), default=0)
    if runs <= 1:
        return (
            f"this is the first run of these scenarios in {history.name}"
            " on this platform and topology; trends start with the next run"
        )
    return (
        f"from {history.name}: up to {runs} runs of each scenario on this platform"
        " and topology, oldest first"
    )


def tier_headlines(results: RunResults) -> list[TierHeadline]:
    """The certification verdict of every tier, in plain words."""
    names = list(results.tiers)
    for scenario in results.scenarios:
        names += [w.tier for w in scenario.workflows if w.tier not in names]
    return [_tier_headline(results, name) for name in names]


def _tier_headline(results: RunResults, tier_name: str) -> TierHeadline:
    heading = _tier_heading(results.tiers.get(tier_name), tier_name)
    judged = [
        (scenario, workflow)
        for scenario in results.scenarios
        for workflow in scenario.workflows
        if workflow.tier == tier_name
    ]
    failures = [(s, w) for s, w in judged if w.verdict != "pass"]
    errors = [s for s in results.scenarios if s.status == "error"]

    if failures:
        scenario, workflow = min(failures, key=lambda pair: _severity(pair[1]))
        sentence = _failure_sentence(scenario, workflow)
        if len(failures) > 1:
            more = _count(len(failures) - 1, "more failure")
            sentence += f" ({more} below)"
        return TierHeadline(heading, "NOT CERTIFIED", "fail", sentence)
    if not results.complete or errors:
        why = []
        if not results.complete:
            why.append("the run did not finish")
        if errors:
            why.append(f"{_count(len(errors), 'scenario')} ended in an error")
        return TierHeadline(
            heading,
            "NOT CERTIFIED (incomplete)",
            "unknown",
            " and ".join(why) + "; no limit was seen broken in what was measured",
        )
    if not judged:
        return TierHeadline(
            heading, "NOT MEASURED", "unknown", "no scenario measured this tier"
        )
    return TierHeadline(heading, "CERTIFIED", "pass", _pass_sentence(judged))


def _pass_sentence(judged: Sequence[tuple[ScenarioResult, WorkflowResult]]) -> str:
    scenarios = len({id(scenario) for scenario, _ in judged})
    scenario, workflow = max(judged, key=lambda pair: pair[1].max_outage_s)
    kept = f"every workflow kept its limits in {_count(scenarios, 'scenario')}"
    if workflow.max_outage_s == 0:
        return f"{kept}; no outage was measured"
    return (
        f"{kept}; the longest outage was {workflow_label(workflow.name)}"
        f" down {human_duration(workflow.max_outage_s)}"
        f"{_when(scenario.fault)}; limit {human_duration(workflow.slo.max_outage_s)}"
    )


def _severity(workflow: WorkflowResult) -> tuple[bool, bool, float]:
    # Most severe first: unmeasured or unrecovered, then lost data, then the
    # largest overrun of the outage limit.
    return (
        workflow.samples > 0 and workflow.recovered,
        workflow.lost_writes <= workflow.slo.rpo_writes,
        -workflow.max_outage_s / max(workflow.slo.max_outage_s, 1e-9),
    )


def _failure_sentence(scenario: ScenarioResult, workflow: WorkflowResult) -> str:
    name = workflow_label(workflow.name)
    slo = workflow.slo
    when = _when(scenario.fault)
    if workflow.samples == 0:
        return f"{name} was not measured in scenario “{scenario.name}”"
    if not workflow.recovered:
        after = f", after {when.removeprefix(' when ')}" if when else ""
        return f"{name} had not recovered when measurement ended{after}"
    if workflow.lost_writes > slo.rpo_writes:
        return (
            f"{lost_writes_phrase(workflow.name, workflow.lost_writes)}{when};"
            f" {tier_label(workflow.tier)} {allows_phrase(slo.rpo_writes)}"
        )
    if workflow.max_outage_s > slo.max_outage_s:
        down = human_duration(workflow.max_outage_s, above_s=slo.max_outage_s)
        return f"{name} was down {down}{when}; limit {human_duration(slo.max_outage_s)}"
    return workflow.reasons[0] if workflow.reasons else f"{name} failed its tier"


def _when(fault: FaultResult | None) -> str:
    return f" when {fault_phrase(fault)}" if fault is not None else ""


def _tier_heading(tier: TierSlo | None, name: str) -> str:
    """``Tier 1: the warehouse floor`` -> ``Tier 1 (the warehouse floor)``."""
    if tier is None:
        return tier_label(name).capitalize()
    head, colon, tail = tier.title.partition(":")
    return f"{head.strip()} ({tail.strip()})" if colon and tail.strip() else tier.title


def _scenario_view(
    run_dir: Path, index: int, scenario: ScenarioResult, results: RunResults
) -> ScenarioView:
    samples, note = _load_samples(run_dir, scenario)
    chart_uri = None
    if samples:
        chart_uri = png_data_uri(timeline_png(scenario, samples))
    elif not note:
        note = "no samples were recorded for this scenario"
    zero = _event_zero_mono(scenario, samples or [])

    fault = scenario.fault
    healed_after = ""
    if fault and fault.injected_mono is not None and fault.healed_mono is not None:
        healed_after = human_duration(fault.healed_mono - fault.injected_mono)
    return ScenarioView(
        result=scenario,
        anchor=f"scenario-{index}",
        fault_text=fault_phrase(fault) if fault else "",
        chart_uri=chart_uri,
        chart_note=note,
        samples_count=None if samples is None else len(samples),
        workflows=[_workflow_view(w, results, zero) for w in scenario.workflows],
        events=[
            _event_view(e.at, e.mono, e.source, e.text, zero) for e in scenario.events
        ],
        healed_after=healed_after,
    )


def _event_zero_mono(scenario: ScenarioResult, samples: list[Sample]) -> float | None:
    fault = scenario.fault
    if fault is not None and fault.injected_mono is not None:
        return fault.injected_mono
    if scenario.started_mono is not None:
        return scenario.started_mono
    return time_zero_mono(scenario, samples) if samples else None


def _load_samples(
    run_dir: Path, scenario: ScenarioResult
) -> tuple[list[Sample] | None, str]:
    if not scenario.samples_file:
        return None, "this scenario names no samples file"
    path = scenario_samples_path(run_dir, scenario)
    if path is None:
        return None, f"samples file {scenario.samples_file} lies outside the run"
    if not path.exists():
        return None, f"samples file {scenario.samples_file} is missing (incomplete)"
    try:
        return read_samples(path), ""
    except ConfigError as exc:
        return None, f"samples file unreadable: {exc}"


def _workflow_view(
    workflow: WorkflowResult, results: RunResults, zero: float | None
) -> WorkflowView:
    findings = list(workflow.reasons)
    if workflow.verdict == "pass":
        limit = human_duration(workflow.slo.max_outage_s)
        if workflow.max_outage_s == 0:
            findings = [f"{workflow_label(workflow.name)} had no outage"]
        else:
            down = human_duration(workflow.max_outage_s)
            findings = [
                f"{workflow_label(workflow.name)} was down for {down} at most,"
                f" within its limit of {limit}"
            ]
    heading = _tier_heading(results.tiers.get(workflow.tier), workflow.tier)
    windows = [_window_text(w.start_mono, w.end_mono, zero) for w in workflow.windows]
    return WorkflowView(workflow, heading, findings, windows)


def _window_text(start_mono: float, end_mono: float | None, zero: float | None) -> str:
    origin = 0.0 if zero is None else zero
    start = f"{start_mono - origin:+.1f} s"
    if end_mono is None:
        return f"{start}, still open when measurement ended"
    length = human_duration(end_mono - start_mono)
    return f"{start} to {end_mono - origin:+.1f} s ({length})"


def _event_view(
    at: datetime, mono: float | None, source: str, text: str, zero: float | None
) -> EventView:
    relative = "" if mono is None or zero is None else f"{mono - zero:+.1f} s"
    return EventView(format_wall(at, with_ms=True), relative, source, text)


def _status_counts(results: RunResults) -> str:
    counts: dict[str, int] = {}
    for scenario in results.scenarios:
        counts[scenario.status] = counts.get(scenario.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in counts.items()) or "none"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def format_wall(value: datetime | None, with_ms: bool = False) -> str:
    if value is None:
        return "—"
    pattern = "%Y-%m-%d %H:%M:%S.%f" if with_ms else "%Y-%m-%d %H:%M:%S"
    text = value.strftime(pattern)
    return (text[:-3] if with_ms else text) + " UTC"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = human_duration
    env.filters["seconds"] = _seconds
    env.filters["wall"] = format_wall
    env.filters["label"] = workflow_label
    env.filters["schedule"] = schedule_evidence
    return env
