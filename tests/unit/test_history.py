"""The history store, trends across runs, regression flags and `chaoscert history`."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chaoscert import cli
from chaoscert.errors import ConfigError
from chaoscert.history import (
    HISTORY_FILE,
    TrendPoint,
    history_path,
    judge_regression,
    latest_trends,
    record_run,
    trends_for_run,
)
from chaoscert.results import (
    RunResults,
    ScenarioResult,
    SloApplied,
    Status,
    WorkflowResult,
    probe_settings,
)

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
HANG = "Every workflow keeps its tier when the node holding the Postgres primary hangs"
CRASH = (
    "Every workflow keeps its tier when the node holding the Postgres primary crashes"
)
STABLE_S = [23.5, 24.1, 23.0, 23.6, 24.0]


def workflow(
    max_outage_s: float = 23.5,
    *,
    name: str = "dispatch",
    lost_writes: int = 0,
    recovered: bool = True,
    verdict: str = "pass",
) -> WorkflowResult:
    tier1 = name == "dispatch"
    return WorkflowResult.model_validate(
        {
            "name": name,
            "tier": "tier1" if tier1 else "tier3",
            "samples": 200,
            "failed": int(max_outage_s * 2),
            "max_outage_s": max_outage_s,
            "downtime_s": max_outage_s + 1.5,
            "recovery_s": max_outage_s + 2.0 if recovered else None,
            "recovered": recovered,
            "lost_writes": lost_writes,
            "acknowledged_writes": 150,
            "resolution_s": 0.5,
            "slo": SloApplied(
                max_outage_s=30 if tier1 else 1800,
                rpo_writes=0,
                slow_threshold_s=2.0 if tier1 else 10.0,
            ),
            "verdict": verdict,
        }
    )


def scenario(
    *workflows: WorkflowResult, name: str = HANG, status: Status = "passed"
) -> ScenarioResult:
    return ScenarioResult(
        feature="Database failover",
        name=name,
        status=status,
        tags=["tier1", "database", "hang"],
        workflows=list(workflows) or [workflow()],
    )


def run(
    day: int,
    *scenarios: ScenarioResult,
    platform: str = "local",
    topology: str = "three-zones",
    complete: bool = True,
) -> RunResults:
    started = T0 + timedelta(days=day)
    return RunResults(
        run_id=f"{started:%Y%m%dT%H%M%SZ}-{platform[:2]}{topology[:2]}",
        platform=platform,
        topology=topology,
        started_at=started,
        ended_at=started + timedelta(minutes=40),
        complete=complete,
        probe=probe_settings({"dispatch": 2.0}, 5.0),
        scenarios=list(scenarios) or [scenario()],
    )


def outage_run(
    day: int, max_outage_s: float, lost_writes: int = 0, verdict: str = "pass"
) -> RunResults:
    figures = workflow(max_outage_s, lost_writes=lost_writes, verdict=verdict)
    return run(day, scenario(figures))


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return history_path(tmp_path / "reports")


def record_stable(store: Path) -> None:
    for day, max_outage_s in enumerate(STABLE_S):
        record_run(store, outage_run(day, max_outage_s))


def point(
    max_outage_s: float,
    lost_writes: int = 0,
    recovered: bool = True,
    verdict: str = "pass",
    day: int = 0,
) -> TrendPoint:
    return TrendPoint(
        run_id=f"run-{day}",
        started_at=T0 + timedelta(days=day),
        max_outage_s=max_outage_s,
        downtime_s=max_outage_s,
        lost_writes=lost_writes,
        recovered=recovered,
        verdict=verdict,
    )


def rows(store: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(store)) as conn:
        return conn.execute(sql).fetchall()


def records(store: Path, query: str) -> list[dict[str, object]]:
    with closing(sqlite3.connect(store)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(query)]


def sql(store: Path, statement: str) -> None:
    with closing(sqlite3.connect(store)) as conn, conn:
        conn.execute(statement)


# The store.


def test_history_lives_in_the_reports_dir() -> None:
    assert HISTORY_FILE == "history.sqlite"
    assert history_path(Path("reports")) == Path("reports/history.sqlite")


def test_recording_creates_the_store_with_every_figure(store: Path) -> None:
    results = run(
        0,
        scenario(
            workflow(23.5, lost_writes=2),
            workflow(5.0, name="invoice_posting", verdict="fail", recovered=False),
            status="failed",
        ),
        complete=False,
    )

    record_run(store, results)

    assert store.is_file()
    assert rows(store, "SELECT * FROM runs") == [
        (
            results.run_id,
            "2026-12-01T02:00:00.000000+00:00",
            "2026-12-01T02:40:00.000000+00:00",
            "local",
            "three-zones",
            0,
        )
    ]
    common = {
        "run_id": results.run_id,
        "feature": "Database failover",
        "scenario": HANG,
        "status": "failed",
        "acknowledged_writes": 150,
        "samples": 200,
        "resolution_s": 0.5,
        "rpo_writes": 0,
    }
    assert records(store, "SELECT * FROM measurements ORDER BY position") == [
        common
        | {
            "position": 0,
            "workflow": "dispatch",
            "tier": "tier1",
            "max_outage_s": 23.5,
            "downtime_s": 25.0,
            "recovered": 1,
            "lost_writes": 2,
            "failed": 47,
            "limit_s": 30.0,
            "verdict": "pass",
        },
        common
        | {
            "position": 1,
            "workflow": "invoice_posting",
            "tier": "tier3",
            "max_outage_s": 5.0,
            "downtime_s": 6.5,
            "recovered": 0,
            "lost_writes": 0,
            "failed": 10,
            "limit_s": 1800.0,
            "verdict": "fail",
        },
    ]
    assert rows(store, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        ("1",)
    ]


def test_a_recorded_run_reads_back_as_its_trend(store: Path) -> None:
    results = outage_run(0, 23.5, lost_writes=1)
    record_run(store, results)

    [trend] = latest_trends(store)

    assert (trend.feature, trend.scenario, trend.workflow, trend.tier) == (
        "Database failover",
        HANG,
        "dispatch",
        "tier1",
    )
    assert (trend.limit_s, trend.rpo_writes, trend.resolution_s) == (30.0, 0, 0.5)
    assert trend.points == (
        TrendPoint(
            run_id=results.run_id,
            started_at=T0,
            max_outage_s=23.5,
            downtime_s=25.0,
            lost_writes=1,
            recovered=True,
            verdict="pass",
        ),
    )
    assert trend.latest.started_at.utcoffset() == timedelta(0)
    assert (trend.baseline_s, trend.noise_s, trend.regression) == (None, None, None)


def test_recording_a_run_again_replaces_it(store: Path) -> None:
    first = run(0, scenario(), scenario(name=CRASH))
    record_run(store, first)
    again = first.model_copy(update={"scenarios": [scenario(workflow(26.0))]})

    record_run(store, again)
    record_run(store, again)

    assert rows(store, "SELECT count(*) FROM runs") == [(1,)]
    assert rows(store, "SELECT scenario, max_outage_s FROM measurements") == [
        (HANG, 26.0)
    ]


def test_two_runs_finishing_together_are_both_recorded(store: Path) -> None:
    runs = [outage_run(day, 20.0 + day) for day in range(8)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda results: record_run(store, results), runs))

    assert rows(store, "SELECT count(*) FROM runs") == [(8,)]
    [trend] = latest_trends(store)
    assert [p.max_outage_s for p in trend.points] == [20.0 + day for day in range(8)]


# Trends.


def test_a_trend_is_oldest_first_and_ends_with_its_run(store: Path) -> None:
    for day in (2, 0, 3, 1):
        record_run(store, outage_run(day, 20.0 + day))

    [trend] = trends_for_run(store, outage_run(2, 22.0))

    assert [p.max_outage_s for p in trend.points] == [20.0, 21.0, 22.0]
    assert trend.latest.run_id == outage_run(2, 22.0).run_id


def test_a_run_not_yet_recorded_is_appended(store: Path) -> None:
    record_stable(store)
    unrecorded = outage_run(9, 24.4)

    [trend] = trends_for_run(store, unrecorded)

    assert [p.max_outage_s for p in trend.points] == [*STABLE_S, 24.4]
    assert trend.latest.run_id == unrecorded.run_id
    assert rows(store, "SELECT count(*) FROM runs") == [(5,)]


def test_the_run_given_wins_over_its_recorded_figures(store: Path) -> None:
    record_stable(store)

    [trend] = trends_for_run(store, outage_run(4, 29.0))

    assert [p.max_outage_s for p in trend.points] == [*STABLE_S[:4], 29.0]


def test_trends_follow_the_order_of_the_run(store: Path) -> None:
    results = run(
        0,
        scenario(name=CRASH),
        scenario(workflow(), workflow(4.0, name="invoice_posting"), name=HANG),
    )

    trends = trends_for_run(store, results)

    assert [(t.scenario, t.workflow) for t in trends] == [
        (CRASH, "dispatch"),
        (HANG, "dispatch"),
        (HANG, "invoice_posting"),
    ]


def test_trends_are_kept_apart_by_platform_and_topology(store: Path) -> None:
    for day in range(3):
        record_run(store, outage_run(day, 20.0 + day))
        other_platform = run(day, scenario(workflow(40.0 + day)), platform="kind")
        record_run(store, other_platform)
        other_topology = run(day, scenario(workflow(60.0 + day)), topology="two")
        record_run(store, other_topology)

    [local] = trends_for_run(store, outage_run(3, 23.0))
    kind = latest_trends(store, platform="kind")
    two = latest_trends(store, platform="local", topology="two")

    assert [p.max_outage_s for p in local.points] == [20.0, 21.0, 22.0, 23.0]
    assert [[p.max_outage_s for p in t.points] for t in kind] == [[40.0, 41.0, 42.0]]
    assert [[p.max_outage_s for p in t.points] for t in two] == [[60.0, 61.0, 62.0]]
    assert len(latest_trends(store)) == 3


def test_errored_and_skipped_scenarios_are_not_points(store: Path) -> None:
    record_run(store, outage_run(0, 20.0))
    record_run(store, run(1, scenario(workflow(99.0), status="error")))
    record_run(store, run(2, scenario(workflow(98.0), status="skipped")))
    record_run(store, run(3, scenario(workflow(21.0)), complete=False))

    [latest] = latest_trends(store)
    [later] = trends_for_run(store, outage_run(4, 22.0))
    errored_now = trends_for_run(store, run(4, scenario(status="error")))

    assert [p.max_outage_s for p in latest.points] == [20.0, 21.0]
    assert [p.max_outage_s for p in later.points] == [20.0, 21.0, 22.0]
    assert errored_now == []


def test_a_missing_store_gives_one_point_trends(store: Path) -> None:
    [trend] = trends_for_run(store, outage_run(0, 23.5))

    assert [p.max_outage_s for p in trend.points] == [23.5]
    assert trend.regression is None
    assert latest_trends(store) == []
    assert not store.exists()


def test_last_bounds_the_points_but_not_the_baseline(store: Path) -> None:
    for day in range(12):
        record_run(store, outage_run(day, 20.0 if day < 10 else 30.0))

    [trend] = trends_for_run(store, outage_run(12, 30.0), last=3)
    [latest] = latest_trends(store, last=2)

    assert [p.max_outage_s for p in trend.points] == [30.0, 30.0, 30.0]
    assert trend.baseline_s == 20.0
    assert trend.regression is not None
    assert "over the previous 10 runs" in trend.regression
    assert [p.max_outage_s for p in latest.points] == [30.0, 30.0]
    assert latest.baseline_s == 20.0


def test_latest_trends_filters_by_part_of_the_scenario_name(store: Path) -> None:
    record_run(store, run(0, scenario(name=HANG), scenario(name=CRASH)))

    trends = latest_trends(store, scenario="CRASHES")

    assert [t.scenario for t in trends] == [CRASH]


def test_a_jump_after_stable_runs_is_a_regression(store: Path) -> None:
    record_stable(store)

    [trend] = trends_for_run(store, outage_run(5, 27.9))

    assert trend.baseline_s == 23.6
    assert trend.noise_s == pytest.approx(2.36)
    assert trend.regression == (
        "dispatch's longest outage rose to 27.9 s from a median of 23.6 s"
        " over the previous 5 runs (noise 2.4 s); limit 30 s"
    )


def test_a_rise_within_noise_is_not_a_regression(store: Path) -> None:
    record_stable(store)

    [trend] = trends_for_run(store, outage_run(5, 25.9))

    assert trend.baseline_s == 23.6
    assert trend.regression is None


def test_more_lost_writes_than_ever_before_is_a_regression(store: Path) -> None:
    record_run(store, outage_run(0, 23.5, lost_writes=1))
    record_run(store, outage_run(1, 23.5))

    [same] = trends_for_run(store, outage_run(2, 23.5, lost_writes=1))
    [more] = trends_for_run(store, outage_run(2, 23.5, lost_writes=3))

    assert same.regression is None
    assert more.regression == (
        "dispatch lost 3 acknowledged writes where the previous 2 runs lost at most 1"
    )


def test_failing_after_passing_is_a_regression(store: Path) -> None:
    record_stable(store)

    [trend] = trends_for_run(store, outage_run(5, 24.0, verdict="fail"))
    record_run(store, outage_run(5, 24.0, verdict="fail"))
    [again] = trends_for_run(store, outage_run(6, 24.0, verdict="fail"))

    assert trend.regression == (
        "dispatch failed its tier, after passing in each of the previous 5 runs"
    )
    assert again.regression is None


def test_only_the_last_ten_runs_are_judged_against(store: Path) -> None:
    record_run(store, outage_run(0, 20.0, lost_writes=5))
    for day in range(1, 11):
        record_run(store, outage_run(day, 20.0))

    [trend] = trends_for_run(store, outage_run(11, 20.0, lost_writes=2))

    assert len(trend.points) == 12
    assert trend.regression == (
        "dispatch lost 2 acknowledged writes where the previous 10 runs lost none"
    )


# The rule, as a pure function.


def test_no_previous_run_judges_nothing() -> None:
    assert judge_regression([], point(99.0, 5, False, "fail"), 0.5, 30, "x") == (
        None,
        None,
        None,
    )


def test_noise_has_floors_of_resolution_ten_percent_and_half_a_second() -> None:
    steady = [point(10.0, day=day) for day in range(5)]

    _, baseline_s, by_resolution = judge_regression(steady, point(10), 2.0, 30, "d")
    _, _, by_share = judge_regression(
        [point(40.0)] * 3, point(40), 0.1, 1800, "invoice_posting"
    )
    _, _, floor_s = judge_regression([point(1.0)] * 3, point(1), 0.1, 30, "d")

    assert (baseline_s, by_resolution) == (10.0, 4.0)
    assert by_share == pytest.approx(4.0)
    assert floor_s == 0.5


def test_noise_widens_with_the_scatter_of_previous_runs() -> None:
    scattered = [point(v) for v in (20.0, 24.0, 22.0, 26.0, 18.0)]

    sentence, baseline_s, noise_s = judge_regression(
        scattered, point(29.0), 0.5, 30, "dispatch"
    )

    assert baseline_s == 22.0
    assert noise_s == pytest.approx(3 * 1.4826 * 2.0)
    assert sentence is None


def test_the_baseline_is_the_last_ten_previous_runs() -> None:
    previous = [point(50.0)] * 5 + [point(20.0)] * 10

    sentence, baseline_s, _ = judge_regression(previous, point(25.0), 0.5, 30, "d")

    assert baseline_s == 20.0
    assert sentence is not None
    assert sentence.startswith("d's longest outage rose to 25.0 s")
    assert "over the previous 10 runs" in sentence


def test_not_recovering_after_always_recovering_is_a_regression() -> None:
    previous = [point(20.0), point(20.0)]

    sentence, _, _ = judge_regression(
        previous, point(20.0, recovered=False), 0.5, 30, "d"
    )
    after_one_miss, _, _ = judge_regression(
        [*previous, point(20.0, recovered=False)],
        point(20.0, recovered=False),
        0.5,
        30,
        "d",
    )

    assert (
        sentence == "d did not recover, after recovering in each of the previous 2 runs"
    )
    assert after_one_miss is None


def test_every_reason_found_is_in_the_sentence() -> None:
    sentence, _, _ = judge_regression(
        [point(20.0)] * 3, point(40.0, 1, False, "fail"), 0.5, 30, "d"
    )

    assert sentence is not None
    assert sentence.split("; ")[1:] == [
        "limit 30 s",
        "d lost 1 acknowledged write where the previous 3 runs lost none",
        "d did not recover, after recovering in each of the previous 3 runs",
        "d failed its tier, after passing in each of the previous 3 runs",
    ]


def test_a_longer_outage_needs_three_earlier_runs_to_be_a_regression() -> None:
    two, _, _ = judge_regression([point(20.0)] * 2, point(40.0), 0.5, 30, "d")
    three, _, _ = judge_regression([point(20.0)] * 3, point(40.0), 0.5, 30, "d")

    assert two is None
    assert three is not None and "rose to 40.0 s" in three


# Refusing what is not ours.


def test_a_store_of_a_newer_schema_is_refused(store: Path) -> None:
    record_stable(store)
    sql(store, "UPDATE meta SET value = '99' WHERE key = 'schema_version'")

    for read in (
        lambda: record_run(store, outage_run(9, 20.0)),
        lambda: trends_for_run(store, outage_run(9, 20.0)),
        lambda: latest_trends(store),
    ):
        with pytest.raises(ConfigError) as caught:
            read()
        message = str(caught.value)
        assert message.startswith(f"{store}: history schema_version 99 is newer")
        assert "\n" not in message
    assert rows(store, "SELECT count(*) FROM runs") == [(5,)]


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(store: Path) -> None:
    store.parent.mkdir(parents=True)
    store.write_text("run_id,max_outage_s\n", encoding="utf-8")

    for read in (
        lambda: record_run(store, outage_run(0, 20.0)),
        lambda: trends_for_run(store, outage_run(0, 20.0)),
        lambda: latest_trends(store),
    ):
        with pytest.raises(ConfigError) as caught:
            read()
        message = str(caught.value)
        assert message.startswith(f"{store}: not a chaoscert history store")
        assert "\n" not in message
    assert store.read_text(encoding="utf-8") == "run_id,max_outage_s\n"


def test_another_sqlite_database_is_refused(store: Path) -> None:
    store.parent.mkdir(parents=True)
    sql(store, "CREATE TABLE invoices (id INTEGER)")

    with pytest.raises(ConfigError, match="not a chaoscert history store"):
        record_run(store, outage_run(0, 20.0))
    assert rows(store, "SELECT name FROM sqlite_master") == [("invoices",)]


# The command.


def history(reports: Path, *args: str) -> int:
    return cli.main(["history", "--reports-dir", str(reports), *args])


def test_the_command_shows_the_trend_and_flags_a_regression(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record_stable(store)
    record_run(store, outage_run(5, 27.9))

    code = history(store.parent)

    out = capsys.readouterr().out
    assert code == 1
    assert "23.5 24.1 23.0 23.6 24.0 27.9" in out
    assert "tier1 (30 s)" in out
    assert "23.6 ±2.4" in out
    [row] = [line for line in out.splitlines() if line.startswith(f"│ {HANG}")]
    assert row.rstrip(" │").endswith("REGRESSION")
    assert "│ ▂▃▁▂▂█ │" in row
    assert (
        f"REGRESSION {HANG} (dispatch): dispatch's longest outage rose to 27.9 s"
        " from a median of 23.6 s over the previous 5 runs (noise 2.4 s);"
        " limit 30 s\n"
    ) in out
    assert out.endswith("1 regression in 1 scenario workflows\n")


def test_the_command_exits_0_without_a_regression(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record_stable(store)

    code = history(store.parent, "--last", "2")

    out = capsys.readouterr().out
    assert code == 0
    assert "23.6 24.0" in out
    assert "24.1" not in out
    assert "REGRESSION" not in out
    assert out.endswith("no regressions in 1 scenario workflows\n")


def test_the_command_filters_by_platform_and_scenario(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record_run(store, run(0, scenario(name=HANG), scenario(name=CRASH)))
    record_run(store, run(0, scenario(workflow(41.0)), platform="kind"))

    code = history(store.parent, "--platform", "local", "--scenario", "crashes")
    out = capsys.readouterr().out
    none_code = history(store.parent, "--platform", "aws")
    none_out = capsys.readouterr().out

    assert code == 0
    assert "local / three-zones" in out
    assert CRASH in out
    assert HANG not in out
    assert "kind" not in out
    assert none_code == 1
    assert none_out == f"no recorded run in {store} matches the filters given\n"


def test_the_command_without_history_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = history(tmp_path)

    out = capsys.readouterr().out
    assert code == 1
    assert out.startswith(f"no history yet in {tmp_path / HISTORY_FILE}: ")
    assert out.count("\n") == 1


def test_the_command_refuses_a_bad_store_in_one_line(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store.parent.mkdir(parents=True)
    store.write_bytes(b"\x00not sqlite at all" * 10)

    code = history(store.parent)

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"chaoscert: {store}: not a chaoscert history store")
    assert err.count("\n") == 1


def test_the_command_refuses_last_below_one(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record_stable(store)

    code = history(store.parent, "--last", "0")

    assert code == 2
    assert "--last must be at least 1, not 0" in capsys.readouterr().err


def test_the_installed_command_reads_in_a_pipe(store: Path) -> None:
    record_stable(store)
    record_run(store, outage_run(5, 27.9))

    done = subprocess.run(
        [sys.executable, "-m", "chaoscert.cli", "history"],
        cwd=store.parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 1, done.stderr
    assert "\x1b[" not in done.stdout
    [row] = [line for line in done.stdout.splitlines() if line.startswith("│ Every")]
    assert "27.9" in row
    assert row.rstrip(" │").endswith("REGRESSION")
    assert done.stdout.endswith("1 regression in 1 scenario workflows\n")
