"""Timeline charts of a scenario, drawn with matplotlib's Agg canvas into PNG.

pyplot is never imported: each chart is its own Figure on an Agg canvas, so no
display is touched and no global state is shared between charts.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Mapping, Sequence

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from chaoscert.history import Trend
from chaoscert.probes.samples import Sample
from chaoscert.results import ScenarioResult, WorkflowResult
from chaoscert.slo import in_start_order, is_failed, measured_until_mono

OK_COLOUR = "#2e7d32"
FAILED_COLOUR = "#c62828"
OUTAGE_COLOUR = "#ef9a9a"
FAULT_COLOUR = "#9e9e9e"
LEADER_COLOUR = "#6a1b9a"
# Colours of the platform's own events, by who reported them.
EVENT_COLOURS = {
    "patroni": LEADER_COLOUR,
    "database": LEADER_COLOUR,
    "haproxy": "#1565c0",
    "kubernetes": "#ef6c00",
    "fault": "#424242",
}
_LEADER = re.compile(r"leader changed|new primary|switchover from", re.IGNORECASE)
DPI = 110


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def time_zero_mono(scenario: ScenarioResult, samples: Sequence[Sample]) -> float:
    """Where the chart's 0 s lies: fault injection, else the first sample."""
    if scenario.fault is not None and scenario.fault.injected_mono is not None:
        return scenario.fault.injected_mono
    return min((s.start_mono for s in samples), default=0.0)


def timeline_png(scenario: ScenarioResult, samples: Sequence[Sample]) -> bytes:
    """One row per workflow: every sample as success or failure over time (s from
    fault injection), latency below it, the fault window shaded and the outage
    windows marked. Workflows without samples get an empty, labelled row."""
    by_workflow = _group(samples)
    workflows = scenario.workflows or [
        _bare_result(name) for name in sorted(by_workflow)
    ]
    zero = time_zero_mono(scenario, samples)
    end_mono = measured_until_mono(samples)

    rows = max(1, len(workflows))
    events = _chartable_events(scenario)
    sources = sorted({source for source, _, _ in events})
    event_height = 0.35 + 0.22 * len(sources) if sources else 0.0
    figure = Figure(
        figsize=(10, 0.6 + 2.0 * rows + event_height), dpi=DPI, layout="constrained"
    )
    FigureCanvasAgg(figure)
    ratios = ([event_height / 0.62] if sources else []) + [1, 2.2] * rows
    grid = figure.add_gridspec(len(ratios), 1, height_ratios=ratios)
    offset = 1 if sources else 0
    first: Axes | None = None
    leader_changes = [x - zero for _, x, text in events if _is_leader(text)]
    if sources:
        first = figure.add_subplot(grid[0])
        _draw_events(first, events, sources, zero)
        _shade_fault(first, scenario, zero)
        first.tick_params(labelbottom=False)
    for row, result in enumerate(workflows):
        strip = figure.add_subplot(grid[offset + 2 * row], sharex=first)
        first = first or strip
        latency = figure.add_subplot(grid[offset + 2 * row + 1], sharex=first)
        mine = by_workflow.get(result.name, [])
        _draw_status(strip, result, mine, zero)
        _draw_latency(latency, result, mine, zero)
        if row == 0:
            _label_fault(latency, scenario, zero)
        for axes in (strip, latency):
            _shade_fault(axes, scenario, zero)
            _mark_outages(axes, result, zero, end_mono)
            for x in leader_changes:
                axes.axvline(x, color=LEADER_COLOUR, linestyle="--", linewidth=0.9)
        last_row = row == len(workflows) - 1
        latency.tick_params(labelbottom=last_row)
        strip.tick_params(labelbottom=False)
        if last_row:
            latency.set_xlabel(_x_label(scenario), parse_math=False)

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _chartable_events(scenario: ScenarioResult) -> list[tuple[str, float, str]]:
    """(source, monotonic time, text) of each event the chart can place."""
    return [
        (event.source, event.mono, event.text)
        for event in scenario.events
        if event.mono is not None
    ]


def _is_leader(text: str) -> bool:
    return bool(_LEADER.search(text))


def _draw_events(
    axes: Axes,
    events: Sequence[tuple[str, float, str]],
    sources: Sequence[str],
    zero: float,
) -> None:
    rows = {source: index for index, source in enumerate(sources)}
    for source in sources:
        mine = [x - zero for s, x, _ in events if s == source]
        axes.scatter(
            mine,
            [rows[source]] * len(mine),
            marker="D",
            s=22,
            color=EVENT_COLOURS.get(source, "#212121"),
            zorder=3,
        )
    for _source, x, text in events:
        if _is_leader(text):
            axes.axvline(x - zero, color=LEADER_COLOUR, linestyle="--", linewidth=0.9)
    axes.set_ylim(-0.7, len(sources) - 0.3)
    axes.set_yticks(range(len(sources)), list(sources), fontsize=8)
    axes.set_title(
        "platform events (purple dashes: the database leader changed)",
        loc="left",
        fontsize=10,
        parse_math=False,
    )
    axes.grid(axis="x", linewidth=0.3, alpha=0.6)


def _group(samples: Sequence[Sample]) -> Mapping[str, list[Sample]]:
    groups: dict[str, list[Sample]] = {}
    for sample in in_start_order(samples):
        groups.setdefault(sample.workflow, []).append(sample)
    return groups


def _bare_result(name: str) -> WorkflowResult:
    # Samples of a scenario that was never judged (an error): chart them with
    # no SLO, so only the probe's own outcome colours them.
    return WorkflowResult.model_validate(
        {
            "name": name,
            "tier": "",
            "samples": 0,
            "failed": 0,
            "max_outage_s": 0.0,
            "downtime_s": 0.0,
            "recovery_s": None,
            "recovered": False,
            "lost_writes": 0,
            "resolution_s": 0.0,
            "slo": {
                "max_outage_s": float("inf"),
                "rpo_writes": 0,
                "slow_threshold_s": float("inf"),
            },
            "verdict": "fail",
        }
    )


def _draw_status(
    axes: Axes, result: WorkflowResult, samples: Sequence[Sample], zero: float
) -> None:
    threshold = result.slo.slow_threshold_s
    ok = [s.start_mono - zero for s in samples if not is_failed(s, threshold)]
    bad = [s.start_mono - zero for s in samples if is_failed(s, threshold)]
    axes.scatter(ok, [1] * len(ok), marker="|", s=120, color=OK_COLOUR, label="ok")
    axes.scatter(
        bad, [0] * len(bad), marker="|", s=120, color=FAILED_COLOUR, label="failed"
    )
    axes.set_ylim(-0.8, 1.8)
    axes.set_yticks([0, 1], ["failed", "ok"])
    axes.set_title(
        f"{result.name.replace('_', ' ')}  ({len(samples)} samples, {len(bad)} failed)",
        loc="left",
        fontsize=10,
        parse_math=False,
    )
    if not samples:
        axes.text(
            0.5,
            0.5,
            "no samples",
            transform=axes.transAxes,
            ha="center",
            va="center",
            color=FAILED_COLOUR,
        )


def _draw_latency(
    axes: Axes, result: WorkflowResult, samples: Sequence[Sample], zero: float
) -> None:
    threshold = result.slo.slow_threshold_s
    for failed, colour, marker in ((False, OK_COLOUR, "o"), (True, FAILED_COLOUR, "x")):
        chosen = [s for s in samples if is_failed(s, threshold) is failed]
        axes.scatter(
            [s.start_mono - zero for s in chosen],
            [s.latency_s for s in chosen],
            s=9,
            marker=marker,
            color=colour,
            linewidths=0.8,
        )
    if threshold != float("inf"):
        axes.axhline(threshold, color=FAILED_COLOUR, linestyle="--", linewidth=0.8)
    axes.set_ylabel("latency (s)", fontsize=8)
    highest = max((s.latency_s for s in samples), default=1.0)
    if threshold != float("inf"):
        highest = max(highest, threshold)
    # Headroom above the slowest attempt keeps the fault labels off the marks.
    axes.set_ylim(0, highest * 1.3)
    axes.grid(axis="y", linewidth=0.3, alpha=0.6)


def _shade_fault(axes: Axes, scenario: ScenarioResult, zero: float) -> None:
    fault = scenario.fault
    if fault is None or fault.injected_mono is None:
        return
    start = fault.injected_mono - zero
    axes.axvline(start, color="#424242", linewidth=1.0)
    if fault.healed_mono is not None:
        axes.axvspan(start, fault.healed_mono - zero, color=FAULT_COLOUR, alpha=0.18)
        axes.axvline(fault.healed_mono - zero, color="#424242", linestyle=":")


def _label_fault(axes: Axes, scenario: ScenarioResult, zero: float) -> None:
    fault = scenario.fault
    if fault is None or fault.injected_mono is None:
        return
    marks = [(fault.injected_mono - zero, "injected")]
    if fault.healed_mono is not None:
        marks.append((fault.healed_mono - zero, "healed"))
    for x, text in marks:
        axes.annotate(
            text,
            xy=(x, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -3),
            textcoords="offset points",
            va="top",
            fontsize=8,
            bbox={
                "boxstyle": "round,pad=0.15",
                "fc": "white",
                "ec": "none",
                "alpha": 0.85,
            },
            color="#424242",
        )


def _mark_outages(
    axes: Axes, result: WorkflowResult, zero: float, end_mono: float
) -> None:
    for window in result.windows:
        end = window.end_mono if window.end_mono is not None else end_mono
        axes.axvspan(
            window.start_mono - zero,
            end - zero,
            color=OUTAGE_COLOUR,
            alpha=0.45,
            hatch="//" if window.end_mono is None else None,
            linewidth=0,
        )


def _x_label(scenario: ScenarioResult) -> str:
    fault = scenario.fault
    if fault is not None and fault.injected_mono is not None:
        return (
            "seconds from fault injection (0). Grey: fault in place;"
            " red: outage windows; dashed: slow threshold"
        )
    return "seconds from the first sample; red: outage windows; dashed: slow threshold"


def trend_png(trends: Sequence[Trend]) -> bytes:
    """A scenario's longest outage per workflow over the runs in its history,
    as a share of each workflow's limit (100 % is the limit), oldest first;
    regressions are circled."""
    figure = Figure(figsize=(10, 2.4), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    longest = max(trends, key=lambda t: len(t.points))
    for trend in trends:
        points = trend.points
        # Align the newest run of every workflow on the right.
        xs = list(range(len(longest.points) - len(points), len(longest.points)))
        ys = [100.0 * p.max_outage_s / max(trend.limit_s, 1e-9) for p in points]
        axes.plot(xs, ys, marker="o", markersize=3, linewidth=1.2, label=trend.workflow)
        if trend.regression and ys:
            axes.scatter(
                [xs[-1]], [ys[-1]], s=140, facecolors="none", edgecolors=FAILED_COLOUR
            )
    axes.axhline(100, color=FAILED_COLOUR, linestyle="--", linewidth=0.9)
    axes.set_ylabel("longest outage, % of limit", fontsize=8)
    axes.set_ylim(bottom=0)
    ticks = list(range(len(longest.points)))
    axes.set_xticks(
        ticks, [p.started_at.strftime("%m-%d %H:%M") for p in longest.points]
    )
    axes.tick_params(axis="x", labelsize=7, labelrotation=30)
    axes.grid(axis="y", linewidth=0.3, alpha=0.6)
    axes.legend(fontsize=7, loc="upper left", ncols=4, frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()
