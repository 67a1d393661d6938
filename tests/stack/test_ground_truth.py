"""The benchmarks' stopwatch check: outages of known length at the edge.

The mechanism itself is checked against an independent observer (plain
HTTP requests to the edge's own liveness URI, not chaoscert's probes), as is
the observer of the outage users see (fresh requests through the whole path
from the thaw on), then chaoscert's measurement of a short and a long outage. Tolerances
are wide enough for a busy machine; the benchmarks print the exact figures.
"""

from __future__ import annotations

import time

import pytest

from benchmarks import accuracy
from benchmarks.edge import PingWatch, first_answer_in_time, freeze_edge
from chaoscert.platforms.local.layout import EDGE_NODE
from chaoscert.platforms.local.platform import LocalPlatform

pytestmark = pytest.mark.stack

BUSY_MARGIN_S = 0.5


def test_a_frozen_edge_answers_nothing_for_exactly_the_time_it_is_frozen(
    local_platform: LocalPlatform,
) -> None:
    local_platform.wait_steady(120)
    layout = local_platform.layout
    watch = PingWatch(layout.topology.edge_address, layout.topology.ports.edge)
    watch.start()
    try:
        time.sleep(1.0)
        outage = freeze_edge(local_platform, 3.0, accuracy.SLOW_S)
        time.sleep(1.0)
    finally:
        watch.stop()

    assert 3.0 <= outage.seconds < 3.0 + BUSY_MARGIN_S
    # Users are served again after the thaw, once the few requests held up by
    # a short freeze are answered.
    assert outage.served_mono is not None
    assert outage.thawed_mono < outage.served_mono < outage.thawed_mono + 2.0
    assert not local_platform.stack.group(EDGE_NODE).frozen()
    assert not local_platform.registry.live()
    silence = watch.longest_silence(outage.frozen_mono - 1.0, outage.thawed_mono + 1.0)
    assert abs(silence - outage.seconds) < BUSY_MARGIN_S, (silence, outage.seconds)
    # Answers came before and after the freeze, none inside it.
    inside = [
        t
        for t in watch.answers
        if outage.frozen_mono + 0.05 < t < outage.thawed_mono - 0.05
    ]
    assert inside == []


def test_a_short_and_a_long_outage_are_measured_to_within_a_probe_interval(
    local_platform: LocalPlatform,
) -> None:
    trials = accuracy.run_trials(
        local_platform, rates_hz=(20.0,), outages_s=(1.0, 10.0), repeats=1, log=False
    )

    assert len(trials) == 2
    for trial in trials:
        bound = 1 / trial.rate_hz + accuracy.GOAL_MARGIN_S + BUSY_MARGIN_S
        assert abs(trial.error_s) <= bound, (trial.outage.seconds, trial.measured_s)


def test_the_observer_of_the_users_outage_is_answered_at_once_on_a_steady_stack(
    local_platform: LocalPlatform,
) -> None:
    local_platform.wait_steady(120)
    topology = local_platform.layout.topology

    asked = time.monotonic()
    served = first_answer_in_time(
        topology.edge_address, topology.ports.edge, accuracy.SLOW_S
    )

    assert served is not None
    assert served - asked < accuracy.SLOW_S + BUSY_MARGIN_S
