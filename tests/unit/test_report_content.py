"""The first screen, the matrix, findings, trend and evidence of report.html."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from pathlib import Path

from matplotlib.image import imread

from chaoscert.cli import _tier_exit_code
from chaoscert.history import history_path, record_run
from chaoscert.report import render_report
from chaoscert.report.charts import timeline_png
from chaoscert.results import (
    EventResult,
    LogExcerpt,
    RunWriter,
    load_results,
)
from tests.unit.test_report import (
    HEALED,
    INJECTED,
    T0,
    TIER1,
    TIER3,
    failing_run,
    probe,
    scenario,
    start,
)


def passing_run(tmp_path: Path, down_s: float = 8.0, name: str = "quick") -> Path:
    writer = start(tmp_path)
    samples = probe("dispatch", 22.0, 22.0 + down_s) + probe("invoice_posting", 0, 0)
    writer.add_scenario(
        scenario(name, samples, {"dispatch": TIER1, "invoice_posting": TIER3}),
        samples,
    )
    writer.finish()
    return writer.run_dir


def section(html: str, ident: str) -> str:
    match = re.search(rf'<section id="{ident}">(.*?)</section>', html, re.S)
    assert match, f"no section {ident}"
    return match.group(1)


def test_the_first_screen_leads_with_go_live_and_what_stands_in_the_way(
    tmp_path: Path,
) -> None:
    html = render_report(failing_run(tmp_path)).read_text()
    first = section(html, "verdict")

    assert "NOT CERTIFIED for go-live" in first
    assert "1 tier broke a limit: Tier 1 (the warehouse floor)" in first
    assert "What stands in the way" in first
    assert (
        '<a href="#scenario-1">dispatch survives a primary hang</a>: dispatch was'
        " down 41.3 s when the node holding the Postgres primary hung; limit 30 s"
    ) in first
    assert "2 scenarios" not in first
    assert "1 scenario (1 failed)" in first
    assert "within 0.5 s" in first
    assert html.index('id="verdict"') < html.index('id="matrix"')


def test_a_passing_run_is_certified_for_go_live_with_nothing_in_the_way(
    tmp_path: Path,
) -> None:
    html = render_report(passing_run(tmp_path)).read_text()
    first = section(html, "verdict")

    assert "CERTIFIED for go-live" in first
    assert "NOT CERTIFIED" not in first
    assert "What stands in the way" not in first


def test_the_matrix_has_a_cell_per_scenario_and_workflow_coloured_by_verdict(
    tmp_path: Path,
) -> None:
    html = render_report(failing_run(tmp_path)).read_text()
    matrix = section(html, "matrix")

    cells = re.findall(r'<td class="(pass|fail)" title="[^"]*">([^<]+)<', matrix)
    assert cells == [("fail", "41.3 s "), ("pass", "8.3 s ")]
    assert "limit 30 s · 0 of 200 lost" in matrix
    assert "limit 30 min" in matrix
    assert "<th>dispatch</th><th>invoice posting</th>" in matrix


def test_findings_are_written_from_the_measurements(tmp_path: Path) -> None:
    html = render_report(failing_run(tmp_path)).read_text()
    findings = section(html, "findings")

    assert "Dispatch was down for as long as the fault lasted (30 s)" in findings
    assert "nothing took over while pg-b1 was gone" in findings
    assert 'class="critical"' in findings


def test_a_clean_run_says_nothing_calls_for_action(tmp_path: Path) -> None:
    html = render_report(passing_run(tmp_path)).read_text()

    assert "Nothing this run measured calls for action" in section(html, "findings")


def test_evidence_holds_component_logs_escaped_and_the_configuration(
    tmp_path: Path,
) -> None:
    writer = start(tmp_path)
    samples = probe("dispatch", 22.0, 30.0)
    base = scenario("quick", samples, {"dispatch": TIER1})
    logs = [
        LogExcerpt(
            component="patroni on a1",
            source="/var/tmp/x/patroni.log",
            lines=["INFO: promoted self to leader <b>", "  (3 lines left out)"],
            omitted=3,
        )
    ]
    writer.results.environment = {"patroni": {"ttl": 20}, "edge": "127.0.0.10"}
    writer.add_scenario(base.model_copy(update={"logs": logs}), samples)
    writer.finish()

    html = render_report(writer.run_dir).read_text()
    evidence = section(html, "evidence")

    assert "patroni on a1 (2 lines, 3 left out)" in evidence
    assert "promoted self to leader &lt;b&gt;" in evidence
    assert "Configuration used" in evidence
    assert "&#34;ttl&#34;: 20" in evidence
    assert "What this run covered" in evidence


def test_a_results_file_from_before_logs_still_reads(tmp_path: Path) -> None:
    run_dir = passing_run(tmp_path)
    path = run_dir / "results.json"
    path.write_text(
        path.read_text()
        .replace('"schema_version": 2', '"schema_version": 1')
        .replace('"logs": [],', "")
    )

    results = load_results(run_dir)

    assert results.schema_version == 1
    assert results.scenarios[0].logs == []
    render_report(run_dir)


def test_platform_events_get_their_own_strip_on_the_timeline(tmp_path: Path) -> None:
    samples = probe("dispatch", 22.0, 30.0)
    quiet = scenario("quick", samples, {"dispatch": TIER1}, events=[])
    eventful = scenario(
        "quick",
        samples,
        {"dispatch": TIER1},
        events=[
            EventResult(
                at=T0,
                mono=INJECTED + 21,
                source="patroni",
                text="leader changed from a1 to b1",
            ),
            EventResult(
                at=T0, mono=INJECTED + 3, source="haproxy", text="edge marks a2 DOWN"
            ),
            EventResult(at=T0, mono=HEALED, source="fault", text="healed"),
        ],
    )

    plain = imread(io.BytesIO(timeline_png(quiet, samples)))
    with_events = imread(io.BytesIO(timeline_png(eventful, samples)))

    assert with_events.shape[0] > plain.shape[0]
    # The leader change is drawn in purple (#6a1b9a) somewhere on the chart.
    purple = (
        (abs(with_events[..., 0] - 0x6A / 255) < 0.05)
        & (abs(with_events[..., 1] - 0x1B / 255) < 0.05)
        & (abs(with_events[..., 2] - 0x9A / 255) < 0.05)
    )
    assert purple.sum() > 50
    assert not (
        (abs(plain[..., 0] - 0x6A / 255) < 0.05)
        & (abs(plain[..., 1] - 0x1B / 255) < 0.05)
        & (abs(plain[..., 2] - 0x9A / 255) < 0.05)
    ).any()


def _history_of(tmp_path: Path, outages: list[float]) -> tuple[Path, list[Path]]:
    store = history_path(tmp_path / "reports")
    runs = []
    for index, down in enumerate(outages):
        run_dir = passing_run(tmp_path / f"r{index}", down_s=down)
        results = load_results(run_dir)
        results.started_at = T0 + timedelta(days=index)
        (run_dir / "results.json").write_text(results.model_dump_json())
        record_run(store, results)
        runs.append(run_dir)
    return store, runs


def test_a_regression_after_stable_nights_is_flagged_on_the_first_screen(
    tmp_path: Path,
) -> None:
    store, runs = _history_of(tmp_path, [8.0, 8.5, 8.0, 8.5, 8.0, 19.0])

    html = render_report(runs[-1], store).read_text()

    first = section(html, "verdict")
    assert "1 figure worsened beyond noise since earlier runs" in first
    trend = section(html, "trend")
    assert "REGRESSION" in trend
    assert "8.3 · 8.8 · 8.3 · 8.8 · 8.3" in trend
    assert trend.count("data:image/png;base64") == 1
    assert "Compare this run&#39;s evidence with run" in section(html, "findings")


def test_a_run_within_noise_is_not_flagged(tmp_path: Path) -> None:
    store, runs = _history_of(tmp_path, [8.0, 8.5, 8.0, 8.5, 8.0, 8.5])

    html = render_report(runs[-1], store).read_text()

    assert "worsened beyond noise" not in html
    assert "REGRESSION" not in html
    assert "up to 6 runs of each scenario" in section(html, "trend")


def test_the_first_run_says_the_trend_starts_next_time(tmp_path: Path) -> None:
    run_dir = passing_run(tmp_path)
    store = history_path(tmp_path)

    html = render_report(run_dir, store).read_text()

    assert "trends start with the next run" in section(html, "trend")


def test_a_failed_tier_makes_the_run_exit_non_zero_even_if_pytest_passed(
    tmp_path: Path,
) -> None:
    assert _tier_exit_code(failing_run(tmp_path / "a"), 0) == 1
    assert _tier_exit_code(passing_run(tmp_path / "b"), 0) == 0
    assert _tier_exit_code(passing_run(tmp_path / "c"), 2) == 2
    assert _tier_exit_code(tmp_path / "no-run", 0) == 0


def test_a_writer_result_round_trips_logs(tmp_path: Path) -> None:
    writer: RunWriter = start(tmp_path)
    samples = probe("dispatch", 22.0, 30.0)
    logs = [LogExcerpt(component="etcd on a1", source="x", lines=["l1"], omitted=0)]
    writer.add_scenario(
        scenario("quick", samples, {"dispatch": TIER1}).model_copy(
            update={"logs": logs}
        ),
        samples,
    )

    assert load_results(writer.run_dir).scenarios[0].logs == logs
