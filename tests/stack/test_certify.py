"""`chaoscert run` end to end: the failover feature on the real local stack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pypdf import PdfReader

from chaoscert.history import history_path, trends_for_run
from chaoscert.platforms.local.platform import LocalPlatform
from chaoscert.results import read_samples, scenario_samples_path
from tests.stack.conftest import TEST_STATE_DIR, run_catalogue

pytestmark = pytest.mark.stack


def test_primary_hang_scenario_is_measured_judged_and_reported(
    local_platform: LocalPlatform, stack_topology_file: Path, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"

    done, results = run_catalogue(
        stack_topology_file,
        TEST_STATE_DIR,
        reports,
        "node_holding_the_postgres_primary_fails and hangs",
    )

    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = (reports / "latest").resolve()
    assert results.complete
    [scenario] = results.scenarios
    assert scenario.status in ("passed", "failed")
    assert scenario.fault is not None
    assert scenario.fault.kind == "node_hang"
    assert "(Postgres leader)" in scenario.fault.target
    assert scenario.fault.healed_at is not None
    workflows = {w.name: w for w in scenario.workflows}
    assert set(workflows) == {
        "warehouse_scanning",
        "dispatch",
        "procurement_approval",
        "invoice_posting",
    }
    dispatch = workflows["dispatch"]
    # Synchronous replication: no acknowledged dispatch may go missing.
    assert dispatch.acknowledged_writes > 0
    assert dispatch.lost_writes == 0
    for workflow in workflows.values():
        assert workflow.recovered
        # A hung primary stops every workflow that needs the database.
        assert workflow.max_outage_s > 0
        within = workflow.max_outage_s <= workflow.slo.max_outage_s
        assert (workflow.verdict == "pass") == within, workflow
    expected = (
        "passed" if all(w.verdict == "pass" for w in workflows.values()) else "failed"
    )
    assert scenario.status == expected
    samples = read_samples(scenario_samples_path(run_dir, scenario))
    assert len(samples) == sum(w.samples for w in workflows.values())
    report = (run_dir / "report.html").read_text()
    assert scenario.name in report
    assert "data:image/png;base64" in report
    assert (run_dir / "junit.xml").exists()
    json.loads((run_dir / "cucumber.json").read_text())
    # The evidence: what the database nodes logged while the primary hung.
    patroni = [log for log in scenario.logs if log.component.startswith("patroni on")]
    assert patroni, [log.component for log in scenario.logs]
    assert all(log.lines for log in patroni)
    assert "Component logs" in report
    # The PDF for sign-off, and the run in the nightly history.
    assert (run_dir / "report.pdf").read_bytes().startswith(b"%PDF")
    [trend, *_] = trends_for_run(history_path(reports), results)
    assert trend.latest.run_id == results.run_id
    # Known secret values (the stack's passwords) reach no output: not the run
    # directory, the PDF's text, the history, nor what the run printed.
    pdf_text = "".join(
        page.extract_text() for page in PdfReader(run_dir / "report.pdf").pages
    )
    outputs = [done.stdout, done.stderr, pdf_text]
    outputs += [
        path.read_text(errors="replace")
        for path in [*run_dir.rglob("*"), history_path(reports)]
        if path.is_file() and path.suffix != ".pdf"
    ]
    secrets = local_platform.secrets()
    assert secrets
    for secret in secrets:
        assert all(secret not in text for text in outputs)
    assert local_platform.registry.live() == []
