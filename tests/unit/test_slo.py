"""Exact checks of the measurement definitions in DESIGN.md."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from chaoscert.config import Tier, load_slo
from chaoscert.probes.samples import Sample
from chaoscert.slo import (
    Window,
    human_duration,
    in_start_order,
    is_failed,
    judge,
    outage_windows,
    recovery_s,
    schedule,
    tier_label,
)

ROOT = Path(__file__).resolve().parents[2]

TIER1 = Tier(
    name="tier1",
    title="Tier 1: the warehouse floor",
    max_outage_s=30,
    rpo_writes=0,
    slow_threshold_s=2.0,
)


def sample(
    start: float,
    ok: bool = True,
    latency: float = 0.25,
    seq: int = 0,
    workflow: str = "dispatch",
) -> Sample:
    return Sample(
        workflow=workflow,
        seq=seq,
        scheduled_mono=start,
        start_mono=start,
        end_mono=start + latency,
        start_wall=1_700_000_000.0 + start,
        ok=ok,
        error_kind="" if ok else "timeout",
    )


def series(outcomes: str, step: float = 1.0, start: float = 0.0) -> list[Sample]:
    """'..xx.' -> samples every `step` s: '.' ok, 'x' failed, 's' slow success."""
    out = []
    for i, char in enumerate(outcomes):
        latency = 3.0 if char == "s" else 0.25
        out.append(sample(start + i * step, ok=char != "x", latency=latency, seq=i))
    return out


# failed sample


def test_not_ok_is_failed() -> None:
    assert is_failed(sample(0, ok=False), 2.0)


def test_success_slower_than_threshold_is_failed() -> None:
    assert is_failed(sample(0, latency=2.5), 2.0)


def test_success_at_exactly_the_threshold_is_not_failed() -> None:
    assert not is_failed(sample(0, latency=2.0), 2.0)


# outage windows


def test_no_failures_no_windows() -> None:
    assert outage_windows(series("....."), 2.0) == []


def test_window_runs_from_first_failed_start_to_the_next_answer_in_time() -> None:
    # Successes take 0.25 s: the window ends when the first one is answered.
    windows = outage_windows(series("..xxx.x."), 2.0)

    assert windows == [Window(2.0, 5.25), Window(6.0, 7.25)]


def test_window_can_begin_at_the_first_sample() -> None:
    assert outage_windows(series("xx.."), 2.0) == [Window(0.0, 2.25)]


def test_trailing_failures_leave_the_window_open() -> None:
    windows = outage_windows(series("..xx"), 2.0)

    assert windows == [Window(2.0, None)]
    assert windows[0].is_open


def test_slow_success_counts_as_failed() -> None:
    windows = outage_windows(series(".s.ss."), 2.0)

    assert windows == [Window(1.0, 2.25), Window(3.0, 5.25)]


def test_windows_follow_start_order_not_input_order() -> None:
    samples = series("..xxx.x.")
    random.Random(7).shuffle(samples)

    assert outage_windows(samples, 2.0) == [Window(2.0, 5.25), Window(6.0, 7.25)]


def test_a_late_finishing_failure_does_not_move_the_window_end() -> None:
    # A timed-out attempt ends after later successes; the window still ends
    # when the next success is answered.
    samples = [sample(0), sample(1, ok=False, latency=10.0), sample(2), sample(3)]

    assert outage_windows(samples, 2.0) == [Window(1.0, 2.25)]


def test_a_stall_is_measured_whole_though_its_last_attempts_succeed() -> None:
    # Frozen from 1.0 to 6.0, probed every 0.5 s, successes slower than 2 s
    # counted failed: attempts started after 4.0 are answered in time, but only
    # at 6.0, when the stall ends; the outage is the stall's 5 s.
    samples = [sample(0.0, latency=0.01, seq=0)]
    for k in range(2, 14):
        start = k * 0.5
        end = max(6.0, start + 0.01)
        samples.append(sample(start, latency=end - start, seq=k))

    assert outage_windows(samples, 2.0) == [Window(1.0, 6.0)]


def test_the_earliest_answer_ends_the_window() -> None:
    samples = [
        sample(0, ok=False),
        sample(1, latency=3.0 - 1.0 - 0.5),  # answered at 2.5
        sample(2, latency=0.1),  # answered at 2.1, earlier
        sample(3, ok=False),
        sample(4),
    ]

    assert outage_windows(samples, 2.0) == [Window(0.0, 2.1), Window(3.0, 4.25)]


def test_windows_that_would_overlap_are_merged() -> None:
    # The success started at 1.0 is answered only at 2.6, after the failure
    # started at 2.0: one outage, not two overlapping ones.
    samples = [
        sample(0, ok=False),
        sample(1, latency=1.6),
        sample(2, ok=False),
        sample(3),
    ]

    assert outage_windows(samples, 2.0) == [Window(0.0, 3.25)]


def test_open_window_duration_counts_up_to_the_given_end() -> None:
    assert Window(2.0, None).duration_s(7.5) == 5.5
    assert Window(2.0, 4.0).duration_s(7.5) == 2.0


# recovery


def test_recovery_is_measured_from_injection_to_the_end_of_the_last_window() -> None:
    windows = [Window(1.0, 2.0), Window(12.0, 20.0), Window(25.0, 26.0)]

    assert recovery_s(windows, injected_mono=10.0) == 16.0


def test_window_overlapping_the_injection_counts() -> None:
    assert recovery_s([Window(8.0, 14.0)], injected_mono=10.0) == 4.0


def test_windows_ended_before_injection_do_not_count() -> None:
    windows = [Window(1.0, 2.0), Window(5.0, 10.0)]

    assert recovery_s(windows, injected_mono=10.0) == 0.0


def test_recovery_is_zero_without_windows_and_none_when_open() -> None:
    assert recovery_s([], injected_mono=10.0) == 0.0
    assert recovery_s([Window(12.0, None)], injected_mono=10.0) is None


def test_recovery_is_none_without_an_injection_time() -> None:
    assert recovery_s([Window(1.0, 2.0)], injected_mono=None) is None


# figures


def test_figures_of_a_recovered_workflow() -> None:
    # failures at 2,3 and 6,7,8 (before and after injection at 5.0)
    samples = series("..xx..xxx..", step=1.0)

    figures = judge("dispatch", samples, TIER1, 5.0, 0, 1.0).figures

    assert figures.windows == (Window(2.0, 4.25), Window(6.0, 9.25))
    assert figures.samples == 11
    assert figures.failed == 5
    assert figures.max_outage_s == 3.25
    assert figures.downtime_s == 5.5
    assert figures.recovery_s == 4.25
    assert figures.recovered
    assert figures.resolution_s == 1.0
    assert figures.tier == "tier1"


def test_open_window_counts_to_the_last_sample_end_and_is_not_recovered() -> None:
    samples = series("..xxx", step=1.0)  # last sample starts at 4.0, ends 4.25

    figures = judge("dispatch", samples, TIER1, 1.5, 0, 1.0).figures

    assert figures.max_outage_s == 2.25
    assert figures.downtime_s == 2.25
    assert not figures.recovered
    assert figures.recovery_s is None


def test_lost_writes_given_as_ids_are_counted_and_kept() -> None:
    figures = judge("dispatch", series("..."), TIER1, 0.0, [41, 42], 1.0).figures

    assert figures.lost_writes == 2
    assert figures.lost_write_ids == (41, 42)


# verdict


def test_pass_within_every_limit() -> None:
    verdict = judge("dispatch", series("..xx.."), TIER1, 1.0, 0, 1.0)

    assert verdict.verdict == "pass"
    assert verdict.passed
    assert verdict.reasons == ()
    assert verdict.tier is TIER1


def test_outage_exactly_at_the_limit_passes() -> None:
    samples = series("." + "x" * 3, step=10.0)
    samples.append(sample(40.0, latency=0.0, seq=4))  # window 10.0 -> 40.0

    verdict = judge("dispatch", samples, TIER1, 10.0, 0, 10.0)

    assert verdict.figures.max_outage_s == 30.0
    assert verdict.verdict == "pass"


def test_outage_over_the_limit_fails_with_a_plain_sentence() -> None:
    samples = [sample(0.0), sample(1.0, ok=False), sample(42.2, latency=0.0)]

    verdict = judge("dispatch", samples, TIER1, 0.5, 0, 5.0)

    assert verdict.verdict == "fail"
    assert verdict.reasons == (
        "dispatch was down for 41.2 s at most, over its tier-1 limit of 30 s",
    )


def test_lost_writes_over_rpo_fail() -> None:
    verdict = judge("dispatch", series("...."), TIER1, 1.0, [7, 8, 9], 1.0)

    assert verdict.verdict == "fail"
    assert verdict.reasons == (
        "3 acknowledged dispatches were lost; tier 1 allows none",
    )


def test_one_lost_scan_reads_in_the_singular() -> None:
    verdict = judge(
        "warehouse_scanning",
        series("..", step=1.0),
        TIER1,
        None,
        1,
        1.0,
    )

    assert verdict.reasons == ("1 acknowledged scan was lost; tier 1 allows none",)


def test_not_recovered_fails_even_within_the_outage_limit() -> None:
    samples = series("...xx", step=1.0)

    verdict = judge("warehouse_scanning", samples, TIER1, 2.0, 0, 1.0)

    assert verdict.verdict == "fail"
    assert verdict.reasons == (
        "warehouse scanning had not recovered when measurement ended",
    )


def test_every_broken_limit_is_a_reason() -> None:
    samples = [sample(0.0), sample(1.0, ok=False), sample(41.0, ok=False, latency=0.2)]

    verdict = judge("dispatch", samples, TIER1, 0.5, 2, 5.0)

    assert verdict.reasons == (
        "dispatch had not recovered when measurement ended",
        "dispatch was down for 40.2 s at most, over its tier-1 limit of 30 s",
        "2 acknowledged dispatches were lost; tier 1 allows none",
    )


def test_outages_that_come_and_go_add_up_against_the_limit() -> None:
    # 60 s in which two attempts of three fail: never down 30 s at once.
    samples = series("xx." * 60, step=1 / 3)

    verdict = judge("dispatch", samples, TIER1, 0.0, 0, 1 / 3)

    assert verdict.figures.max_outage_s < TIER1.max_outage_s
    assert verdict.figures.downtime_s > TIER1.max_outage_s
    assert verdict.verdict == "fail"
    assert "in all, in 60 outages" in verdict.reasons[0]


def test_error_budget_counts_failed_attempts() -> None:
    tier = TIER1.model_copy(update={"error_budget": 0.01})
    samples = series(("x" + "." * 49) * 4, step=0.1)

    verdict = judge("dispatch", samples, tier, None, 0, 0.1)

    assert verdict.verdict == "fail"
    assert verdict.reasons == (
        "dispatch failed 4 of 200 attempts, over its error budget of 1.0%",
    )


def test_a_gap_in_the_samples_is_not_uptime() -> None:
    samples = series("." * 20, step=0.1) + series("." * 20, step=0.1, start=47.0)

    verdict = judge("dispatch", samples, TIER1, 2.5, 0, 0.1)

    assert verdict.figures.max_outage_s == 0.0
    assert verdict.figures.largest_gap_s == pytest.approx(45.1)
    assert verdict.verdict == "fail"
    assert "went unmeasured for 45.1 s" in verdict.reasons[0]


def test_no_samples_is_no_measurement_and_fails() -> None:
    verdict = judge("dispatch", [], TIER1, 0.0, 0, 0.5)

    assert verdict.verdict == "fail"
    assert verdict.figures.samples == 0
    assert not verdict.figures.recovered
    assert verdict.figures.resolution_s == 0.5
    assert len(verdict.reasons) == 1
    assert "no measurement" in verdict.reasons[0]


def test_tier_from_the_shipped_slo_file() -> None:
    tier = load_slo(ROOT / "fixtures" / "slo-tiers.yaml").tier_of(
        "procurement_approval"
    )
    samples = [sample(0.0), sample(1.0, ok=False), sample(361.0)]

    verdict = judge("procurement_approval", samples, tier, 0.5, 0, 60.0)

    assert verdict.reasons == (
        "procurement approval was down for 6 min at most,"
        " over its tier-2 limit of 5 min",
    )


# wording helpers


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (41.2, "41.2 s"),
        (30.0, "30 s"),
        (0.5, "0.5 s"),
        (300.0, "5 min"),
        (150, "2.5 min"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_human_duration_never_rounds_an_overrun_onto_the_limit() -> None:
    assert human_duration(30.04, above_s=30.0) == "30.04 s"
    assert human_duration(30.04) == "30 s"


def test_tier_label() -> None:
    assert tier_label("tier1") == "tier 1"
    assert tier_label("gold") == "gold"


# probe schedule


def on_schedule(n: int, interval: float, late: float = 0.0) -> list[Sample]:
    out = []
    for k in range(n):
        slot = k * interval
        item = sample(slot + late, latency=0.01, seq=k)
        item.scheduled_mono = slot
        out.append(item)
    return out


def test_a_kept_schedule_keeps_the_planned_resolution() -> None:
    kept = schedule(on_schedule(100, 0.1, late=0.002), 0.1)

    assert kept is not None
    assert kept.kept
    assert kept.skipped == 0
    assert kept.resolution_s == pytest.approx(0.1)
    assert kept.late_p99_s == pytest.approx(0.002)


def test_skipped_slots_are_counted_and_the_resolution_is_what_was_had() -> None:
    samples = on_schedule(100, 0.1)
    # The probe fell behind: every fifth slot was given up.
    samples = [s for s in samples if s.seq % 5 != 4]

    slipped = schedule(samples, 0.1)

    assert slipped is not None
    assert not slipped.kept
    assert slipped.skipped == 19  # the twentieth is the last slot: none follows
    assert slipped.resolution_s == pytest.approx(0.2)


def test_late_starts_that_stretch_intervals_break_the_schedule() -> None:
    samples = on_schedule(100, 0.1)
    for item in samples[::3]:
        item.start_mono += 0.05  # a third start 50 ms late

    late = schedule(samples, 0.1)

    assert late is not None
    assert late.skipped == 0
    assert late.late_max_s == pytest.approx(0.05)
    assert late.resolution_s == pytest.approx(0.15)
    assert not late.kept


def test_a_raised_rate_skips_no_slot() -> None:
    samples = on_schedule(50, 0.1) + [
        replace_times(item, 5.0 + item.seq * 0.02) for item in on_schedule(50, 0.02)
    ]

    raised = schedule(in_start_order(samples), 0.1)

    assert raised is not None
    assert raised.skipped == 0


def test_no_schedule_from_fewer_than_two_samples() -> None:
    assert schedule(on_schedule(1, 0.1), 0.1) is None


def replace_times(item: Sample, slot: float) -> Sample:
    item.scheduled_mono = item.start_mono = slot
    item.end_mono = slot + 0.01
    return item
