"""results.json: the models, the run directory, and refusing what is too new."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from chaoscert.config import Tier
from chaoscert.errors import ChaoscertError, ConfigError
from chaoscert.probes.samples import Sample
from chaoscert.results import (
    SCHEMA_VERSION,
    EventResult,
    FaultResult,
    RunResults,
    RunWriter,
    ScenarioResult,
    load_results,
    new_run_id,
    point_latest,
    probe_settings,
    read_samples,
    scenario_samples_path,
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
T0 = datetime(2026, 12, 3, 15, 30, tzinfo=UTC)


def sample(seq: int, start: float, ok: bool = True) -> Sample:
    return Sample(
        workflow="dispatch",
        seq=seq,
        scheduled_mono=start,
        start_mono=start,
        end_mono=start + 0.2,
        start_wall=1_796_311_800.0 + start,
        ok=ok,
        error_kind="" if ok else "reset",
        error="" if ok else "connection reset by peer",
        write_id=1000 + seq if ok else None,
    )


def samples() -> list[Sample]:
    return [sample(i, 100.0 + i * 0.5, ok=not 4 <= i < 10) for i in range(20)]


def scenario(name: str = "dispatch survives a primary hang") -> ScenarioResult:
    verdict = judge("dispatch", samples(), TIER1, 101.0, [1003], 0.5)
    return ScenarioResult(
        feature="database.feature",
        name=name,
        status="failed",
        tags=["tier1", "database", "hang"],
        fault=FaultResult(
            kind="database primary hang",
            target="pg-b1",
            injected_at=T0 + timedelta(seconds=1),
            healed_at=T0 + timedelta(seconds=9),
            injected_mono=101.0,
            healed_mono=109.0,
            details={"node": "zone-b/node-1", "pids": [101, 102]},
        ),
        workflows=[workflow_result(verdict, acknowledged_writes=14)],
        events=[EventResult(at=T0, mono=101.0, source="fault", text="froze pg-b1")],
        duration_s=12.5,
    )


def start(reports: Path, run_id: str | None = None) -> RunWriter:
    return RunWriter.start(
        reports,
        platform="local",
        topology="three-zones",
        probe=probe_settings({"dispatch": 2.0, "invoice_posting": 0.5}, 5.0),
        tiers=[TIER1],
        run_id=run_id,
    )


def test_run_id_is_sortable_utc_with_a_random_tail() -> None:
    run_id = new_run_id(T0)

    assert re.fullmatch(r"20261203T153000Z-[0-9a-f]{4}", run_id)
    assert new_run_id(T0) < new_run_id(T0 + timedelta(seconds=1))


def test_probe_resolution_is_the_longest_interval() -> None:
    settings = probe_settings({"dispatch": 2.0, "invoice_posting": 0.5}, 5.0)

    assert settings.resolution_s == 2.0
    assert settings.rates_hz == {"dispatch": 2.0, "invoice_posting": 0.5}


def test_workflow_result_carries_the_verdict_and_the_slo_applied() -> None:
    verdict = judge("dispatch", samples(), TIER1, 101.0, [1003], 0.5)

    result = workflow_result(verdict, acknowledged_writes=14)

    assert result.name == "dispatch"
    assert result.tier == "tier1"
    assert (result.samples, result.failed) == (20, 6)
    # Failures start 102.0 to 104.5; the success at 105.0 is answered at 105.2.
    assert result.max_outage_s == pytest.approx(3.2)
    assert result.downtime_s == pytest.approx(3.2)
    assert result.recovery_s == pytest.approx(4.2)
    assert result.recovered
    assert (result.lost_writes, result.lost_write_ids) == (1, [1003])
    assert result.acknowledged_writes == 14
    assert result.resolution_s == 0.5
    assert result.slo.model_dump() == {
        "max_outage_s": 30.0,
        "rpo_writes": 0,
        "slow_threshold_s": 2.0,
    }
    assert result.verdict == "fail"
    assert result.reasons == [
        "1 acknowledged dispatch was lost; tier 1 allows none",
    ]
    assert [(w.start_mono, w.end_mono) for w in result.windows] == [
        (102.0, pytest.approx(105.2))
    ]


def test_start_creates_the_run_dir_and_points_latest_at_it(tmp_path: Path) -> None:
    writer = start(tmp_path, run_id="20261203T153000Z-ab12")

    latest = tmp_path / "latest"
    assert writer.run_dir == tmp_path / "20261203T153000Z-ab12"
    assert latest.is_symlink()
    assert os.readlink(latest) == "20261203T153000Z-ab12"
    assert latest.resolve() == writer.run_dir.resolve()
    first = load_results(writer.run_dir / "results.json")
    assert first.complete is False
    assert first.ended_at is None
    assert first.scenarios == []
    assert first.tiers["tier1"].max_outage_s == 30.0


def test_latest_moves_to_the_newest_run(tmp_path: Path) -> None:
    start(tmp_path, run_id="20261203T153000Z-aaaa")
    newer = start(tmp_path, run_id="20261203T160000Z-bbbb")

    assert (tmp_path / "latest").resolve() == newer.run_dir.resolve()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".latest")]


def test_latest_refuses_to_replace_a_real_directory(tmp_path: Path) -> None:
    (tmp_path / "latest").mkdir()
    (tmp_path / "latest" / "keep").write_text("x")

    with pytest.raises(ChaoscertError, match="latest"):
        point_latest(tmp_path, tmp_path / "run")
    assert (tmp_path / "latest" / "keep").exists()


def test_each_scenario_is_on_disk_before_the_run_ends(tmp_path: Path) -> None:
    writer = start(tmp_path)

    recorded = writer.add_scenario(scenario(), samples())

    on_disk = load_results(writer.run_dir)
    assert on_disk.complete is False
    assert [s.name for s in on_disk.scenarios] == ["dispatch survives a primary hang"]
    assert recorded.samples_file == "samples/001-dispatch-survives-a-primary-hang.jsonl"
    assert on_disk.scenarios[0].samples_file == recorded.samples_file


def test_samples_file_holds_one_sample_per_line(tmp_path: Path) -> None:
    writer = start(tmp_path)
    recorded = writer.add_scenario(scenario(), samples())

    path = writer.run_dir / str(recorded.samples_file)
    lines = path.read_text().splitlines()

    assert len(lines) == 20
    assert json.loads(lines[4]) == samples()[4].to_dict()
    assert read_samples(path) == samples()


def test_finish_marks_the_run_complete(tmp_path: Path) -> None:
    writer = start(tmp_path)
    writer.add_scenario(scenario())

    writer.finish()

    done = load_results(tmp_path / "latest")
    assert done.complete is True
    assert done.ended_at is not None
    assert done.ended_at >= done.started_at
    assert not [p for p in writer.run_dir.iterdir() if p.name.startswith(".")]


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    writer = start(tmp_path)
    writer.add_scenario(scenario(), samples())
    writer.finish(complete=False)

    loaded = load_results(writer.run_dir / "results.json")

    assert loaded == writer.results
    assert loaded.schema_version == SCHEMA_VERSION == 2
    assert loaded.scenarios[0].fault is not None
    assert loaded.scenarios[0].fault.details == {
        "node": "zone-b/node-1",
        "pids": [101, 102],
    }


def test_wall_times_are_iso_utc_in_the_json(tmp_path: Path) -> None:
    writer = start(tmp_path)
    writer.add_scenario(scenario())

    raw = json.loads((writer.run_dir / "results.json").read_text())

    assert raw["scenarios"][0]["fault"]["injected_at"] == "2026-12-03T15:30:01Z"
    assert raw["started_at"].endswith("Z")


def test_other_offsets_are_converted_to_utc_and_naive_times_refused() -> None:
    plus_two = datetime(2026, 12, 3, 17, 30, tzinfo=timezone(timedelta(hours=2)))

    event = EventResult(at=plus_two, source="probe", text="x")

    assert event.at == T0
    assert event.at.utcoffset() == timedelta(0)
    with pytest.raises(ValidationError):
        EventResult(at=datetime(2026, 12, 3, 15, 30), source="probe", text="x")


def test_a_newer_schema_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    data = json.loads(_minimal().model_dump_json())
    data["schema_version"] = SCHEMA_VERSION + 1
    data["something_new"] = True
    path.write_text(json.dumps(data))

    with pytest.raises(
        ConfigError, match=f"schema_version {SCHEMA_VERSION + 1} is newer"
    ) as caught:
        load_results(path)
    assert str(path) in str(caught.value)


def test_not_json_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text("{ half written")

    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load_results(path)


def test_wrong_shape_is_a_config_error_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    data = json.loads(_minimal().model_dump_json())
    del data["platform"]
    path.write_text(json.dumps(data))

    with pytest.raises(ConfigError, match="platform"):
        load_results(path)


def test_missing_results_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_results(tmp_path)


def test_a_samples_path_escaping_the_run_is_not_followed(tmp_path: Path) -> None:
    escaping = scenario().model_copy(update={"samples_file": "../../etc/passwd"})
    inside = scenario().model_copy(update={"samples_file": "samples/x.jsonl"})

    assert scenario_samples_path(tmp_path, escaping) is None
    assert scenario_samples_path(tmp_path, inside) == (
        tmp_path.resolve() / "samples" / "x.jsonl"
    )


def test_a_garbled_samples_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps(sample(0, 1.0).to_dict()) + "\n{not json\n")

    with pytest.raises(ConfigError, match=r"s\.jsonl: line 2"):
        read_samples(path)


def _minimal() -> RunResults:
    return RunResults(
        run_id="20261203T153000Z-ab12",
        platform="local",
        topology="three-zones",
        started_at=T0,
        probe=probe_settings({"dispatch": 2.0}, 5.0),
    )
