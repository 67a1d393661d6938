"""Outage windows, downtime, recovery and the verdict of one workflow against its tier.

Everything here is a pure function of samples and numbers passed in. Times are
``time.monotonic()`` seconds, as the probes record them; durations are seconds.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from chaoscert.config import Tier
from chaoscert.probes.samples import Sample

log = logging.getLogger(__name__)

Verdict = Literal["pass", "fail"]

# The noun an executive uses for one acknowledged write of each workflow.
_WRITE_NOUNS = {
    "warehouse_scanning": ("scan", "scans"),
    "dispatch": ("dispatch", "dispatches"),
    "procurement_approval": ("approval", "approvals"),
    "invoice_posting": ("invoice posting", "invoice postings"),
}


GAP_INTERVALS = 10
GAP_MIN_S = 2.0
# A probe whose 99th-percentile interval is this much over its plan did not
# keep its schedule, and the report says so with the resolution it had.
SCHEDULE_SLACK = 0.1


@dataclass(frozen=True, slots=True)
class Window:
    """One outage: from the start of its first failed sample to the moment the
    workflow answered in time again, the earliest end of the successful samples
    that follow it. ``end_mono`` is None while the window is open.

    Ending at an answer, not at the start of the next success, keeps a stall
    whole: when a frozen component resumes, attempts started during its last
    ``slow_threshold_s`` seconds are answered in time, but only when it resumes.
    """

    start_mono: float
    end_mono: float | None

    @property
    def is_open(self) -> bool:
        return self.end_mono is None

    def duration_s(self, until_mono: float) -> float:
        """Length in seconds; an open window is counted up to ``until_mono``."""
        end = self.end_mono if self.end_mono is not None else until_mono
        return max(0.0, end - self.start_mono)


@dataclass(frozen=True, slots=True)
class Schedule:
    """How well one workflow's probe kept its schedule (seconds throughout).

    ``interval_s`` is the planned time between attempts (1/rate);
    ``resolution_s`` what was achieved: the 99th percentile of the times
    between consecutive starts, never below the plan. ``late_p99_s`` and
    ``late_max_s`` are how late attempts started against their slots;
    ``skipped`` counts slots given up because the probe fell behind.
    """

    interval_s: float
    resolution_s: float
    late_p99_s: float
    late_max_s: float
    skipped: int

    @property
    def kept(self) -> bool:
        """The planned resolution holds: no slot skipped, and 99 % of the
        intervals within ``SCHEDULE_SLACK`` of the plan."""
        return self.skipped == 0 and self.resolution_s <= self.interval_s * (
            1 + SCHEDULE_SLACK
        )


@dataclass(frozen=True, slots=True)
class WorkflowFigures:
    """What was measured for one workflow in one scenario (seconds throughout)."""

    workflow: str
    tier: str
    samples: int
    failed: int
    max_outage_s: float
    downtime_s: float
    recovery_s: float | None
    recovered: bool
    lost_writes: int
    resolution_s: float
    windows: tuple[Window, ...] = ()
    lost_write_ids: tuple[int, ...] = ()
    largest_gap_s: float = 0.0
    schedule: Schedule | None = None


@dataclass(frozen=True, slots=True)
class WorkflowVerdict:
    """Figures, the tier they were judged against, and the verdict with its reasons.

    ``reasons`` holds one plain sentence per limit broken; empty on a pass.
    """

    figures: WorkflowFigures
    tier: Tier
    verdict: Verdict
    reasons: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"


def is_failed(sample: Sample, slow_threshold_s: float) -> bool:
    """A failed sample: not ok, or ok but slower than ``slow_threshold_s`` seconds."""
    return not sample.ok or sample.latency_s > slow_threshold_s


def in_start_order(samples: Iterable[Sample]) -> list[Sample]:
    return sorted(samples, key=lambda s: (s.start_mono, s.seq))


def outage_windows(samples: Iterable[Sample], slow_threshold_s: float) -> list[Window]:
    """Maximal runs of consecutive failed samples, in start order.

    A window begins at the start of its first failed sample and ends at the
    earliest end of the successful samples that follow it, up to the next
    failed one (see ``Window``); the last window is open (end None) when no
    success follows it. Windows that would overlap are merged.
    """
    windows: list[Window] = []
    open_since: float | None = None
    answered: float | None = None  # earliest answer since the last failure
    for sample in in_start_order(samples):
        if is_failed(sample, slow_threshold_s):
            if answered is not None:
                _close(windows, open_since, answered)
                open_since = answered = None
            if open_since is None:
                open_since = sample.start_mono
        elif open_since is not None:
            answered = (
                sample.end_mono if answered is None else min(answered, sample.end_mono)
            )
    if open_since is not None:
        _close(windows, open_since, answered)
    return windows


def _close(windows: list[Window], start: float | None, end: float | None) -> None:
    assert start is not None
    if windows and windows[-1].end_mono is not None and windows[-1].end_mono >= start:
        windows[-1] = Window(windows[-1].start_mono, end)
    else:
        windows.append(Window(start, end))


def measured_until_mono(samples: Sequence[Sample]) -> float:
    """When measurement ended: the latest end of any sample (0.0 for none)."""
    return max((s.end_mono for s in samples), default=0.0)


def recovery_s(windows: Sequence[Window], injected_mono: float | None) -> float | None:
    """Seconds from injection to the end of the last window that overlaps or
    follows it: 0.0 if there is none, None if that window is still open or no
    injection time is known. Windows that ended by the injection do not count."""
    if injected_mono is None:
        return None
    relevant = [w for w in windows if w.end_mono is None or w.end_mono > injected_mono]
    if not relevant:
        return 0.0
    last = relevant[-1]
    if last.end_mono is None:
        return None
    return last.end_mono - injected_mono


def measure(
    workflow: str,
    samples: Sequence[Sample],
    tier: Tier,
    *,
    injected_mono: float | None,
    lost_writes: int | Sequence[int],
    resolution_s: float,
) -> WorkflowFigures:
    """Compute the figures of one workflow; see ``judge`` for the arguments."""
    ordered = in_start_order(samples)
    windows = outage_windows(ordered, tier.slow_threshold_s)
    until_mono = measured_until_mono(ordered)
    durations = [w.duration_s(until_mono) for w in windows]
    lost_ids = () if isinstance(lost_writes, int) else tuple(lost_writes)
    recovered = bool(ordered) and not any(w.is_open for w in windows)
    return WorkflowFigures(
        workflow=workflow,
        tier=tier.name,
        samples=len(ordered),
        failed=sum(is_failed(s, tier.slow_threshold_s) for s in ordered),
        max_outage_s=max(durations, default=0.0),
        downtime_s=sum(durations),
        recovery_s=recovery_s(windows, injected_mono) if recovered else None,
        recovered=recovered,
        lost_writes=lost_writes if isinstance(lost_writes, int) else len(lost_ids),
        resolution_s=resolution_s,
        windows=tuple(windows),
        lost_write_ids=lost_ids,
        largest_gap_s=largest_gap_s(ordered),
        schedule=schedule(ordered, resolution_s),
    )


# Six positional arguments: the signature agreed with the steps and the CLI.
def judge(
    workflow: str,
    samples: Sequence[Sample],
    tier: Tier,
    injected_mono: float | None,
    lost_writes: int | Sequence[int],
    resolution_s: float,
) -> WorkflowVerdict:
    """Judge one workflow's samples against its tier.

    ``injected_mono`` is the monotonic time of fault injection (None when no fault
    was injected), ``lost_writes`` the count or the ids of acknowledged writes the
    ledger could not read back, ``resolution_s`` the probe interval (1/rate, s).
    Passes only if the workflow recovered, its longest outage is within
    ``tier.max_outage_s`` and no more than ``tier.rpo_writes`` writes were lost.
    """
    figures = measure(
        workflow,
        samples,
        tier,
        injected_mono=injected_mono,
        lost_writes=lost_writes,
        resolution_s=resolution_s,
    )
    reasons = _reasons(figures, tier)
    verdict: Verdict = "fail" if reasons else "pass"
    log.info(
        "%s against %s: %s (max outage %.1f s, lost writes %d, %d samples)",
        workflow,
        tier.name,
        verdict,
        figures.max_outage_s,
        figures.lost_writes,
        figures.samples,
    )
    return WorkflowVerdict(figures, tier, verdict, tuple(reasons))


def schedule(samples: Sequence[Sample], interval_s: float) -> Schedule | None:
    """How ``samples`` (start order) kept a schedule of one attempt every
    ``interval_s`` seconds; None without two samples or a positive interval.

    A slot counts as skipped when consecutive scheduled slots lie more than
    one and a half intervals apart; a rate raised during the run only makes
    slots closer, so it skips none.
    """
    if len(samples) < 2 or interval_s <= 0:
        return None
    late = sorted(max(0.0, sample.slip_s) for sample in samples)
    starts = [sample.start_mono for sample in samples]
    intervals = sorted(b - a for a, b in itertools.pairwise(starts))
    slots = sorted(sample.scheduled_mono for sample in samples)
    skipped = sum(
        max(0, round((b - a) / interval_s) - 1)
        for a, b in itertools.pairwise(slots)
        if b - a > 1.5 * interval_s
    )
    return Schedule(
        interval_s=interval_s,
        resolution_s=max(interval_s, _percentile(intervals, 0.99)),
        late_p99_s=_percentile(late, 0.99),
        late_max_s=late[-1],
        skipped=skipped,
    )


def _percentile(ordered: Sequence[float], share: float) -> float:
    """The value at or below which ``share`` of ``ordered`` (sorted) lies."""
    index = max(0, min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1))
    return ordered[index]


def largest_gap_s(samples: Sequence[Sample]) -> float:
    """Longest time between the starts of consecutive samples (start order)."""
    starts = [sample.start_mono for sample in samples]
    return max((b - a for a, b in itertools.pairwise(starts)), default=0.0)


def gap_limit_s(resolution_s: float) -> float:
    """A gap longer than this between samples means the probe fell behind: what
    happened then was not measured, so no verdict can rest on it."""
    return max(GAP_INTERVALS * resolution_s, GAP_MIN_S)


def _reasons(figures: WorkflowFigures, tier: Tier) -> list[str]:
    name = workflow_label(figures.workflow)
    if figures.samples == 0:
        return [f"{name} has no measurement: the probe recorded no samples"]

    reasons = []
    if not figures.recovered:
        reasons.append(f"{name} had not recovered when measurement ended")
    if figures.max_outage_s > tier.max_outage_s:
        reasons.append(
            f"{name} was down for"
            f" {human_duration(figures.max_outage_s, above_s=tier.max_outage_s)}"
            f" at most, over its {tier_label(tier.name).replace(' ', '-')} limit of"
            f" {human_duration(tier.max_outage_s)}"
        )
    elif figures.downtime_s > tier.max_outage_s:
        # Short outages that come and go add up for the people using them.
        reasons.append(
            f"{name} was down {human_duration(figures.downtime_s)} in all, in"
            f" {len(figures.windows)} outages, over its"
            f" {tier_label(tier.name).replace(' ', '-')} limit of"
            f" {human_duration(tier.max_outage_s)} per fault"
        )
    if tier.error_budget is not None and figures.failed > tier.error_budget * (
        figures.samples
    ):
        reasons.append(
            f"{name} failed {figures.failed} of {figures.samples} attempts,"
            f" over its error budget of {tier.error_budget:.1%}"
        )
    if figures.largest_gap_s > gap_limit_s(figures.resolution_s):
        reasons.append(
            f"{name} went unmeasured for {human_duration(figures.largest_gap_s)}"
            " (the probe fell behind its schedule); no verdict can rest on that"
        )
    if figures.lost_writes > tier.rpo_writes:
        reasons.append(
            f"{lost_writes_phrase(figures.workflow, figures.lost_writes)};"
            f" {tier_label(tier.name)} {allows_phrase(tier.rpo_writes)}"
        )
    return reasons


def workflow_label(workflow: str) -> str:
    """``warehouse_scanning`` -> ``warehouse scanning``."""
    return workflow.replace("_", " ")


def tier_label(tier_name: str) -> str:
    """``tier1`` -> ``tier 1``; other names are kept as they are."""
    match = re.fullmatch(r"tier[-_ ]?(\d+)", tier_name, flags=re.IGNORECASE)
    return f"tier {match.group(1)}" if match else tier_name


def human_duration(seconds: float, above_s: float | None = None) -> str:
    """A duration as people say it: ``41.2 s``, ``30 s``, ``5 min``, ``2.5 min``.

    With ``above_s``, a value over that limit gets the digits it needs so that it
    does not print as the limit itself (30.04 s against 30 s reads ``30.04 s``).
    """
    unit, scale = ("s", 1.0) if seconds < 120 else ("min", 60.0)
    digits = 1
    while (
        above_s is not None
        and digits < 3
        and seconds > above_s
        and float(f"{seconds / scale:.{digits}f}") * scale <= above_s
    ):
        digits += 1
    return f"{_trim(seconds / scale, digits)} {unit}"


def lost_writes_phrase(workflow: str, count: int) -> str:
    """``3 acknowledged dispatches were lost``."""
    one, many = _WRITE_NOUNS.get(workflow, ("write", "writes"))
    of = "" if workflow in _WRITE_NOUNS else f" of {workflow_label(workflow)}"
    if count == 1:
        return f"1 acknowledged {one}{of} was lost"
    return f"{count} acknowledged {many}{of} were lost"


def write_noun(workflow: str, count: int) -> str:
    """What ``count`` acknowledged writes of ``workflow`` are called:
    ``dispatches``, ``approval``, ``writes of procurement``."""
    one, many = _WRITE_NOUNS.get(workflow, ("write", "writes"))
    noun = one if count == 1 else many
    of = "" if workflow in _WRITE_NOUNS else f" of {workflow_label(workflow)}"
    return f"{noun}{of}"


def allows_phrase(rpo_writes: int) -> str:
    if rpo_writes == 0:
        return "allows none"
    return f"allows at most {rpo_writes}"


def _trim(value: float, digits: int) -> str:
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
