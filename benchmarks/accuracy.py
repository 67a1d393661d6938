"""How close the measured outage comes to an outage of known length.

For each probe rate, one probe session of warehouse scanning (one request per
attempt) runs against the edge while the edge is frozen for D seconds, again
and again; each outage window overlapping a freeze is compared with the
freeze's true length (see ``benchmarks.edge``), and with the outage an
independent observer saw, which lasts longer than the freeze: the thawed edge
first hands the apps the requests abandoned during it. The goal: every error
within one probe interval plus 50 ms. Against the observer, that is the
stopwatch's own error; against D it also holds the system's drain after the
thaw.

Windows are computed with chaoscert's own definition (``chaoscert.slo``), with
successes slower than ``SLOW_S`` counted as failed: a stall shorter than the
tier's slow threshold (2 s for tier 1) is, by the tiers' definition, a slow
answer and no outage, so the benchmark uses a threshold below its shortest D.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from benchmarks.edge import Outage, freeze_edge
from chaoscert.platforms.local.platform import LocalPlatform
from chaoscert.probes.engine import ProbeSession
from chaoscert.probes.samples import Sample
from chaoscert.slo import outage_windows

WORKFLOW = "warehouse_scanning"
RATES_HZ = (10.0, 20.0, 50.0)
OUTAGES_S = (0.5, 1.0, 2.0, 5.0, 15.0, 30.0)
SLOW_S = 0.25
GOAL_MARGIN_S = 0.05
CLEAN_BEFORE_S = 2.0
CLEAN_AFTER_S = 4.0
PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Trial:
    rate_hz: float
    outage: Outage
    measured_s: float

    @property
    def error_s(self) -> float:
        return self.measured_s - self.outage.seconds

    @property
    def observed_error_s(self) -> float | None:
        served_s = self.outage.served_s
        return None if served_s is None else self.measured_s - served_s


@dataclass(frozen=True)
class Row:
    rate_hz: float
    planned_s: float
    trials: list[Trial]

    @property
    def errors_s(self) -> list[float]:
        return [t.error_s for t in self.trials]

    @property
    def observed_errors_s(self) -> list[float]:
        """Errors against the observer; a trial it did not see is left out."""
        return [e for t in self.trials if (e := t.observed_error_s) is not None]

    @property
    def drains_s(self) -> list[float]:
        """How much longer than the freeze the observer's outage lasted."""
        return [s - t.outage.seconds for t in self.trials if (s := t.outage.served_s)]

    @property
    def goal_s(self) -> float:
        return 1.0 / self.rate_hz + GOAL_MARGIN_S

    def met(self, errors_s: list[float]) -> bool:
        return bool(errors_s) and abs(worst(errors_s)) <= self.goal_s


def worst(errors_s: list[float]) -> float:
    return max(errors_s, key=abs)


def run_trials(
    platform: LocalPlatform,
    rates_hz: tuple[float, ...] = RATES_HZ,
    outages_s: tuple[float, ...] = OUTAGES_S,
    repeats: int = 3,
    log: bool = True,
) -> list[Trial]:
    """Every outage length ``repeats`` times at every rate."""
    endpoint = platform.endpoint()
    trials: list[Trial] = []
    for rate in rates_hz:
        platform.wait_steady(120)
        with ProbeSession.at(
            endpoint,
            [WORKFLOW],
            rate_hz=rate,
            timeout_s=PROBE_TIMEOUT_S,
        ) as probes:
            probes.start()
            outages = []
            for _ in range(repeats):
                for planned in outages_s:
                    time.sleep(CLEAN_BEFORE_S)
                    outages.append(freeze_edge(platform, planned, SLOW_S))
                    time.sleep(CLEAN_AFTER_S)
            samples = probes.stop()[WORKFLOW]
        for outage in outages:
            trial = Trial(rate, outage, measured_outage(samples, outage))
            trials.append(trial)
            if log:
                served = outage.served_s
                seen = "not answered in time" if served is None else f"{served:.3f} s"
                print(
                    f"  {rate:g} Hz, frozen {outage.seconds:.3f} s, observed {seen}:"
                    f" measured {trial.measured_s:.3f} s"
                    f" (error {trial.error_s * 1000:+.0f} ms against the freeze)",
                    flush=True,
                )
    return trials


def measured_outage(samples: list[Sample], outage: Outage) -> float:
    """The longest outage window that overlaps the freeze (0 if none does)."""
    overlapping = [
        window.duration_s(outage.thawed_mono)
        for window in outage_windows(samples, SLOW_S)
        if window.start_mono <= outage.thawed_mono
        and (window.end_mono is None or window.end_mono >= outage.frozen_mono)
    ]
    return max(overlapping, default=0.0)


def rows(trials: list[Trial], outages_s: tuple[float, ...] = OUTAGES_S) -> list[Row]:
    out = []
    for rate in sorted({t.rate_hz for t in trials}):
        for planned in outages_s:
            matching = [
                t
                for t in trials
                if t.rate_hz == rate and abs(t.outage.seconds - planned) < 0.25
            ]
            if matching:
                out.append(Row(rate, planned, matching))
    return out


def table(results: list[Row]) -> list[str]:
    """Errors against the freeze D and against the observer's outage, median
    and worst of the trials, in ms; "met" judges the worst against the goal."""
    lines = [
        "| probe rate | outage D | trials | observed minus D | error vs D"
        " | met vs D | error vs observed | met vs observed | goal |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results:
        lines.append(
            f"| {row.rate_hz:g}/s | {row.planned_s:g} s | {len(row.trials)}"
            f" | {_spread(row.drains_s)} | {_spread(row.errors_s)}"
            f" | {_yes(row.met(row.errors_s))} | {_spread(row.observed_errors_s)}"
            f" | {_yes(row.met(row.observed_errors_s))} | ±{row.goal_s * 1000:.0f} ms |"
        )
    return lines


def _spread(values_s: list[float]) -> str:
    """'median / worst' in ms, or a dash when there is nothing to say."""
    if not values_s:
        return "-"
    return f"{statistics.median(values_s) * 1000:+.0f} / {worst(values_s) * 1000:+.0f}"


def _yes(met: bool) -> str:
    return "yes" if met else "NO"
