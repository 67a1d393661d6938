"""The Chaos Toolkit extension: experiments valid for `chaos`, activities
discoverable, configuration checked, journals turned into reports or refused."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import chaoscert
from chaoscert.config import Tier
from chaoscert.ctk import actions, probes
from chaoscert.ctk.journal import MEASUREMENT_KEY, measurement, report_from_journal
from chaoscert.ctk.session import CtkSettings
from chaoscert.errors import ConfigError
from chaoscert.probes.samples import Sample
from chaoscert.results import (
    FaultResult,
    RunResults,
    ScenarioResult,
    probe_settings,
    tier_slo,
    workflow_result,
)
from chaoscert.slo import judge

ROOT = Path(__file__).resolve().parents[2]
CHAOS = Path(sys.executable).parent / "chaos"
FAMILIES = (
    "database_failover",
    "node_loss",
    "zone_loss",
    "replica_kill",
    "dcs",
    "shift_change",
)
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.yaml"))
TIER1 = Tier(
    name="tier1", title="Tier 1", max_outage_s=30, rpo_writes=0, slow_threshold_s=2
)
T0 = datetime(2026, 12, 3, 15, 30, tzinfo=UTC)
BASE = 1000.0


def test_one_experiment_per_catalogue_family() -> None:
    assert sorted(path.stem for path in EXPERIMENTS) == sorted(FAMILIES)
    for feature in (ROOT / "features").glob("*.feature"):
        assert (ROOT / "experiments" / f"{feature.stem}.yaml").exists(), feature


@pytest.mark.parametrize("experiment", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_passes_chaos_validate(experiment: Path) -> None:
    done = subprocess.run(
        [str(CHAOS), "--no-log-file", "validate", str(experiment)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Experiment looks valid" in done.stdout + done.stderr


@pytest.mark.parametrize("experiment", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_is_a_question_with_hypothesis_method_and_rollbacks(
    experiment: Path,
) -> None:
    import yaml

    data = yaml.safe_load(experiment.read_text())

    assert data["title"].endswith("?")
    hypothesis = [
        p["provider"]["func"] for p in data["steady-state-hypothesis"]["probes"]
    ]
    assert hypothesis[0] == "workflows_available"
    method = [a["provider"]["func"] for a in data["method"]]
    assert method[0] == "start_workflow_traffic"
    assert method[-2:] == ["workflows_available_again", "stop_workflow_traffic"]
    assert [a["provider"]["func"] for a in data["rollbacks"]] == ["heal_faults"]
    # Every key the extension reads is declared, so `chaos run --var` can set it.
    names = ("platform", "topology", "state_dir", "target", "kubeconfig", "slo")
    assert {k for k in data["configuration"] if k.startswith("chaoscert_")} == {
        f"chaoscert_{name}"
        for name in (*names, "reports_dir", "rate_hz", "probe_timeout_s")
    }


def test_activities_are_discoverable() -> None:
    discovery = chaoscert.discover(discover_system=False)

    found = {(a["type"], a["name"]) for a in discovery["activities"]}
    assert {("action", name) for name in actions.__all__} <= found
    assert {("probe", name) for name in probes.__all__} <= found
    assert ("probe", "workflows_meet_tiers") in found


def test_settings_from_configuration() -> None:
    settings = CtkSettings.from_configuration(
        {
            "chaoscert_topology": "t.yaml",
            "chaoscert_state_dir": "",
            "chaoscert_rate_hz": "5",
            "other_extension_key": 1,
        }
    )

    assert settings.topology == Path("t.yaml")
    assert settings.rate_hz == 5.0
    assert settings.platform == "local"
    assert settings.target is None


@pytest.mark.parametrize(
    ("configuration", "expected"),
    [
        ({"chaoscert_topolgy": "x"}, "chaoscert_topolgy is unknown"),
        ({"chaoscert_rate_hz": "fast"}, "chaoscert_rate_hz must be a positive"),
        ({"chaoscert_probe_timeout_s": 0}, "chaoscert_probe_timeout_s must be"),
    ],
)
def test_bad_configuration_is_refused(
    configuration: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        CtkSettings.from_configuration(configuration)


# -- journals --------------------------------------------------------------------
def samples(workflow: str, down_from_s: float, down_until_s: float) -> list[Sample]:
    """10 Hz for 60 s; attempts starting in [down_from_s, down_until_s) fail."""
    out = []
    for seq in range(600):
        offset = seq * 0.1
        failed = down_from_s <= offset < down_until_s
        out.append(
            Sample(
                workflow=workflow,
                seq=seq,
                scheduled_mono=BASE + offset,
                start_mono=BASE + offset,
                end_mono=BASE + offset + (2.0 if failed else 0.05),
                start_wall=T0.timestamp() + offset,
                ok=not failed,
                error_kind="timeout" if failed else "",
                write_id=seq if not failed else None,
            )
        )
    return out


def a_measurement(tmp_path: Path, down_s: float, lost: int) -> dict[str, Any]:
    """The output stop_workflow_traffic gives, for dispatch down `down_s` seconds."""
    measured = samples("dispatch", 10.0, 10.0 + down_s)
    verdict = judge("dispatch", measured, TIER1, BASE + 10.0, list(range(lost)), 0.1)
    results = RunResults(
        run_id="20261203T153000Z-ab12",
        platform="local",
        topology="reference",
        started_at=T0,
        complete=True,
        probe=probe_settings({"dispatch": 10.0}, 2.0),
        tiers={"tier1": tier_slo(TIER1)},
    )
    scenario = ScenarioResult(
        feature="Chaos Toolkit: database_failover",
        name="No acknowledged dispatch is lost when the primary crashes",
        status="passed" if verdict.passed else "failed",
        fault=FaultResult(
            kind="database_primary_crash",
            target="node b1 (Postgres leader)",
            injected_at=T0,
            injected_mono=BASE + 10.0,
        ),
        workflows=[workflow_result(verdict, acknowledged_writes=500)],
        samples_file="samples/001-x.jsonl",
        started_mono=BASE,
    )
    return measurement(results, scenario, {"dispatch": verdict}, measured, tmp_path)


def a_journal(*outputs: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    return {
        "chaoslib-version": "1.44.0",
        "status": status,
        "deviated": False,
        "steady_states": {"before": {"probes": []}, "after": None, "during": []},
        "run": [
            {"activity": {"name": "start-workflow-traffic"}, "output": {}},
            *(
                {"activity": {"name": "measure-workflows"}, "output": output}
                for output in outputs
            ),
        ],
        "rollbacks": [],
    }


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_measurement_carries_figures_per_workflow(tmp_path: Path) -> None:
    output = a_measurement(tmp_path, down_s=35.0, lost=2)

    dispatch = output["workflows"]["dispatch"]
    assert output[MEASUREMENT_KEY] == 1
    assert dispatch["verdict"] == "fail"
    assert dispatch["lost_writes"] == 2
    assert dispatch["max_outage_s"] >= 35.0
    assert any("lost" in reason for reason in dispatch["reasons"])
    assert len(output["samples"]) == 600
    json.dumps(output)  # the journal must be able to hold it


def test_journal_renders_the_same_report(tmp_path: Path) -> None:
    journal = write_json(
        tmp_path / "journal.json",
        a_journal(a_measurement(tmp_path, down_s=35.0, lost=2)),
    )

    report = report_from_journal(journal, tmp_path / "reports")

    html = report.read_text()
    assert "NOT CERTIFIED" in html
    assert "No acknowledged dispatch is lost when the primary crashes" in html
    results = json.loads((report.parent / "results.json").read_text())
    assert results["complete"] is True
    [scenario] = results["scenarios"]
    assert scenario["workflows"][0]["lost_writes"] == 2
    kept = (report.parent / scenario["samples_file"]).read_text().splitlines()
    assert len(kept) == 600


def test_interrupted_journal_reports_an_incomplete_run(tmp_path: Path) -> None:
    journal = write_json(
        tmp_path / "journal.json",
        a_journal(a_measurement(tmp_path, 5.0, 0), status="interrupted"),
    )

    report = report_from_journal(journal, tmp_path / "reports")

    assert json.loads((report.parent / "results.json").read_text())["complete"] is False


def chaoscert_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chaoscert.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _bad_measurement(tmp_path: Path) -> dict[str, Any]:
    output = a_measurement(tmp_path, 5.0, 0)
    output["results"]["scenarios"][0]["status"] = "sort of"
    return output


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read"),
        ("{not json", "not valid JSON"),
        ([1, 2], "not a Chaos Toolkit journal (no list of runs under 'run')"),
        ({"run": [], "status": "done"}, "status 'done'"),
        ({"run": [], "status": "completed"}, "no chaoscert measurement"),
        ("bad-measurement", "activity 'measure-workflows': field scenarios.0.status"),
        ("bad-sample", "a sample is malformed"),
    ],
)
def test_bad_journal_is_refused_with_one_line(
    tmp_path: Path, content: Any, expected: str
) -> None:
    journal = tmp_path / "journal.json"
    if content == "bad-measurement":
        write_json(journal, a_journal(_bad_measurement(tmp_path)))
    elif content == "bad-sample":
        output = a_measurement(tmp_path, 5.0, 0)
        output["samples"][3] = {"workflow": "dispatch", "colour": "red"}
        write_json(journal, a_journal(output))
    elif isinstance(content, str):
        journal.write_text(content)
    elif content is not None:
        write_json(journal, content)

    done = chaoscert_cli("report", str(journal), f"--reports-dir={tmp_path / 'r'}")

    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(journal) in lines[0]
    assert expected in lines[0]
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
