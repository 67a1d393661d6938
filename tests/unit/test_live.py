"""The live view of a run: plain lines, the Live's content, the summary, and
that a display never breaks a run."""

from __future__ import annotations

import io
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from chaoscert.cli import build_parser
from chaoscert.config import load_slo
from chaoscert.live import (
    LineProxy,
    LiveView,
    PlainView,
    choose_mode,
    exit_meaning,
    open_view,
    summary,
)
from chaoscert.platforms.base import FaultHandle
from chaoscert.probes.engine import Tally
from chaoscert.probes.samples import Sample
from chaoscert.results import (
    ProbeSettings,
    RunResults,
    ScenarioResult,
    SloApplied,
    WorkflowResult,
)
from chaoscert.scenario import ProbeOptions, ScenarioRun

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 12, 3, 15, 30, tzinfo=UTC)


def sample(
    workflow: str, seq: int, start: float, ok: bool = True, latency: float = 0.2
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
        error="" if ok else "no outcome within 2 s",
    )


class FakeProbes:
    """Stands in for a ProbeSession: tallies built from the samples given."""

    def __init__(self) -> None:
        self.by_workflow: dict[str, list[Sample]] = {}

    def add(self, *samples: Sample) -> None:
        for s in samples:
            self.by_workflow.setdefault(s.workflow, []).append(s)

    def tally(self, workflow: str) -> Tally:
        tally = Tally()
        for s in self.by_workflow.get(workflow, []):
            tally.add(s)
        return tally


class FakePlatform:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def log_marks(self) -> dict[str, int]:
        return {}


def scenario_run(name: str = "Every workflow keeps its tier when node c1 hangs") -> Any:
    slo = load_slo(ROOT / "fixtures" / "slo-tiers.yaml")
    run = ScenarioRun(
        FakePlatform(),  # type: ignore[arg-type]
        slo,
        ProbeOptions(),
        feature="Node loss",
        name=name,
    )
    return run


def traffic(run: Any, workflows: list[str]) -> FakeProbes:
    probes = FakeProbes()
    run.workflows = workflows
    run.probes = probes
    return probes


def fault(kind: str, target: str, injected: float, healed: float | None = None):
    handle = FaultHandle(kind, target, lambda: None, injected_mono=injected)
    handle.healed_mono = healed
    return handle


def plain_view() -> tuple[PlainView, io.StringIO]:
    out = io.StringIO()
    return PlainView(Console(file=out, width=120), "20261203T153000Z-ab12"), out


def text_of(renderable: Any, width: int = 120) -> str:
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


# -- plain lines -------------------------------------------------------------------
def test_plain_view_writes_one_line_per_change() -> None:
    view, out = plain_view()
    run = scenario_run()
    view.scenario_started(run, 3, 15)

    run.set_phase("steady state")
    probes = traffic(run, ["warehouse_scanning", "dispatch"])
    probes.add(
        *(sample("warehouse_scanning", i, 100.0 + i * 0.1) for i in range(1, 11))
    )
    probes.add(*(sample("dispatch", i, 100.0 + i * 0.1) for i in range(1, 11)))
    run.set_phase("baseline")
    run.set_phase("baseline")  # asserting the baseline again says nothing new
    view.tick()
    run.set_phase("injecting", "node_hang on c1")
    run.faults.append(fault("node_hang", "node c1 (Postgres leader)", 110.0))
    run.set_phase("fault injected")
    probes.add(*(sample("dispatch", i, 110.0 + i, ok=False) for i in range(11, 16)))
    view.tick()
    view.tick()  # still down: no second line
    run.faults[0].healed_mono = 155.0
    run.set_phase("healed")
    probes.add(*(sample("dispatch", i, 150.5 + i * 0.1) for i in range(16, 21)))
    view.tick()
    run.set_phase("recovering")
    view.scenario_finished(
        ScenarioResult(
            feature="Node loss", name=run.name, status="passed", duration_s=83.24
        )
    )

    assert out.getvalue().splitlines() == [
        "[3/15] Node loss: Every workflow keeps its tier when node c1 hangs",
        "[3/15] waiting for steady state",
        "[3/15] baseline: warehouse scanning, dispatch probed before any fault",
        "[3/15] warehouse scanning 100.0 % of 10 ok, dispatch 100.0 % of 10 ok",
        "[3/15] injecting node hang on c1",
        "[3/15] fault injected: node hang on node c1 (Postgres leader)",
        "[3/15] dispatch down: timeout: no outcome within 2 s",
        "[3/15] healed after 45.0 s: node hang on node c1 (Postgres leader)",
        "[3/15] warehouse scanning 100.0 % of 10 ok, dispatch 66.7 % of 15 ok",
        "[3/15] dispatch up again after 31.1 s down",
        "[3/15] recovering: waiting for 5 successes in a row of every workflow",
        "[3/15] warehouse scanning 100.0 % of 10 ok, dispatch 75.0 % of 20 ok",
        "[3/15] passed in 83.2 s",
    ]


def test_plain_view_says_why_a_scenario_did_not_pass() -> None:
    view, out = plain_view()
    run = scenario_run()
    view.scenario_started(run, 1, 2)

    view.scenario_finished(
        ScenarioResult(
            feature="f",
            name=run.name,
            status="failed",
            duration_s=12.0,
            error="dispatch was down for 41.2 s (expected no outage over 30 s)",
        )
    )

    assert out.getvalue().splitlines()[-1] == (
        "[1/2] failed in 12.0 s: dispatch was down for 41.2 s"
        " (expected no outage over 30 s)"
    )
    assert run.on_change is None  # a finished scenario no longer feeds the view


def test_the_verdict_line_gives_the_reasons() -> None:
    view, out = plain_view()
    run = scenario_run()
    view.scenario_started(run, 1, 1)

    class Verdict:
        reasons = ("dispatch was down for 41.2 s; tier 1 allows 30 s",)

    run.verdicts = {"dispatch": Verdict()}
    run.set_phase("verdict")

    assert out.getvalue().splitlines()[-1] == (
        "[1/1] verdict: dispatch was down for 41.2 s; tier 1 allows 30 s"
    )


# -- the live renderable -----------------------------------------------------------
def test_live_view_shows_the_scenario_its_faults_and_success_rates() -> None:
    view = LiveView(Console(file=io.StringIO(), width=120), "20261203T153000Z-ab12")
    run = scenario_run()
    view.scenario_started(run, 2, 15)
    probes = traffic(run, ["warehouse_scanning", "dispatch"])
    probes.add(
        *(sample("warehouse_scanning", i, 100.0 + i * 0.1) for i in range(1, 41))
    )
    probes.add(*(sample("dispatch", i, 100.0 + i * 0.1) for i in range(1, 40)))
    probes.add(sample("dispatch", 40, 117.0, ok=False))
    run.faults.append(fault("replication_stall", "WAL senders of a1", 100.0, 108.0))
    run.faults.append(fault("node_hang", "node c1 (Postgres leader)", 108.0))
    run.set_phase("fault injected")

    text = text_of(view.renderable(now_mono=120.4))

    assert "chaoscert run 20261203T153000Z-ab12  scenario 2 of 15" in text
    assert "Node loss: Every workflow keeps its tier when node c1 hangs" in text
    assert "fault injected: node hang on node c1 (Postgres leader) for 12 s" in text
    assert "live    node hang on node c1 (Postgres leader), 12 s" in text
    assert "healed  replication stall on WAL senders of a1 after 8.0 s" in text
    rows = {
        line.split()[0]: line.split()
        for line in text.splitlines()
        if line.strip().startswith(("warehouse", "dispatch"))
    }
    assert rows["warehouse"][2:] == ["40", "0", "100.0", "%", "up"]
    assert rows["dispatch"][1:] == [
        "40",
        "1",
        "97.5",
        "%",
        "down",
        "3",
        "s",
        "(timeout)",
    ]


def test_live_view_between_scenarios_counts_what_is_done() -> None:
    view = LiveView(Console(file=io.StringIO(), width=120), "RUN")
    run = scenario_run()
    view.scenario_started(run, 1, 3)
    view.scenario_finished(ScenarioResult(feature="f", name="a", status="passed"))
    view.scenario_started(scenario_run(), 2, 3)
    view.scenario_finished(ScenarioResult(feature="f", name="b", status="failed"))

    text = text_of(view.renderable(now_mono=0.0))

    assert "done: 1 passed, 1 failed" in text
    assert "between scenarios" in text
    assert "scenario 2 of 3" not in text


# -- the summary -------------------------------------------------------------------
def workflow(
    name: str,
    max_outage_s: float,
    lost: int = 0,
    acknowledged: int = 0,
    writes: bool = True,
    limit_s: float = 30.0,
) -> WorkflowResult:
    return WorkflowResult(
        name=name,
        tier="tier1",
        samples=500,
        failed=12,
        max_outage_s=max_outage_s,
        downtime_s=max_outage_s,
        recovery_s=max_outage_s,
        recovered=True,
        lost_writes=lost,
        acknowledged_writes=acknowledged,
        writes=writes,
        resolution_s=0.1,
        slo=SloApplied(max_outage_s=limit_s, rpo_writes=0, slow_threshold_s=2.0),
        verdict="fail" if max_outage_s > limit_s or lost else "pass",
    )


def results() -> RunResults:
    return RunResults(
        run_id="20261203T153000Z-ab12",
        platform="local",
        topology="reference",
        started_at=T0,
        probe=ProbeSettings(
            rates_hz={"dispatch": 10.0}, timeout_s=2.0, resolution_s=0.1
        ),
        scenarios=[
            ScenarioResult(
                feature="Node loss",
                name="Every workflow keeps its tier when node c1 hangs",
                status="failed",
                workflows=[
                    workflow("warehouse_scanning", 4.2, writes=False),
                    workflow("dispatch", 41.2, lost=3, acknowledged=412),
                ],
                error="dispatch was down for 41.2 s (expected no outage over 30 s)",
            ),
            ScenarioResult(
                feature="DCS",
                name="Losing two etcd members stops writes only",
                status="error",
                error="the platform did not return to steady state",
            ),
            ScenarioResult(
                feature="Zone loss",
                name="Every workflow keeps its tier when zone a crashes",
                status="passed",
                workflows=[workflow("invoice_posting", 95.0, 0, 20, limit_s=1800.0)],
            ),
        ],
    )


def test_summary_has_each_scenario_its_outages_against_limits_and_lost_writes() -> None:
    text = text_of(summary(results()), width=160)
    lines = text.splitlines()

    def row(start: str) -> str:
        return next(line for line in lines if line.strip().startswith(start))

    assert "run 20261203T153000Z-ab12" in text
    first = row("1 ")
    assert "Every workflow keeps its tier when node c1 hangs" in first
    assert "failed" in first
    assert "warehouse scanning" in first
    assert "4.2 s (limit 30 s)" in first
    assert "reads only" in first
    dispatch = row("dispatch")
    assert "41.2 s (limit 30 s)" in dispatch
    assert dispatch.rstrip().endswith("3 of 412")
    assert "error" in row("2 ")
    assert "-" in row("2 ")
    assert "95 s (limit 30 min)" in row("3 ")
    assert "0 of 20" in row("3 ")
    assert "1. failed: dispatch was down for 41.2 s (expected no outage" in text
    assert "2. error: the platform did not return to steady state" in text
    assert "3. passed" not in text


def test_summary_wraps_only_the_scenario_name_in_a_narrow_log() -> None:
    lines = text_of(summary(results()), width=100).splitlines()

    dispatch = next(line for line in lines if "dispatch" in line)
    assert "41.2 s (limit 30 s)" in dispatch
    assert dispatch.rstrip().endswith("3 of 412")
    assert any("hangs" in line and "dispatch" not in line for line in lines)


def test_summary_without_scenarios_says_so() -> None:
    assert text_of(summary(None)).strip() == "no scenario ran"
    empty = results().model_copy(update={"scenarios": []})
    assert text_of(summary(empty)).strip() == "no scenario ran"


def test_view_prints_the_summary_then_what_the_exit_code_means() -> None:
    view, out = plain_view()
    view.run_started(results())

    view.summarize()
    view.finish(1)

    lines = out.getvalue().splitlines()
    assert any("41.2 s (limit 30 s)" in line for line in lines)
    assert lines[-1] == "exit 1: at least one scenario failed or could not be judged"


@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        (0, "no scenario failed"),
        (1, "at least one scenario failed or could not be judged"),
        (2, "the run was stopped: interrupted, or refused before it began (see above)"),
        (5, "no scenario was selected"),
        (143, "ended by SIGTERM"),
        (130, "ended by SIGINT"),
        (99, "unexpected exit code"),
    ],
)
def test_exit_meanings(code: int, meaning: str) -> None:
    assert exit_meaning(code) == meaning


# -- the tally the engine keeps ------------------------------------------------------
def test_tally_follows_the_newest_attempt_by_schedule() -> None:
    tally = Tally()
    for s in [
        sample("dispatch", 1, 0.0),
        sample("dispatch", 3, 2.0, ok=False),
        sample("dispatch", 2, 1.0, ok=False),  # finished late: not the state now
        sample("dispatch", 4, 3.0, ok=False),
    ]:
        tally.add(s)

    assert (tally.samples, tally.failed) == (4, 3)
    assert tally.success_pct == 25.0
    assert tally.latest_ok is False
    assert tally.latest_seq == 4
    assert tally.since_mono == 2.0  # down since attempt 3 began

    tally.add(sample("dispatch", 5, 4.0))
    assert tally.latest_ok is True
    assert tally.since_mono == 4.0
    assert Tally().success_pct is None


# -- command line and mode -------------------------------------------------------------
def test_run_accepts_plain() -> None:
    args = build_parser().parse_args(["run", "--plain", "--", "-k", "quick"])
    assert args.plain is True
    assert args.pytest_args == ["--", "-k", "quick"]
    assert build_parser().parse_args(["run"]).plain is False


class FakeTerminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_mode_is_live_only_on_a_terminal_without_plain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    assert choose_mode(False, FakeTerminal(tty=True)) == "live"
    assert choose_mode(True, FakeTerminal(tty=True)) == "plain"
    assert choose_mode(False, FakeTerminal(tty=False)) == "plain"
    monkeypatch.setenv("TERM", "dumb")
    assert choose_mode(False, FakeTerminal(tty=True)) == "plain"


def test_a_terminal_without_a_descriptor_to_copy_gets_plain_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    stream = FakeTerminal(tty=True)  # isatty, but no fileno to duplicate

    view = open_view("RUN", stream=stream)

    assert isinstance(view, PlainView)
    assert view.fd is None
    view.finish(0)
    assert "exit 0: no scenario failed" in stream.getvalue()  # bold: a terminal


def test_open_view_writes_to_a_copy_of_the_descriptor(tmp_path: Path) -> None:
    with (tmp_path / "err").open("w") as stream:
        view = open_view("RUN", stream=stream)
        assert view.fd is not None and view.fd != stream.fileno()
        view.finish(0)
        assert view.fd is None
    assert (tmp_path / "err").read_text() == "exit 0: no scenario failed\n"


# -- other output around the display ---------------------------------------------------
def test_line_proxy_hands_on_whole_lines() -> None:
    lines: list[str] = []
    proxy = LineProxy(lines.append, io.StringIO())

    proxy.write("steps/test_catalogue.py ")
    proxy.write("..")
    proxy.flush()
    assert lines == []
    proxy.write("F [100%]\ncollecting ... \rcollected 3 items\nhalf")
    assert lines == ["steps/test_catalogue.py ..F [100%]", "collected 3 items"]
    proxy.drain()
    assert lines[-1] == "half"


def test_attached_view_routes_stdout_that_shares_its_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read_fd, write_fd = os.pipe()
    try:

        class Shared(io.StringIO):
            def fileno(self) -> int:
                return write_fd

        shared = Shared()
        monkeypatch.setattr(sys, "stdout", shared)
        out = io.StringIO()
        view = PlainView(Console(file=out, width=120), "RUN", fd=write_fd)

        with view.attached():
            assert sys.stdout is not shared
            sys.stdout.write("collected 3 items\nsteps/test_catalogue.py ..")
            assert out.getvalue() == "collected 3 items\n"

        assert sys.stdout is shared
        assert out.getvalue() == "collected 3 items\nsteps/test_catalogue.py ..\n"
        assert shared.getvalue() == ""
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_attached_live_view_prints_stderr_lines_and_gives_streams_back() -> None:
    out = io.StringIO()
    view = LiveView(Console(file=out, width=120), "RUN")
    stderr, stdout = sys.stderr, sys.stdout

    with view.attached():
        assert sys.stderr is not stderr
        sys.stderr.write("INFO run complete\n")

    assert (sys.stderr, sys.stdout) == (stderr, stdout)
    assert "INFO run complete" in out.getvalue()


# -- a display never breaks a run -----------------------------------------------------
def test_a_failing_observer_does_not_stop_the_scenario() -> None:
    run = scenario_run()

    def broken(phase: str) -> None:
        raise RuntimeError("terminal gone")

    run.on_change = broken
    run.set_phase("measuring")

    assert run.phase == "measuring"


class BrokenFile(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError("terminal gone")


class BrokenPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_broken_pipe_drops_the_view_output_without_ending_the_run() -> None:
    view = open_view("RUN", stream=BrokenPipe())  # rich would raise SystemExit
    run = scenario_run()

    view.scenario_started(run, 1, 1)
    run.set_phase("baseline")
    view.summarize()
    view.finish(0)

    assert view.console.file.gone is True


def test_display_errors_are_logged_at_debug_and_swallowed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="chaoscert.live")
    view = PlainView(Console(file=BrokenFile(), width=120), "RUN")
    run = scenario_run()
    traffic(run, ["dispatch"]).add(sample("dispatch", 1, 0.0, ok=False))

    view.scenario_started(run, 1, 1)
    run.set_phase("baseline")
    view.tick()
    view.scenario_finished(ScenarioResult(feature="f", name="n", status="passed"))
    view.summarize()
    view.finish(0)

    failed = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("scenario_started failed" in m for m in failed)
    assert any("phase_changed failed" in m for m in failed)
    assert any("tick failed" in m for m in failed)
    assert any("finish failed" in m for m in failed)
    assert all(r.levelno == logging.DEBUG for r in caplog.records)


def test_a_failing_read_of_the_probes_leaves_the_live_view_up() -> None:
    view = LiveView(Console(file=io.StringIO(), width=120), "RUN")
    run = scenario_run()

    class BrokenProbes:
        def tally(self, workflow: str) -> Tally:
            raise ValueError(f"no probe for workflow {workflow!r}")

    run.workflows, run.probes = ["dispatch"], BrokenProbes()
    view.scenario_started(run, 1, 1)

    text = text_of(view.renderable())

    assert "live view unavailable: no probe for workflow 'dispatch'" in text


def test_a_failing_print_falls_back_to_the_original_stream() -> None:
    original = io.StringIO()

    def broken(line: str) -> None:
        raise OSError("terminal gone")

    LineProxy(broken, original).write("chaoscert report: r.html\n")

    assert original.getvalue() == "chaoscert report: r.html\n"
