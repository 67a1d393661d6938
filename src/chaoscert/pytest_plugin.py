"""The pytest plugin that runs the Gherkin catalogue against a platform.

It adds the options (`--platform`, `--topology`, rates, where reports go),
provides the `chaoscert_platform` and `scenario_run` fixtures the steps use,
heals every fault after each scenario, waits for steady state again before
the next one, and writes results.json and the report as the run goes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd.exceptions import GherkinParseError
from pytest_bdd.parser import Step
from pytest_bdd.scenario import (
    find_fixturedefs_for_step,
    iterparentnodeids,
    parse_step_arguments,
    scenario_wrapper_template_registry,
)
from pytest_bdd.steps import step_function_context_registry

from chaoscert.config import SloConfig, load_slo
from chaoscert.errors import ChaoscertError, FaultNotApplicable
from chaoscert.live import RunView, view_of
from chaoscert.plan import PlanRun
from chaoscert.platforms import get_platform
from chaoscert.platforms.base import Platform
from chaoscert.platforms.local.layout import default_state_dir
from chaoscert.results import RunWriter, Status, redact_tree
from chaoscert.scenario import ProbeOptions, ScenarioRun, start_run

log = logging.getLogger("chaoscert.pytest")

SCENARIO_KEY = pytest.StashKey[dict[str, Any]]()
CALL_REPORT_KEY = pytest.StashKey[pytest.TestReport]()
STATE_KEY = pytest.StashKey["RunState"]()
REFUSAL_KEY = pytest.StashKey[str]()
STEADY_AFTER_SCENARIO_S = 180.0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaoscert", "chaoscert certification")
    group.addoption("--platform", default="local", help="platform (default: local)")
    group.addoption(
        "--topology",
        default="fixtures/topologies/reference.yaml",
        help="local stack topology file",
    )
    group.addoption("--state-dir", default=None, help="local stack state directory")
    group.addoption(
        "--target", default=None, help="target profile (--platform kubernetes)"
    )
    group.addoption("--kubeconfig", default=None, help="kubeconfig (default: usual)")
    group.addoption(
        "--dry-run",
        action="store_true",
        help="print which nodes and pods each fault would hit; inject nothing",
    )
    group.addoption("--slo", default="fixtures/slo-tiers.yaml", help="SLO tiers file")
    group.addoption("--rate-hz", type=float, default=10.0, help="probe attempts/s")
    group.addoption(
        "--probe-timeout-s", type=float, default=2.0, help="client timeout per attempt"
    )
    group.addoption("--reports-dir", default="reports", help="where runs are written")
    group.addoption("--run-id", default=None, help="run id (default: generated)")


def pytest_configure(config: pytest.Config) -> None:
    # One INFO line per probe request would drown the run's narration.
    logging.getLogger("httpx").setLevel(logging.WARNING)


class RunState:
    """What one pytest session shares across scenarios."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.platform: Platform | None = None
        self.slo: SloConfig | None = None
        self.writer: RunWriter | None = None
        self.interrupted = False
        self.plans: list[PlanRun] = []

    @property
    def dry_run(self) -> bool:
        return bool(self.option("dry_run"))

    def option(self, name: str) -> Any:
        return self.config.getoption(name)

    def probe_options(self) -> ProbeOptions:
        assert self.slo is not None
        return ProbeOptions.for_slo(
            self.slo, self.option("rate_hz"), self.option("probe_timeout_s")
        )

    def release(self) -> None:
        if self.platform is not None:
            self.platform.release()

    def start(self) -> Platform:
        if self.platform is not None:
            return self.platform
        slo_path = Path(self.option("slo"))
        self.slo = load_slo(slo_path)
        state_dir = self.option("state_dir")
        target, kubeconfig = self.option("target"), self.option("kubeconfig")
        platform = get_platform(
            self.option("platform"),
            Path(self.option("topology")),
            Path(state_dir) if state_dir else default_state_dir(),
            target=Path(target) if target else None,
            kubeconfig=Path(kubeconfig) if kubeconfig else None,
        )
        if self.dry_run:
            # Read-only: no lease, no healing, no results; targets are
            # resolved against the platform as it is now.
            platform.ensure_up()
            self.platform = platform
            return platform
        platform.take()
        self.platform = platform
        self.writer = start_run(
            Path(self.option("reports_dir")),
            platform,
            self.slo,
            self.probe_options(),
            run_id=self.option("run_id"),
        )
        return platform


def _state(config: pytest.Config) -> RunState:
    state: RunState = config.stash.setdefault(STATE_KEY, RunState(config))
    return state


@pytest.fixture(scope="session")
def chaoscert_platform(pytestconfig: pytest.Config) -> Platform:
    """The platform under test, up and registered for healing."""
    state = _state(pytestconfig)
    try:
        platform = state.start()
    except ChaoscertError as exc:
        pytest.exit(f"chaoscert: {exc}", returncode=2)
    view = view_of(pytestconfig)
    if view is not None and state.writer is not None:
        view.run_started(state.writer.results)
    return platform


@pytest.fixture
def scenario_run(
    request: pytest.FixtureRequest, chaoscert_platform: Platform
) -> Iterator[ScenarioRun | PlanRun]:
    """One scenario's run; healed, recorded and followed by steady state."""
    state = _state(request.config)
    assert state.slo is not None
    info = request.node.stash.get(SCENARIO_KEY, {})
    if state.dry_run:
        plan = PlanRun(chaoscert_platform, state.slo, info.get("name", ""))
        state.plans.append(plan)
        yield plan
        return
    run = ScenarioRun(
        chaoscert_platform,
        state.slo,
        state.probe_options(),
        feature=info.get("feature", ""),
        name=info.get("name", request.node.name),
        tags=info.get("tags", []),
    )
    view = _show_scenario(request, run)
    error: str | None = None
    try:
        yield run
    finally:
        run.set_phase("teardown")
        heal_errors = chaoscert_platform.heal_all()
        steady_error = None
        try:
            seconds = chaoscert_platform.wait_steady(STEADY_AFTER_SCENARIO_S)
            log.info("steady state again %.1f s after the scenario", seconds)
        except ChaoscertError as exc:
            steady_error = f"the platform did not return to steady state: {exc}"
        # A scenario that failed before its verdict step (it never recovered,
        # say) is still judged on what was measured, once the platform is
        # back, so no tier reads certified on a scenario never judged.
        try:
            run.finish_measurement()
        except (ChaoscertError, AssertionError) as exc:
            log.warning("measurement could not be finished: %s", exc)
        heal_errors += run.close()
        report = request.node.stash.get(CALL_REPORT_KEY, None)
        status: Status
        if heal_errors or steady_error:
            status, error = (
                "error",
                "; ".join([*heal_errors, *filter(None, [steady_error])]),
            )
        elif report is None:
            status, error = "error", "interrupted before the scenario finished"
        elif report.passed:
            status = "passed"
        elif report.skipped:
            status = "skipped"
            error = _short(report)
        else:
            status = "failed"
            error = _short(report)
        result = run.result(status, error)
        if state.writer is not None:
            state.writer.add_scenario(result, run.all_samples())
        if view is not None:
            view.scenario_finished(result)
        if heal_errors or steady_error:
            pytest.fail(error or "", pytrace=False)


def _show_scenario(request: pytest.FixtureRequest, run: ScenarioRun) -> RunView | None:
    """Hand `run` to the view `chaoscert run` attached, if any; return it."""
    view = view_of(request.config)
    if view is not None:
        items = request.session.items
        index = items.index(request.node) + 1 if request.node in items else 0
        view.scenario_started(run, index, len(items))
    return view


def _short(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).splitlines()[0][:500]
    return str(report.longrepr).strip().splitlines()[-1][:500]


def pytest_bdd_before_scenario(
    request: pytest.FixtureRequest, feature: Any, scenario: Any
) -> None:
    request.node.stash[SCENARIO_KEY] = {
        "feature": feature.name,
        "name": scenario.name,
        "tags": sorted(scenario.tags | feature.tags),
    }


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[CALL_REPORT_KEY] = report
    return report


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Refuse, before anything starts, a feature step that no definition matches
    or whose parameters its definition refuses (its converters raise)."""
    problems = []
    for item in items:
        function = getattr(item, "function", None)
        template = scenario_wrapper_template_registry.get(function)  # type: ignore[arg-type]
        if template is None:
            continue
        callspec = getattr(item, "callspec", None)
        example = callspec.params.get("_pytest_bdd_example", {}) if callspec else {}
        for step in template.render(example).steps:
            problem = _step_problem(step, session, item)
            if problem:
                where = f"{template.feature.rel_filename}:{step.line_number}"
                problems.append(f"{where}: {problem}")
    if problems:
        first = sorted(set(problems))
        more = f" (and {len(first) - 1} more)" if len(first) > 1 else ""
        config.stash[REFUSAL_KEY] = f"{first[0]}{more}"
        pytest.exit(f"chaoscert: {first[0]}{more}", returncode=2)


def _step_problem(step: Step, session: pytest.Session, item: pytest.Item) -> str:
    """Why `step` cannot run, in a few words, or "" when it can."""
    said = f"{step.keyword.strip()} {step.name!r}"
    definitions = list(find_fixturedefs_for_step(step, session._fixturemanager, item))
    if not definitions:
        return f"no step definition matches {said}"
    # The definition pytest-bdd will run: the last, ordered by scope as it does.
    definitions.sort(key=lambda d: list(iterparentnodeids(d.baseid)))
    context = step_function_context_registry[definitions[-1].func]
    try:
        parse_step_arguments(step, context)
    except ValueError as exc:
        return f"{said}: {exc}"
    return ""


class CatalogueCheck:
    """A plugin for a collect-only session of the catalogue: ``refusal`` is the
    one line that refuses it (a feature file that does not parse, a step no
    definition matches or with a parameter refused), or None."""

    def __init__(self) -> None:
        self.refusal: str | None = None

    def pytest_exception_interact(
        self, node: pytest.Collector | pytest.Item, call: pytest.CallInfo[Any]
    ) -> None:
        if self.refusal is not None or call.excinfo is None:
            return
        exc = call.excinfo.value
        if isinstance(exc, GherkinParseError):
            self.refusal = f"{exc.filename}:{exc.line}: {exc.message}"
        else:
            first = (str(exc).strip().splitlines() or [""])[0]
            self.refusal = (
                f"{node.nodeid}: cannot collect: {type(exc).__name__}: {first}"
            )

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.refusal = self.refusal or config.stash.get(REFUSAL_KEY, None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """A fault this platform cannot make skips the scenario, saying why."""
    try:
        return (yield)
    except FaultNotApplicable as exc:
        pytest.skip(f"not applicable on this platform: {exc}")


def pytest_keyboard_interrupt() -> None:
    log.warning("interrupted: healing live faults and writing what was measured")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # trylast: after pytest's own teardown of an interrupted scenario, which
    # records that scenario; the report must hold it too.
    state = session.config.stash.get(STATE_KEY, None)
    if state is not None and state.dry_run:
        _print_plan(session, state)
        return
    if state is None or state.writer is None:
        return
    complete = exitstatus in (0, 1) and not session.shouldstop
    secrets: list[str] = []
    if state.platform is not None:
        errors = state.platform.heal_all()
        complete = complete and not errors
        secrets = state.platform.secrets()
        state.release()
    state.writer.finish(complete=complete)
    try:
        from chaoscert.history import history_path
        from chaoscert.report.publish import publish_run

        published = publish_run(
            state.writer.run_dir,
            history_path(Path(state.option("reports_dir"))),
            secrets,
        )
    except Exception as exc:  # the results are written; the report must not hide them
        log.error("report could not be rendered: %s", exc)
        redact_tree(state.writer.run_dir, secrets)
        return
    if os.environ.get("CHAOSCERT_QUIET") != "1":
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line(f"chaoscert report: {published.html}")
            if published.pdf is None:
                tr.write_line(f"chaoscert: no report.pdf: {published.pdf_problem}")


def _print_plan(session: pytest.Session, state: RunState) -> None:
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is None:
        return
    tr.write_sep("=", "chaoscert dry run: nothing was injected")
    for plan in state.plans:
        tr.write_line(f"{plan.name}:")
        for line in plan.lines:
            tr.write_line(f"  - {line}")


def pytest_unconfigure(config: pytest.Config) -> None:
    # JUnit and Cucumber files are written after sessionfinish: redact again.
    state = config.stash.get(STATE_KEY, None)
    if state is not None and state.writer is not None and state.platform is not None:
        redact_tree(state.writer.run_dir, state.platform.secrets())
