"""report.html from synthetic runs built with the real models."""

from __future__ import annotations

import base64
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chaoscert.config import Tier
from chaoscert.probes.samples import Sample
from chaoscert.report import render_report
from chaoscert.results import (
    EventResult,
    FaultResult,
    RunWriter,
    ScenarioResult,
    load_results,
    probe_settings,
    workflow_result,
)
from chaoscert.slo import judge

TIER1 = Tier(
    name="tier1",
    title="Tier 1: the warehouse floor",
    max_outage_s=30,
    rpo_writes=0,
    slow_threshold_s=2.0,
)
TIER3 = Tier(
    name="tier3",
    title="Tier 3: finance",
    max_outage_s=1800,
    rpo_writes=0,
    slow_threshold_s=10.0,
    queued=True,
)
T0 = datetime(2026, 12, 3, 15, 30, tzinfo=UTC)
BASE = 5000.0  # monotonic time of the first sample
INJECTED = BASE + 20.0
HEALED = BASE + 50.0
HOSTILE = '<script>alert("owned")</script> & <img src="https://evil.example/x.png">'


def probe(workflow: str, down_from_s: float, down_until_s: float) -> list[Sample]:
    """2 Hz for 100 s; attempts starting in [down_from_s, down_until_s) fail."""
    out = []
    for seq in range(200):
        offset = seq * 0.5
        failed = down_from_s <= offset < down_until_s
        start = BASE + offset
        out.append(
            Sample(
                workflow=workflow,
                seq=seq,
                scheduled_mono=start,
                start_mono=start,
                end_mono=start + (5.0 if failed else 0.3),
                start_wall=T0.timestamp() + offset,
                ok=not failed,
                error_kind="timeout" if failed else "",
            )
        )
    return out


def scenario(
    name: str, samples: list[Sample], tiers: dict[str, Tier], **fields: object
) -> ScenarioResult:
    workflows = []
    for workflow, tier in tiers.items():
        mine = [s for s in samples if s.workflow == workflow]
        verdict = judge(workflow, mine, tier, INJECTED, 0, 0.5)
        workflows.append(workflow_result(verdict, acknowledged_writes=len(mine)))
    values: dict[str, object] = {
        "feature": "database.feature",
        "name": name,
        "status": "passed" if all(w.verdict == "pass" for w in workflows) else "failed",
        "tags": ["tier1", "database"],
        "fault": FaultResult(
            kind="database primary hang",
            target="pg-b1",
            injected_at=T0 + timedelta(seconds=20),
            healed_at=T0 + timedelta(seconds=50),
            injected_mono=INJECTED,
            healed_mono=HEALED,
            details={"node": "zone-b/node-1"},
        ),
        "workflows": workflows,
        "events": [
            EventResult(at=T0, mono=INJECTED, source="fault", text="froze pg-b1"),
            EventResult(at=T0, mono=HEALED, source="fault", text="thawed pg-b1"),
        ],
        "duration_s": 100.0,
    }
    values.update(fields)
    return ScenarioResult.model_validate(values)


def start(tmp_path: Path) -> RunWriter:
    return RunWriter.start(
        tmp_path,
        platform="local",
        topology="three-zones",
        probe=probe_settings({"dispatch": 2.0, "invoice_posting": 2.0}, 5.0),
        tiers=[TIER1, TIER3],
    )


def failing_run(tmp_path: Path, name: str = "dispatch survives a primary hang") -> Path:
    writer = start(tmp_path)
    samples = probe("dispatch", 22.0, 63.0) + probe("invoice_posting", 22.0, 30.0)
    writer.add_scenario(
        scenario(name, samples, {"dispatch": TIER1, "invoice_posting": TIER3}),
        samples,
    )
    writer.finish()
    return writer.run_dir


@pytest.fixture
def failing_html(tmp_path: Path) -> str:
    return render_report(failing_run(tmp_path)).read_text(encoding="utf-8")


def test_report_is_written_into_the_run_dir(tmp_path: Path) -> None:
    run_dir = failing_run(tmp_path)

    path = render_report(run_dir)

    assert path == run_dir / "report.html"
    assert path.stat().st_size > 0


def test_headline_states_the_verdict_per_tier_in_plain_words(failing_html: str) -> None:
    assert (
        "Tier 1 (the warehouse floor): NOT CERTIFIED</strong> — dispatch was down"
        " 41.3 s when the node holding the Postgres primary hung; limit 30 s"
    ) in failing_html
    assert "Tier 3 (finance): CERTIFIED</strong>" in failing_html


def test_findings_carry_the_verdict_reasons(failing_html: str) -> None:
    assert "dispatch was down for 41.3 s at most, over its tier-1 limit of 30 s." in (
        failing_html
    )
    assert (
        "invoice posting was down for 8.3 s at most, within its limit" in failing_html
    )


def test_coverage_states_probe_rate_and_resolution(failing_html: str) -> None:
    assert "2 per second (every 0.5 s)" in failing_html
    assert "within one probe interval" in failing_html
    assert "three-zones" in failing_html


def test_charts_are_inline_pngs(failing_html: str) -> None:
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', failing_html)

    assert len(uris) == 1
    assert base64.b64decode(uris[0]).startswith(b"\x89PNG\r\n\x1a\n")


def test_report_is_self_contained(failing_html: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", failing_html)
    assert "<script" not in failing_html
    assert "<link" not in failing_html
    assert "@import" not in failing_html


def test_charts_do_not_load_pyplot(failing_html: str) -> None:
    assert "matplotlib.pyplot" not in sys.modules


def test_hostile_names_are_escaped(tmp_path: Path) -> None:
    html = render_report(failing_run(tmp_path, name=HOSTILE)).read_text()

    assert "<script" not in html
    assert 'evil.example/x.png">' not in html
    assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt; &amp; &lt;img" in html


def test_all_passing_run_is_certified(tmp_path: Path) -> None:
    writer = start(tmp_path)
    samples = probe("dispatch", 22.0, 30.0)
    writer.add_scenario(
        scenario("quick failover", samples, {"dispatch": TIER1}), samples
    )
    writer.finish()

    html = render_report(writer.run_dir).read_text()

    assert "Tier 1 (the warehouse floor): CERTIFIED</strong> — every workflow kept" in (
        html
    )
    assert "dispatch down 8.3 s when the node holding the Postgres primary hung" in html
    assert "INCOMPLETE" not in html


def test_incomplete_run_with_a_missing_samples_file_still_renders(
    tmp_path: Path,
) -> None:
    writer = start(tmp_path)
    samples = probe("dispatch", 22.0, 30.0)
    recorded = writer.add_scenario(
        scenario("quick failover", samples, {"dispatch": TIER1}), samples
    )
    (writer.run_dir / str(recorded.samples_file)).unlink()

    html = render_report(writer.run_dir).read_text()

    assert "INCOMPLETE: this run stopped before it finished" in html
    assert "NOT CERTIFIED (incomplete)" in html
    assert "is missing (incomplete)" in html
    assert "data:image/png" not in html


def test_errored_scenario_without_workflows_renders(tmp_path: Path) -> None:
    writer = start(tmp_path)
    writer.add_scenario(
        ScenarioResult(
            feature="node.feature",
            name="scanning survives a node crash",
            status="error",
            error="FaultError: node a1 did not stop within 10 s",
        )
    )
    writer.finish()

    html = render_report(writer.run_dir).read_text()

    assert "1 scenario ended in an error" in html
    assert "FaultError: node a1 did not stop within 10 s" in html
    assert "this scenario names no samples file" in html


def test_heal_failure_is_loud(tmp_path: Path) -> None:
    writer = start(tmp_path)
    samples = probe("dispatch", 22.0, 30.0)
    base = scenario("quick failover", samples, {"dispatch": TIER1})
    assert base.fault is not None
    fault = base.fault.model_copy(update={"heal_error": "node b1 stayed frozen"})
    writer.add_scenario(base.model_copy(update={"fault": fault}), samples)
    writer.finish()

    html = render_report(writer.run_dir).read_text()

    assert "THE FAULT COULD NOT BE HEALED: node b1 stayed frozen" in html


def test_lost_data_leads_the_headline(tmp_path: Path) -> None:
    writer = start(tmp_path)
    samples = probe("dispatch", 22.0, 30.0)
    verdict = judge("dispatch", samples, TIER1, INJECTED, [11, 12, 13], 0.5)
    base = scenario("quick failover", samples, {"dispatch": TIER1})
    lossy = base.model_copy(
        update={"workflows": [workflow_result(verdict, acknowledged_writes=200)]}
    )
    writer.add_scenario(lossy, samples)
    writer.finish()

    html = render_report(writer.run_dir).read_text()

    assert (
        "NOT CERTIFIED</strong> — 3 acknowledged dispatches were lost when the node"
        " holding the Postgres primary hung; tier 1 allows none"
    ) in html
    assert "3 of 200 (limit 0)" in html
    assert "11, 12, 13" in html


def test_a_probe_that_fell_behind_is_said_with_the_resolution_it_had(
    tmp_path: Path,
) -> None:
    writer = start(tmp_path)
    # Every fourth slot of dispatch given up: 99 % of intervals are 1 s, not 0.5 s.
    samples = [s for s in probe("dispatch", 22.0, 30.0) if s.seq % 4 != 3]
    writer.add_scenario(scenario("a slow probe", samples, {"dispatch": TIER1}), samples)
    writer.finish()

    html = render_report(writer.run_dir).read_text(encoding="utf-8")

    assert "the probes fell behind their schedule in 1 scenario" in html
    assert "every 500 ms planned, 99 % of intervals within 1 s; 49 slots skipped" in (
        html
    )
    assert "schedule NOT kept" in html


def test_a_kept_schedule_is_said_too(failing_html: str) -> None:
    assert "every probe kept its schedule" in failing_html
    assert "schedule NOT kept" not in failing_html


def test_results_without_schedules_claim_no_kept_schedule(tmp_path: Path) -> None:
    run_dir = failing_run(tmp_path)
    results = load_results(run_dir)
    for item in results.scenarios:
        for workflow in item.workflows:
            workflow.schedule = None
    (run_dir / "results.json").write_text(results.model_dump_json())

    html = render_report(run_dir).read_text(encoding="utf-8")

    assert "every probe kept its schedule" not in html
    assert "was not recorded" in html
