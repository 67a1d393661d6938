"""Bad input, fuzzed: every loader refuses a malformed file with one line that
names the file (and the field, where there is one) and never a traceback; the
command exits 2 having started nothing.

Each input is fuzzed three ways: any YAML or JSON structure, the shipped
fixture with one change (a value replaced by one of any type, a key or item
removed, an unknown key added) and the fixture's bytes garbled. Deterministic
cases cover what fuzzing seldom draws: wrong files, every field named, newer
schemas, malformed feature files.
"""

from __future__ import annotations

import copy
import io
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, redirect_stderr, redirect_stdout
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from chaoscert import cli
from chaoscert.config import WORKFLOWS, Tier, load_slo
from chaoscert.ctk.journal import measurement, report_from_journal
from chaoscert.ctk.session import CtkSettings
from chaoscert.errors import ChaoscertError
from chaoscert.history import history_path, latest_trends, record_run, trends_for_run
from chaoscert.platforms.kubernetes.platform import kube_configuration
from chaoscert.probes.samples import Sample
from chaoscert.results import (
    SCHEMA_VERSION,
    FaultResult,
    RunResults,
    ScenarioResult,
    load_results,
    probe_settings,
    read_samples,
    tier_slo,
    workflow_result,
)
from chaoscert.slo import judge
from chaoscert.targets import load_target
from chaoscert.topology import load_topology
from steps.common import duration_s, one_workflow, rate_factor, workflow_names, written

ROOT = Path(__file__).resolve().parents[2]
CHAOSCERT = Path(sys.executable).parent / "chaoscert"
FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    # A slow or rejected example is not a finding; a loader's traceback is.
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
FEW = settings(FUZZ, max_examples=30)

YAML_INPUTS: dict[str, tuple[Callable[[Path], object], Path]] = {
    "slo": (load_slo, ROOT / "fixtures/slo-tiers.yaml"),
    "topology": (load_topology, ROOT / "fixtures/topologies/reference.yaml"),
    "async-topology": (
        load_topology,
        ROOT / "fixtures/topologies/async-replication.yaml",
    ),
    "kind-target": (load_target, ROOT / "fixtures/targets/kind.yaml"),
    "staging-target": (load_target, ROOT / "fixtures/targets/staging.example.yaml"),
}
SLO = ROOT / "fixtures/slo-tiers.yaml"
TOPOLOGY = ROOT / "fixtures/topologies/reference.yaml"
T0 = datetime(2026, 12, 3, 15, 30, tzinfo=UTC)
TIER1 = Tier(
    name="tier1",
    title="Tier 1: the warehouse floor",
    max_outage_s=30,
    rpo_writes=0,
    slow_threshold_s=2.0,
)
KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "current-context": "kind-chaoscert",
    "contexts": [
        {"name": "kind-chaoscert", "context": {"cluster": "kind", "user": "kind"}}
    ],
    "clusters": [{"name": "kind", "cluster": {"server": "https://127.0.0.1:6443"}}],
    "users": [{"name": "kind", "user": {"token": "not-a-real-token"}}],
}

# Any value YAML and JSON can hold, nested a little.
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63),
    st.floats(),
    st.text(max_size=30),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)


# -- helpers -------------------------------------------------------------------
def refusal(load: Callable[[Path], object], path: Path) -> str | None:
    """The one line `load` refuses `path` with, or None when it loads it.

    Any exception but chaoscert's own escapes and fails the test as it is.
    """
    try:
        load(path)
    except ChaoscertError as exc:
        message = str(exc)
        assert len(message.splitlines()) == 1, message
        assert str(path) in message, f"{message!r} does not name {path}"
        return message
    return None


def paths_in(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a document: the top, each key and each list item."""
    found = [at]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += paths_in(inner, (*at, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += paths_in(inner, (*at, index))
    return found


def leaf_paths(value: Any) -> list[tuple[Any, ...]]:
    return [at for at in paths_in(value) if not isinstance(dig(value, at), dict)]


def dig(document: Any, at: tuple[Any, ...]) -> Any:
    for part in at:
        document = document[part]
    return document


def dotted(at: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in at)


@st.composite
def mutated(draw: st.DrawFn, document: Any) -> Any:
    """`document` with one change: a value replaced by one of any type, a key
    or list item removed, or an unknown key (or item) added."""
    changed = copy.deepcopy(document)
    at = draw(st.sampled_from(paths_in(changed)))
    action = draw(st.sampled_from(("replace", "remove", "add")))
    if not at:
        return draw(VALUES) if action == "replace" else changed
    parent, last = dig(changed, at[:-1]), at[-1]
    if action == "replace":
        parent[last] = draw(VALUES)
    elif action == "remove":
        del parent[last]
    elif isinstance(parent[last], dict):
        parent[last][draw(st.text(min_size=1, max_size=12))] = draw(VALUES)
    elif isinstance(parent[last], list):
        parent[last].append(draw(VALUES))
    else:
        parent[last] = [parent[last], draw(VALUES)]
    return changed


@st.composite
def garbled(draw: st.DrawFn, text: bytes) -> bytes:
    """`text` cut short, with junk bytes inserted or written over it, or any
    bytes at all."""
    action = draw(st.sampled_from(("cut", "insert", "overwrite", "anything")))
    at = draw(st.integers(0, len(text)))
    junk = draw(st.binary(min_size=1, max_size=16))
    if action == "cut":
        return text[:at]
    if action == "insert":
        return text[:at] + junk + text[at:]
    if action == "overwrite":
        return text[:at] + junk + text[at + len(junk) :]
    return draw(st.binary(max_size=300))


def as_yaml(value: Any) -> bytes:
    return yaml.safe_dump(value, allow_unicode=True).encode("utf-8")


def as_json(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8")


def fixture_document(name: str) -> Any:
    return yaml.safe_load(YAML_INPUTS[name][1].read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for every example (hypothesis cannot use tmp_path)."""
    return tmp_path_factory.mktemp("fuzz")


@contextmanager
def fresh_dir(scratch: Path) -> Iterator[Path]:
    """A new empty directory for one example, removed after it."""
    path = Path(tempfile.mkdtemp(dir=scratch))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_cli(*args: str) -> tuple[int, str, str]:
    """chaoscert's entry point in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(list(args))
    return code, out.getvalue(), err.getvalue()


def assert_refused_in_one_line(code: int, out: str, err: str, *names: str) -> str:
    """Exit 2, nothing on stdout, one line on stderr naming every one of `names`."""
    assert code == 2, (out, err)
    assert "Traceback (most recent call last)" not in out + err
    assert out == "", out
    lines = err.splitlines()
    assert len(lines) == 1, err
    for name in names:
        assert name in lines[0], f"{lines[0]!r} does not name {name}"
    return lines[0]


# -- results, journals and history: small, valid documents to mutate -------------
def measured_samples() -> list[Sample]:
    return [
        Sample(
            workflow="dispatch",
            seq=seq,
            scheduled_mono=100.0 + seq,
            start_mono=100.0 + seq,
            end_mono=100.2 + seq,
            start_wall=T0.timestamp() + seq,
            ok=not 3 <= seq < 5,
            error_kind="" if not 3 <= seq < 5 else "timeout",
            write_id=seq if not 3 <= seq < 5 else None,
        )
        for seq in range(8)
    ]


def run_results(day: int = 0) -> tuple[RunResults, ScenarioResult, Any]:
    verdict = judge("dispatch", measured_samples(), TIER1, 102.5, [], 1.0)
    started = T0 + timedelta(days=day)
    results = RunResults(
        run_id=f"{started:%Y%m%dT%H%M%SZ}-ab12",
        platform="local",
        topology="reference",
        started_at=started,
        ended_at=started + timedelta(minutes=2),
        complete=True,
        probe=probe_settings({"dispatch": 1.0}, 2.0),
        tiers={"tier1": tier_slo(TIER1)},
    )
    scenario = ScenarioResult(
        feature="Database failover",
        name="Dispatch rides out the crash of the primary's node",
        status="passed" if verdict.passed else "failed",
        tags=["tier1", "database", "crash"],
        fault=FaultResult(
            kind="node_crash", target="b1", injected_at=started, injected_mono=102.5
        ),
        workflows=[workflow_result(verdict, acknowledged_writes=6)],
        started_mono=100.0,
    )
    return results, scenario, verdict


def results_document() -> dict[str, Any]:
    results, scenario, _ = run_results()
    results.scenarios = [scenario]
    document: dict[str, Any] = json.loads(results.model_dump_json())
    return document


def journal_document(scratch: Path) -> dict[str, Any]:
    results, scenario, verdict = run_results()
    output = measurement(
        results, scenario, {"dispatch": verdict}, measured_samples(), scratch
    )
    return {
        "chaoslib-version": "1.44.0",
        "status": "completed",
        "steady_states": {"before": {"probes": []}, "after": None, "during": []},
        "run": [
            {"activity": {"name": "start-workflow-traffic"}, "output": {}},
            {"activity": {"name": "measure-workflows"}, "output": output},
        ],
        "rollbacks": [],
    }


@pytest.fixture(scope="module")
def history_store(scratch: Path) -> Path:
    """A history store holding three recorded runs, to copy."""
    store = history_path(scratch / "history-template")
    for day in range(3):
        results, scenario, _ = run_results(day)
        results.scenarios = [scenario]
        record_run(store, results)
    return store


# -- YAML inputs: SLO tiers, topologies, target profiles -------------------------
@pytest.mark.parametrize("name", YAML_INPUTS)
@FUZZ
@given(value=VALUES)
def test_any_yaml_structure_is_loaded_or_refused_in_one_line(
    scratch: Path, name: str, value: Any
) -> None:
    load, _ = YAML_INPUTS[name]
    path = scratch / f"{name}.yaml"
    path.write_bytes(as_yaml(value))

    refusal(load, path)


@pytest.mark.parametrize("name", YAML_INPUTS)
@FUZZ
@given(data=st.data())
def test_a_fixture_with_one_change_is_loaded_or_refused_in_one_line(
    scratch: Path, name: str, data: st.DataObject
) -> None:
    load, _ = YAML_INPUTS[name]
    path = scratch / f"{name}.yaml"
    path.write_bytes(as_yaml(data.draw(mutated(fixture_document(name)))))

    refusal(load, path)


@pytest.mark.parametrize("name", YAML_INPUTS)
@FUZZ
@given(data=st.data())
def test_a_garbled_fixture_is_loaded_or_refused_in_one_line(
    scratch: Path, name: str, data: st.DataObject
) -> None:
    load, fixture = YAML_INPUTS[name]
    path = scratch / f"{name}.yaml"
    path.write_bytes(data.draw(garbled(fixture.read_bytes())))

    refusal(load, path)


@pytest.mark.parametrize("name", YAML_INPUTS)
def test_every_field_of_a_fixture_is_named_when_its_type_is_wrong(
    tmp_path: Path, name: str
) -> None:
    load, _ = YAML_INPUTS[name]
    document = fixture_document(name)
    path = tmp_path / f"{name}.yaml"

    for at in leaf_paths(document):
        changed = copy.deepcopy(document)
        dig(changed, at[:-1])[at[-1]] = [[]]  # a list of a list: no field's type
        path.write_bytes(as_yaml(changed))

        message = refusal(load, path)

        assert message is not None, f"{dotted(at)} = [[]] was accepted"
        assert f"field {dotted(at)}" in message, message


@pytest.mark.parametrize("name", YAML_INPUTS)
def test_an_unknown_key_is_named_wherever_it_is_added(
    tmp_path: Path, name: str
) -> None:
    load, _ = YAML_INPUTS[name]
    document = fixture_document(name)
    path = tmp_path / f"{name}.yaml"

    for at in paths_in(document):
        if not isinstance(dig(document, at), dict):
            continue
        changed = copy.deepcopy(document)
        dig(changed, at)["colour"] = "blue"
        path.write_bytes(as_yaml(changed))

        message = refusal(load, path)

        assert message is not None, f"colour under {dotted(at) or 'the top'}"
        assert "colour" in message, message


@pytest.mark.parametrize("name", YAML_INPUTS)
def test_a_removed_key_is_named_or_defaulted(tmp_path: Path, name: str) -> None:
    load, _ = YAML_INPUTS[name]
    document = fixture_document(name)
    path = tmp_path / f"{name}.yaml"

    for at in paths_in(document)[1:]:
        if isinstance(at[-1], int):
            continue
        changed = copy.deepcopy(document)
        del dig(changed, at[:-1])[at[-1]]
        path.write_bytes(as_yaml(changed))

        message = refusal(load, path)

        if message is not None and "Field required" in message:
            assert f"field {dotted(at)}" in message, message


WRONG_FILES: dict[str, Callable[[Path], Path]] = {
    "empty": lambda d: _write(d / "empty.yaml", b""),
    "only a comment": lambda d: _write(d / "comment.yaml", b"# nothing here\n"),
    "a list": lambda d: _write(d / "list.yaml", b"- one\n- two\n"),
    "a string": lambda d: _write(d / "string.yaml", b"just words\n"),
    "not UTF-8": lambda d: _write(
        d / "latin1.yaml", "name: caf\xe9\n".encode("latin-1")
    ),
    "UTF-16": lambda d: _write(d / "utf16.yaml", "name: x\n".encode("utf-16")),
    "NUL bytes": lambda d: _write(d / "nul.yaml", b"name: a\x00b\n"),
    "a control character": lambda d: _write(d / "bell.yaml", b"name: \x07\n"),
    "tabs for indent": lambda d: _write(d / "tabs.yaml", b"zones:\n\t- name: a\n"),
    "a python tag": lambda d: _write(
        d / "tag.yaml", b"name: !!python/object/apply:os.system ['true']\n"
    ),
    "an unhashable key": lambda d: _write(d / "key.yaml", b"? [a, b]\n: c\n"),
    "nested too deeply": lambda d: _write(d / "deep.yaml", b"[" * 5000 + b"]" * 5000),
    "a key with a line break": lambda d: _write(
        d / "newline.yaml", b'"na\\nme": x\n"\\u2028": y\n'
    ),
    "rich markup in a key": lambda d: _write(d / "markup.yaml", b'"[/bold]": x\n'),
    "a directory": lambda d: _mkdir(d / "dir.yaml"),
    "missing": lambda d: d / "absent.yaml",
    "a dangling link": lambda d: _link(d / "dangling.yaml", d / "nowhere"),
    "a link loop": lambda d: _link(d / "loop.yaml", d / "loop.yaml"),
    "unreadable": lambda d: _unreadable(d / "secret.yaml"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _link(path: Path, target: Path) -> Path:
    path.symlink_to(target)
    return path


def _unreadable(path: Path) -> Path:
    path.write_text("name: x\n")
    path.chmod(0)
    return path


@pytest.mark.parametrize("name", YAML_INPUTS)
@pytest.mark.parametrize("kind", WRONG_FILES)
def test_a_wrong_file_is_one_line_naming_it(
    tmp_path: Path, name: str, kind: str
) -> None:
    load, _ = YAML_INPUTS[name]
    path = WRONG_FILES[kind](tmp_path)

    assert refusal(load, path) is not None


def test_a_nul_in_the_path_is_one_line() -> None:
    for load, _ in YAML_INPUTS.values():
        with pytest.raises(ChaoscertError, match="embedded null byte") as caught:
            load(Path("fixtures/slo\x00.yaml"))
        assert len(str(caught.value).splitlines()) == 1


# -- results.json ------------------------------------------------------------------
@FUZZ
@given(data=st.data())
def test_a_results_file_with_one_change_is_loaded_or_refused(
    scratch: Path, data: st.DataObject
) -> None:
    path = scratch / "results.json"
    path.write_bytes(as_json(data.draw(mutated(results_document()))))

    refusal(load_results, path)


@FUZZ
@given(data=st.data())
def test_a_garbled_or_foreign_results_file_is_refused(
    scratch: Path, data: st.DataObject
) -> None:
    path = scratch / "results.json"
    text = as_json(results_document())
    path.write_bytes(data.draw(garbled(text) | VALUES.map(as_json)))

    refusal(load_results, path)


def test_every_field_of_a_results_file_is_named_when_its_type_is_wrong(
    tmp_path: Path,
) -> None:
    document = results_document()
    path = tmp_path / "results.json"
    refused = 0

    for at in leaf_paths(document):
        changed = copy.deepcopy(document)
        dig(changed, at[:-1])[at[-1]] = [[]]
        path.write_bytes(as_json(changed))

        message = refusal(load_results, path)

        if message is None:
            # Only free-form mappings take any value.
            assert {"environment", "details"} & set(at[:-1]), dotted(at)
            continue
        refused += 1
        assert f"field {dotted(at)}" in message, message
    assert refused > 40


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        (SCHEMA_VERSION + 1, f"schema_version {SCHEMA_VERSION + 1} is newer"),
        (99, "schema_version 99 is newer"),
        (2**70, f"schema_version {2**70} is newer"),
        (float(SCHEMA_VERSION + 1), f"schema_version {SCHEMA_VERSION + 1}.0 is newer"),
        (str(SCHEMA_VERSION + 1), "field schema_version: Input should be a valid int"),
        (True, "field schema_version: Input should be a valid integer"),
        (None, "field schema_version: Input should be a valid integer"),
        ([SCHEMA_VERSION], "field schema_version: Input should be a valid integer"),
    ],
)
def test_a_results_file_of_another_schema_is_refused(
    tmp_path: Path, version: Any, expected: str
) -> None:
    document = results_document()
    document["schema_version"] = version
    document["something_new"] = {"from": "a newer chaoscert"}
    path = tmp_path / "results.json"
    path.write_bytes(as_json(document))

    message = refusal(load_results, path)

    assert message is not None
    assert expected in message


@pytest.mark.parametrize("kind", WRONG_FILES)
def test_a_wrong_results_file_is_one_line(tmp_path: Path, kind: str) -> None:
    path = WRONG_FILES[kind](tmp_path)

    assert refusal(load_results, path) is not None


def test_a_results_file_nested_too_deeply_is_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "results.json", b"[" * 100_000 + b"]" * 100_000)

    assert "nested too deeply" in (refusal(load_results, path) or "")


# -- samples -------------------------------------------------------------------------
@FUZZ
@given(data=st.data())
def test_a_sample_with_one_change_is_read_or_refused_naming_file_and_line(
    scratch: Path, data: st.DataObject
) -> None:
    good = [asdict(sample) for sample in measured_samples()[:3]]
    lines = [json.dumps(sample) for sample in good]
    lines[1] = data.draw(
        mutated(good[1]).map(json.dumps)
        | VALUES.map(json.dumps)
        | st.text(max_size=40).filter(lambda t: "\n" not in t and "\r" not in t)
    )
    path = scratch / "samples.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    message = refusal(read_samples, path)

    if message is None:
        for sample in read_samples(path):
            assert isinstance(sample.ok, bool)
            assert isinstance(sample.start_mono, int | float)
    else:
        assert ": line " in message


# -- Chaos Toolkit journals (chaoscert report JOURNAL) -----------------------------
def report_into(reports: Path) -> Callable[[Path], object]:
    return lambda path: report_from_journal(path, reports)


@FEW
@given(data=st.data())
def test_a_journal_with_one_change_is_reported_or_refused_leaving_nothing(
    scratch: Path, data: st.DataObject
) -> None:
    path = scratch / "journal.json"
    path.write_bytes(as_json(data.draw(mutated(journal_document(scratch)))))

    with fresh_dir(scratch) as reports:
        message = refusal(report_into(reports), path)

        if message is not None:
            assert not any(reports.iterdir()), "a refused journal left a run behind"


@FEW
@given(data=st.data())
def test_a_journal_whose_measurement_has_one_change_is_reported_or_refused(
    scratch: Path, data: st.DataObject
) -> None:
    # Most of a journal is chaoscert's measurement: change inside it only.
    journal = journal_document(scratch)
    output = journal["run"][1]["output"]
    journal["run"][1]["output"] = data.draw(mutated(output))
    path = scratch / "journal.json"
    path.write_bytes(as_json(journal))

    with fresh_dir(scratch) as reports:
        message = refusal(report_into(reports), path)

        if message is not None:
            assert not any(reports.iterdir()), "a refused journal left a run behind"


@FEW
@given(data=st.data())
def test_a_garbled_or_foreign_journal_is_refused(
    scratch: Path, data: st.DataObject
) -> None:
    path = scratch / "journal.json"
    text = as_json(journal_document(scratch))
    path.write_bytes(data.draw(garbled(text) | VALUES.map(as_json)))

    with fresh_dir(scratch) as reports:
        refusal(report_into(reports), path)


def _unmeasured(journal: dict[str, Any]) -> dict[str, Any]:
    journal["run"][1]["output"] = {"verdict": "not chaoscert's"}
    return journal


def _measured_by(journal: dict[str, Any], activity: Any) -> None:
    """The measurement in a format no chaoscert wrote, by `activity`."""
    journal["run"][1]["activity"] = activity
    journal["run"][1]["output"]["chaoscert_measurement"] = 9


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda j: _unmeasured(j).update(rollbacks=5),
            "no chaoscert measurement in this journal",
        ),
        (
            lambda j: _unmeasured(j).update(steady_states=[1, 2]),
            "no chaoscert measurement in this journal",
        ),
        (
            lambda j: _unmeasured(j).update(steady_states={"before": ["x", None]}),
            "no chaoscert measurement in this journal",
        ),
        (
            lambda j: _measured_by(j, "measure"),
            "activity 'activity 2': measurement format 9 is not one",
        ),
        (
            lambda j: _measured_by(j, {"name": "[/bold] [red]"}),
            "activity '[/bold] [red]': measurement format 9",
        ),
        (
            lambda j: j["run"][1]["output"]["results"].update(schema_version=3),
            "schema_version 3 is newer",
        ),
        (
            lambda j: j["run"][1]["output"]["samples"][2].update(start_mono="soon"),
            "start_mono must be a finite number, not 'soon'",
        ),
        (
            lambda j: j["run"][1]["output"]["samples"][2].update(ok="yes"),
            "ok must be true or false, not 'yes'",
        ),
        (
            lambda j: j["run"][1]["output"]["samples"][2].update(end_mono=[1]),
            "end_mono must be a finite number",
        ),
        (
            lambda j: j["run"][1]["output"]["samples"][2].update(write_id="w1"),
            "write_id must be an integer",
        ),
    ],
)
def test_a_malformed_journal_is_refused_through_the_command(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], expected: str
) -> None:
    journal = journal_document(tmp_path)
    change(journal)
    path = _write(tmp_path / "journal.json", as_json(journal))
    reports = tmp_path / "reports"

    code, out, err = run_cli("report", str(path), f"--reports-dir={reports}")

    line = assert_refused_in_one_line(code, out, err, str(path))
    assert expected in line
    assert not reports.exists() or not any(reports.iterdir())


# -- the history store ---------------------------------------------------------------
STORED = st.one_of(
    st.text(max_size=20),
    st.binary(max_size=20),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
)
COLUMNS = (
    [
        ("runs", column)
        for column in ("run_id", "started_at", "ended_at", "platform", "topology")
    ]
    + [
        ("measurements", column)
        for column in (
            "feature",
            "scenario",
            "status",
            "workflow",
            "tier",
            "max_outage_s",
            "downtime_s",
            "recovered",
            "lost_writes",
            "resolution_s",
            "limit_s",
            "rpo_writes",
            "verdict",
        )
    ]
    + [("meta", "value")]
)


def history_readers() -> list[Callable[[Path], object]]:
    """Every way the store is read or written, each taking its path."""
    results, scenario, _ = run_results(9)
    results.scenarios = [scenario]
    return [
        latest_trends,
        lambda path: trends_for_run(path, results),
        lambda path: record_run(path, results),
    ]


@FUZZ
@given(column=st.sampled_from(COLUMNS), value=STORED)
def test_a_store_holding_a_malformed_value_is_read_or_refused(
    scratch: Path, history_store: Path, column: tuple[str, str], value: Any
) -> None:
    store = scratch / "history.sqlite"
    shutil.copy(history_store, store)
    table, name = column
    try:
        with closing(sqlite3.connect(store)) as conn, conn:
            conn.execute(
                f"UPDATE {table} SET {name} = ?"
                f" WHERE rowid = (SELECT min(rowid) FROM {table})",
                (value,),
            )
    except sqlite3.IntegrityError:
        assume(False)  # SQLite stores NaN as NULL, which NOT NULL refuses

    for read in history_readers():
        refusal(read, store)
    code, out, err = run_cli("history", f"--reports-dir={scratch}")
    if code == 2:
        assert_refused_in_one_line(code, out, err, str(store))


@FUZZ
@given(data=st.data())
def test_a_garbled_store_is_read_or_refused(
    scratch: Path, history_store: Path, data: st.DataObject
) -> None:
    store = scratch / "history.sqlite"
    store.write_bytes(data.draw(garbled(history_store.read_bytes())))

    for read in history_readers():
        store_bytes = store.read_bytes()
        refusal(read, store)
        store.write_bytes(store_bytes)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE runs SET started_at = 'yesterday'",
        "UPDATE measurements SET max_outage_s = 'a while'",
        "UPDATE measurements SET lost_writes = 1e400",
        "UPDATE meta SET value = 'two'",
        "DELETE FROM meta",
        "DROP TABLE measurements",
        "DROP TABLE runs",
        "ALTER TABLE measurements RENAME COLUMN lost_writes TO lost",
        # A damaged schema, which SQLite quotes, line break and all.
        "PRAGMA writable_schema = ON; UPDATE sqlite_master"
        " SET name = 'runs,\n  broken', sql = 'CREATE TABLE x (' WHERE name = 'runs'",
    ],
)
def test_a_tampered_store_is_refused_by_the_command_in_one_line(
    tmp_path: Path, history_store: Path, statement: str
) -> None:
    store = history_path(tmp_path)
    shutil.copy(history_store, store)
    with closing(sqlite3.connect(store)) as conn:
        conn.executescript(statement)

    code, out, err = run_cli("history", f"--reports-dir={tmp_path}")

    assert_refused_in_one_line(code, out, err, str(store))


def test_a_store_that_is_a_directory_is_refused_in_one_line(tmp_path: Path) -> None:
    history_path(tmp_path).mkdir()

    code, out, err = run_cli("history", f"--reports-dir={tmp_path}")

    assert_refused_in_one_line(code, out, err, str(history_path(tmp_path)))


# -- the experiment's configuration and the kubeconfig ------------------------------
@FUZZ
@given(
    configuration=st.one_of(
        VALUES,
        st.dictionaries(
            st.sampled_from(
                ["chaoscert_rate_hz", "chaoscert_topology", "chaoscert_platform"]
            )
            | st.text(max_size=12)
            | st.integers(),
            VALUES,
            max_size=4,
        ),
    )
)
def test_any_experiment_configuration_is_read_or_refused(configuration: Any) -> None:
    try:
        settings_read = CtkSettings.from_configuration(configuration)
    except ChaoscertError as exc:
        assert len(str(exc).splitlines()) == 1
        return
    assert settings_read.rate_hz > 0
    assert isinstance(settings_read.platform, str)


@FEW
@given(data=st.data())
def test_a_kubeconfig_with_one_change_is_read_or_refused(
    scratch: Path, data: st.DataObject
) -> None:
    profile = load_target(YAML_INPUTS["kind-target"][1])
    path = scratch / "kubeconfig"
    path.write_bytes(
        data.draw(mutated(KUBECONFIG).map(as_yaml) | garbled(as_yaml(KUBECONFIG)))
    )

    try:
        kube_configuration(profile, path, YAML_INPUTS["kind-target"][1])
    except ChaoscertError as exc:
        message = str(exc)
        assert len(message.splitlines()) == 1, message
        assert str(path) in message or "kind.yaml" in message, message
        assert "not-a-real-token" not in message


# -- feature files: step parameters -------------------------------------------------
@FUZZ
@given(
    text=st.text(max_size=60)
    | st.lists(
        st.sampled_from(
            [
                "dispatch",
                "warehouse scanning",
                "invoice posting",
                "and",
                ",",
                "write",
                "x",
            ]
        )
    ).map(" ".join)
)
def test_a_workflow_parameter_is_a_known_workflow_or_a_value_error(text: str) -> None:
    for convert in (workflow_names, one_workflow, written):
        try:
            converted = convert(text)
        except ValueError as exc:
            assert len(str(exc).splitlines()) == 1
            continue
        names = converted if isinstance(converted, list) else [converted]
        assert all(name is None or name in WORKFLOWS for name in names)


@FUZZ
@given(value=st.integers())
def test_a_number_parameter_is_in_range_or_a_value_error(value: int) -> None:
    for convert, least in ((duration_s, 0), (rate_factor, 1)):
        if value >= least:
            assert convert(value) == value
        else:
            with pytest.raises(ValueError, match=str(value)):
                convert(value)


# -- through the command: `chaoscert run` refuses before anything starts ------------
# --rate-hz 0 is refused after the files are read, so a mutation that happens to
# be valid still stops the run before it starts anything.
@pytest.mark.parametrize("name", YAML_INPUTS)
@FEW
@given(data=st.data())
def test_the_run_command_refuses_a_changed_file_in_one_line(
    scratch: Path, name: str, data: st.DataObject
) -> None:
    path = scratch / f"run-{name}.yaml"
    document = data.draw(mutated(fixture_document(name)))
    path.write_bytes(data.draw(st.just(as_yaml(document)) | garbled(as_yaml(document))))
    state = scratch / "state"
    option = {
        "slo": ["--slo", str(path)],
        "topology": ["--topology", str(path)],
        "async-topology": ["--topology", str(path)],
    }.get(name, ["--platform", "kubernetes", "--target", str(path)])

    code, out, err = run_cli(
        "run",
        f"--slo={SLO}",
        f"--topology={TOPOLOGY}",
        *option,
        f"--kubeconfig={scratch / 'no-kubeconfig'}",
        "--rate-hz=0",
        f"--reports-dir={scratch / 'reports'}",
        f"--state-dir={state}",
    )

    line = assert_refused_in_one_line(code, out, err)
    # A change may leave the file valid: then a later check refuses the run.
    assert any(
        said in line for said in (str(path), "--rate-hz", "target ", "kubeconfig ")
    ), line
    assert not state.exists()
    assert not (scratch / "reports").exists()


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the catalogue's steps and fixtures, with features of our own."""
    root = tmp_path_factory.mktemp("suite")
    shutil.copytree(ROOT / "steps", root / "steps")
    shutil.copytree(ROOT / "fixtures", root / "fixtures")
    shutil.copy(ROOT / "conftest.py", root / "conftest.py")
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    (root / "features").mkdir()
    return root


BACKGROUND = (
    "Feature: Odd\n"
    "  Scenario: Something odd\n"
    "    Given the platform is in steady state within 10 seconds\n"
)


@pytest.mark.parametrize(
    ("feature", "expected"),
    [
        (
            BACKGROUND + "    And teleport and dispatch are probed\n",
            "odd.feature:4: And 'teleport and dispatch are probed': unknown"
            " workflow 'teleport'",
        ),
        (
            BACKGROUND + "    When the fault lasts -5 seconds\n",
            "odd.feature:4: When 'the fault lasts -5 seconds': a duration cannot"
            " be negative",
        ),
        (
            BACKGROUND + "    When dispatch runs at 0 times its rate\n",
            "odd.feature:4: When 'dispatch runs at 0 times its rate': a rate factor"
            " must be at least 1",
        ),
        (
            BACKGROUND + "  Feature: A second one\n",
            "odd.feature:4: Multiple features are not allowed in a single feature",
        ),
        (
            BACKGROUND.replace("Something odd", "Caf\xe9").encode("latin-1"),
            "odd.feature: not UTF-8 text (byte 28)",
        ),
    ],
    ids=[
        "unknown workflow",
        "negative seconds",
        "rate factor 0",
        "not Gherkin",
        "not UTF-8",
    ],
)
def test_the_installed_command_refuses_a_bad_feature_in_one_line(
    suite: Path, tmp_path: Path, feature: str | bytes, expected: str
) -> None:
    text = feature if isinstance(feature, bytes) else feature.encode()
    (suite / "features" / "odd.feature").write_bytes(text)
    reports, state = tmp_path / "reports", tmp_path / "state"

    done = subprocess.run(
        [
            str(CHAOSCERT),
            "run",
            f"--suite={suite}",
            f"--reports-dir={reports}",
            f"--state-dir={state}",
        ],
        cwd=suite,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    line = assert_refused_in_one_line(done.returncode, done.stdout, done.stderr)
    assert expected in line
    assert not reports.exists()
    assert not state.exists()


def _bad_journal(directory: Path) -> Path:
    run = {"activity": {"name": "[/bold]"}, "output": {"chaoscert_measurement": 9}}
    return _write(
        directory / "journal.json", as_json({"status": "completed", "run": [run]})
    )


# Each run would be refused for --rate-hz=0 too, should the file be taken.
@pytest.mark.parametrize(
    ("make", "args", "expected"),
    [
        (
            lambda d: _write(d / "slo.yaml", "tiers: caf\xe9\n".encode("latin-1")),
            lambda path: ["run", f"--slo={path}", "--rate-hz=0"],
            "not UTF-8 text (byte 10)",
        ),
        (
            lambda d: _write(
                d / "t.yaml", TOPOLOGY.read_bytes() + b'"[/x]\\nsecond line": 1\n'
            ),
            lambda path: ["run", f"--slo={SLO}", f"--topology={path}", "--rate-hz=0"],
            "field '[/x]\\nsecond line': Extra inputs are not permitted",
        ),
        (
            _bad_journal,
            lambda path: ["report", str(path)],
            "activity '[/bold]': measurement format 9 is not one",
        ),
    ],
    ids=["SLO not UTF-8", "topology key with markup and a line break", "journal"],
)
def test_the_installed_command_refuses_bad_files_in_one_line(
    tmp_path: Path,
    make: Callable[[Path], Path],
    args: Callable[[Path], list[str]],
    expected: str,
) -> None:
    path = make(tmp_path)
    reports, state = tmp_path / "reports", tmp_path / "state"

    done = subprocess.run(
        [
            str(CHAOSCERT),
            *args(path),
            f"--reports-dir={reports}",
            *([f"--state-dir={state}"] if args(path)[0] == "run" else []),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    line = assert_refused_in_one_line(
        done.returncode, done.stdout, done.stderr, str(path)
    )
    assert expected in line
    assert not reports.exists()
    assert not state.exists()
