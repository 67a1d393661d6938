"""What a `chaoscert run` is doing, on the terminal as it happens.

The pytest plugin feeds a :class:`RunView` (the run's results, each scenario's
:class:`~chaoscert.scenario.ScenarioRun` as it starts and its result as it
ends); the ScenarioRun tells it of each phase through ``on_change``. Two views
show the same feed:

- :class:`LiveView` redraws a rich Live a few times a second from its own
  thread: the scenario and its phase, live and healed faults, and each
  workflow's successes so far, read from the running probes.
- :class:`PlainView` writes one line per change, for logs and pipes.

Both end with a summary table of the run and what its exit code means.

Pytest captures file descriptors 1 and 2 while a test runs, so a view writes
to a copy of the stderr descriptor taken before pytest starts (:func:`open_view`).
While a view is attached, ``sys.stdout`` (when it writes where the view does)
and, for a Live, ``sys.stderr`` are routed through it a whole line at a time:
pytest's own report and the log lines outside tests print above the live
region rather than through it, and never split a plain line.

A display never breaks a run: every failure in here is logged at DEBUG, once
per kind, and the run goes on.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, Literal, TextIO, cast

import pytest
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from chaoscert.platforms.base import FaultHandle
from chaoscert.probes.engine import Tally
from chaoscert.results import RunResults, ScenarioResult, WorkflowResult
from chaoscert.scenario import RECOVERED_AFTER_SUCCESSES, Phase, ScenarioRun
from chaoscert.slo import human_duration, workflow_label

log = logging.getLogger("chaoscert.live")

Mode = Literal["live", "plain"]

LIVE_REFRESH_HZ = 4.0
# Plain mode looks for workflows going down or up again this often.
PLAIN_POLL_HZ = 2.0
# A log has no width; wide enough that the summary table keeps one row a line.
PLAIN_WIDTH = 120
ERROR_CHARS = 120
STATUS_STYLES = {
    "passed": "green",
    "failed": "red",
    "error": "red",
    "skipped": "yellow",
}
EXIT_MEANINGS = {
    0: "no scenario failed",
    1: "at least one scenario failed or could not be judged",
    2: "the run was stopped: interrupted, or refused before it began (see above)",
    3: "pytest or a plugin hit an internal error",
    4: "pytest was called wrongly (see above)",
    5: "no scenario was selected",
}


def choose_mode(plain: bool, stream: TextIO) -> Mode:
    """A Live on a terminal unless `plain` is asked for; plain lines otherwise."""
    if plain or os.environ.get("TERM") == "dumb":
        return "plain"
    try:
        return "live" if stream.isatty() else "plain"
    except (OSError, ValueError):
        return "plain"


def open_view(
    run_id: str, plain: bool = False, stream: TextIO | None = None
) -> RunView:
    """The view of run `run_id` on `stream` (default stderr), on a copy of its
    descriptor taken now, before pytest captures the original."""
    stream = stream if stream is not None else sys.stderr
    mode = choose_mode(plain, stream)
    copy, fd = _copy_of(stream)
    out = cast(TextIO, QuietStream(copy))
    if mode == "live" and fd is not None:
        return LiveView(Console(file=out, highlight=False), run_id, fd=fd)
    width = None if os.environ.get("COLUMNS") or out.isatty() else PLAIN_WIDTH
    return PlainView(Console(file=out, width=width, highlight=False), run_id, fd=fd)


def _copy_of(stream: TextIO) -> tuple[TextIO, int | None]:
    try:
        fd = os.dup(stream.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        # No descriptor (a test's stream): write to the stream itself.
        return stream, None
    encoding = getattr(stream, "encoding", None) or "utf-8"
    copy = os.fdopen(fd, "w", buffering=1, encoding=encoding, errors="replace")
    return copy, fd


# -- text shared by both views -------------------------------------------------
def fault_text(handle: FaultHandle) -> str:
    """``node hang on node c1 (Postgres leader)``."""
    kind = handle.kind.replace("_", " ")
    return f"{kind} on {handle.target}" if handle.target else kind


def phase_text(run: ScenarioRun, now_mono: float | None = None) -> str:
    """What `run` is doing, in a few words; with `now_mono`, how long the
    newest live fault has lasted."""
    phase, faults = run.phase, list(run.faults)
    if phase == "fault injected" and faults:
        handle = faults[-1]
        text = f"fault injected: {fault_text(handle)}"
        if now_mono is not None and not handle.healed:
            text += f" for {now_mono - handle.injected_mono:.0f} s"
        return text
    if phase == "healed":
        return _healed_text(faults)
    if phase == "verdict":
        return _verdict_text(run)
    if phase == "injecting":
        return f"injecting {run.phase_note.replace('_', ' ')}".rstrip()
    if phase == "baseline":
        workflows = ", ".join(workflow_label(w) for w in run.workflows)
        return f"baseline: {workflows or 'no workflow'} probed before any fault"
    return _PHASE_WORDS.get(phase, phase)


_PHASE_WORDS: dict[Phase, str] = {
    "starting": "starting",
    "steady state": "waiting for steady state",
    "fault injected": "fault injected",
    "recovering": (
        f"recovering: waiting for {RECOVERED_AFTER_SUCCESSES} successes in a row"
        " of every workflow"
    ),
    "measuring": "measuring: traffic stopped, reading acknowledged writes back",
    "teardown": "after the scenario: healing what is live, waiting for steady state",
}


def _healed_text(faults: list[FaultHandle]) -> str:
    healed = [h for h in faults if h.healed_mono is not None]
    if not healed:
        return "healed: no fault was live"
    first = min(h.injected_mono for h in faults)
    last = max(cast(float, h.healed_mono) for h in healed)
    what = ", ".join(fault_text(h) for h in healed)
    return f"healed after {last - first:.1f} s: {what}"


def _verdict_text(run: ScenarioRun) -> str:
    verdicts = dict(run.verdicts)
    reasons = [reason for v in verdicts.values() for reason in v.reasons]
    if not verdicts:
        return "verdict: nothing was judged"
    if not reasons:
        return "verdict: every workflow meets its tier"
    return "verdict: " + "; ".join(reasons)


def tallies(run: ScenarioRun) -> list[tuple[str, Tally]]:
    """Each probed workflow's counts so far (thread-safe reads of the probes)."""
    probes = run.probes
    if probes is None:
        return []
    return [(w, probes.tally(w)) for w in list(run.workflows)]


def rates_text(counts: list[tuple[str, Tally]]) -> str:
    """``warehouse scanning 97.2 % of 412 ok, dispatch 100.0 % of 380 ok``."""
    parts = []
    for workflow, tally in counts:
        pct = tally.success_pct
        shown = (
            "no attempt yet" if pct is None else f"{pct:.1f} % of {tally.samples} ok"
        )
        parts.append(f"{workflow_label(workflow)} {shown}")
    return ", ".join(parts)


def exit_meaning(code: int) -> str:
    """What `chaoscert run`'s exit code says, in words."""
    if code > 128:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            name = f"signal {code - 128}"
        return f"ended by {name}"
    return EXIT_MEANINGS.get(code, "unexpected exit code")


# -- the summary -----------------------------------------------------------------
def summary(results: RunResults | None) -> RenderableType:
    """Per scenario its status and, per workflow, the longest outage against
    its limit and the writes lost; then why scenarios did not pass."""
    if results is None or not results.scenarios:
        return Text("no scenario ran")
    table = Table(title=f"run {results.run_id}", box=box.SIMPLE_HEAD)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("scenario")
    table.add_column("status", no_wrap=True)
    table.add_column("workflow", no_wrap=True)
    table.add_column("longest outage", justify="right", no_wrap=True)
    table.add_column("lost writes", justify="right", no_wrap=True)
    why = []
    for number, scenario in enumerate(results.scenarios, start=1):
        status = Text(scenario.status, style=STATUS_STYLES.get(scenario.status, ""))
        rows = [_workflow_cells(w) for w in scenario.workflows] or [
            (Text("-"), Text(""), Text(""))
        ]
        for row_number, cells in enumerate(rows):
            first = row_number == 0
            table.add_row(
                str(number) if first else "",
                scenario.name if first else "",
                status if first else "",
                *cells,
                end_section=row_number == len(rows) - 1,
            )
        if scenario.error:
            why.append(Text(f"{number}. {scenario.status}: {scenario.error}"))
    return Group(table, *why)


def _workflow_cells(result: WorkflowResult) -> tuple[Text, Text, Text]:
    limit_s = result.slo.max_outage_s
    outage = Text(
        f"{human_duration(result.max_outage_s, above_s=limit_s)}"
        f" (limit {human_duration(limit_s)})",
        style="red" if result.max_outage_s > limit_s else "",
    )
    if not result.writes:
        lost = Text("reads only", style="dim")
    else:
        lost = Text(
            f"{result.lost_writes} of {result.acknowledged_writes}",
            style="red" if result.lost_writes > result.slo.rpo_writes else "",
        )
    return Text(workflow_label(result.name)), outage, lost


# -- the views -------------------------------------------------------------------
VIEW_KEY = pytest.StashKey["RunView"]()


def view_of(config: pytest.Config) -> RunView | None:
    """The view a `chaoscert run` attached to this pytest session, if any."""
    return config.stash.get(VIEW_KEY, None)


class _ViewPlugin:
    """Hands the view to the chaoscert plugin through the config's stash."""

    def __init__(self, view: RunView) -> None:
        self.view = view

    def pytest_configure(self, config: pytest.Config) -> None:
        config.stash[VIEW_KEY] = self.view


class RunView:
    """The feed of a run's progress; LiveView and PlainView show it.

    Feed methods are called on the scenario's thread; ``tick`` runs on the
    view's own thread. Each swallows its failures (logged at DEBUG).
    """

    tick_hz = PLAIN_POLL_HZ

    def __init__(self, console: Console, run_id: str, fd: int | None = None) -> None:
        self.console = console
        self.run_id = run_id
        self.fd = fd
        self.results: RunResults | None = None
        self.run: ScenarioRun | None = None
        self.index = 0
        self.total = 0
        self.done: list[ScenarioResult] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ticker: threading.Thread | None = None
        self._proxies: list[tuple[str, TextIO, LineProxy]] = []
        self._failed: set[str] = set()

    def plugin(self) -> object:
        """The object to hand to ``pytest.main(..., plugins=[...])``."""
        return _ViewPlugin(self)

    # -- the feed --------------------------------------------------------------
    def run_started(self, results: RunResults) -> None:
        with self.safely("run_started"):
            self.results = results
            self.run_id = results.run_id

    def scenario_started(self, run: ScenarioRun, index: int, total: int) -> None:
        with self.safely("scenario_started"):
            with self._lock:
                self.run, self.index, self.total = run, index, total
            run.on_change = self.phase_changed
            self._show_start(run)

    def phase_changed(self, phase: Phase) -> None:
        with self.safely("phase_changed"):
            run = self.run
            if run is not None:
                self._show_phase(run)

    def scenario_finished(self, result: ScenarioResult) -> None:
        with self.safely("scenario_finished"):
            with self._lock:
                run, self.run = self.run, None
                self.done.append(result)
            if run is not None:
                run.on_change = None
            self._show_result(result)

    def summarize(self) -> None:
        """Print the summary table of the run (once the view is detached)."""
        with self.safely("summarize"):
            self.console.print(summary(self.results), soft_wrap=False)

    def finish(self, exit_code: int) -> None:
        """Say what the exit code means and let go of the terminal copy."""
        with self.safely("finish"):
            meaning = f"exit {exit_code}: {exit_meaning(exit_code)}"
            self.console.print(Text(meaning, style="bold"), soft_wrap=True)
        if self.fd is not None:
            with contextlib.suppress(OSError, ValueError):
                self.console.file.close()
            self.fd = None

    # -- what a view shows (subclasses) ------------------------------------------
    def _show_start(self, run: ScenarioRun) -> None:
        pass

    def _show_phase(self, run: ScenarioRun) -> None:
        pass

    def _show_result(self, result: ScenarioResult) -> None:
        pass

    def tick(self) -> None:
        """Look at the running scenario again (a few times a second)."""
        with self.safely("tick"):
            self._tick()

    def _tick(self) -> None:
        pass

    def _start_display(self) -> None:
        pass

    def _stop_display(self) -> None:
        pass

    def _emit(self, line: str) -> None:
        """Print one line of someone else's output (pytest's, a log's)."""
        self.console.print(Text.from_ansi(line), soft_wrap=True)

    def _routes_stderr(self) -> bool:
        return False

    # -- attaching to the process ------------------------------------------------
    @contextlib.contextmanager
    def attached(self) -> Iterator[None]:
        """Show the run while the block runs (pytest.main, typically)."""
        self._route_streams()
        with self.safely("start"):
            self._start_display()
        self._stopping.clear()
        self._ticker = threading.Thread(
            target=self._tick_loop, name="chaoscert-live", daemon=True
        )
        self._ticker.start()
        try:
            yield
        finally:
            self._stopping.set()
            self._ticker.join(2.0)
            with self.safely("stop"):
                self._stop_display()
            self._restore_streams()

    def _tick_loop(self) -> None:
        while not self._stopping.wait(1.0 / self.tick_hz):
            self.tick()

    def _route_streams(self) -> None:
        names = ["stdout", "stderr"] if self._routes_stderr() else ["stdout"]
        for name in names:
            original = cast(TextIO, getattr(sys, name))
            if name == "stdout" and not _same_file(original, self.fd):
                continue  # pytest's report goes elsewhere: nothing to share
            proxy = LineProxy(self._emit, original)
            self._proxies.append((name, original, proxy))
            setattr(sys, name, proxy)

    def _restore_streams(self) -> None:
        for name, original, proxy in reversed(self._proxies):
            if getattr(sys, name) is proxy:
                setattr(sys, name, original)
            proxy.drain()
        self._proxies.clear()

    @contextlib.contextmanager
    def safely(self, what: str) -> Iterator[None]:
        """Log a failure of the display at DEBUG (once per kind) and go on."""
        try:
            yield
        except Exception as exc:
            self._note_failure(what, exc)

    def _note_failure(self, what: str, exc: Exception) -> None:
        key = f"{what}: {type(exc).__name__}"
        if key not in self._failed:
            self._failed.add(key)
            log.debug("live view: %s failed: %r", what, exc, exc_info=exc)

    def _snapshot(self) -> tuple[ScenarioRun | None, int, int, list[ScenarioResult]]:
        with self._lock:
            return self.run, self.index, self.total, list(self.done)


class PlainView(RunView):
    """One line per change: a scenario starts, enters a phase, a workflow goes
    down or comes back, the scenario ends; the summary at the end."""

    tick_hz = PLAIN_POLL_HZ

    def __init__(self, console: Console, run_id: str, fd: int | None = None) -> None:
        super().__init__(console, run_id, fd)
        self._last_phase = ""
        self._last_rates = ""
        self._states: dict[str, tuple[bool, float | None]] = {}
        self._print_lock = threading.Lock()

    def _line(self, text: str) -> None:
        with self._print_lock:
            prefix = f"[{self.index}/{self.total}] " if self.total else ""
            self.console.print(Text(prefix + text), soft_wrap=True)

    def _show_start(self, run: ScenarioRun) -> None:
        self._last_phase = self._last_rates = ""
        self._states = {}
        self._line(f"{run.feature}: {run.name}" if run.feature else run.name)

    def _show_phase(self, run: ScenarioRun) -> None:
        text = phase_text(run)
        if text != self._last_phase:
            self._last_phase = text
            self._line(text)
        self._show_rates(run)

    def _show_rates(self, run: ScenarioRun) -> None:
        counts = tallies(run)
        if not any(tally.samples for _, tally in counts):
            return
        text = rates_text(counts)
        if text != self._last_rates:
            self._last_rates = text
            self._line(text)

    def _show_result(self, result: ScenarioResult) -> None:
        took = f" in {result.duration_s:.1f} s" if result.duration_s is not None else ""
        error = (
            f": {result.error.splitlines()[0][:ERROR_CHARS]}" if result.error else ""
        )
        self._line(f"{result.status}{took}{error}")

    def _tick(self) -> None:
        """Say which workflows went down or came back since the last tick."""
        run = self.run
        if run is None:
            return
        for workflow, tally in tallies(run):
            if tally.latest_ok is None:
                continue
            before = self._states.get(workflow)
            self._states[workflow] = (tally.latest_ok, tally.since_mono)
            if before is not None and before[0] == tally.latest_ok:
                continue
            label = workflow_label(workflow)
            if not tally.latest_ok:
                error = f"{tally.latest_error_kind}: {tally.latest_error}".strip(": ")
                self._line(f"{label} down: {error[:ERROR_CHARS]}")
            elif before is not None:
                self._line(f"{label} up again after {_down_s(before, tally)} down")


def _down_s(before: tuple[bool, float | None], tally: Tally) -> str:
    went_down, came_up = before[1], tally.since_mono
    if went_down is None or came_up is None:
        return "a while"
    return f"{max(0.0, came_up - went_down):.1f} s"


class LiveView(RunView):
    """A rich Live redrawn from the view's thread; everything else that reaches
    the terminal meanwhile is printed above it, whole lines at a time."""

    tick_hz = LIVE_REFRESH_HZ

    def __init__(self, console: Console, run_id: str, fd: int | None = None) -> None:
        super().__init__(console, run_id, fd)
        self.live = Live(
            console=console,
            auto_refresh=False,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
            get_renderable=self.renderable,
        )

    def _routes_stderr(self) -> bool:
        return True

    def _start_display(self) -> None:
        self._fit_terminal()
        self.live.start(refresh=True)

    def _stop_display(self) -> None:
        self.live.stop()

    def _tick(self) -> None:
        self._fit_terminal()
        self.live.refresh()

    def _fit_terminal(self) -> None:
        # While a test runs, descriptors 0-2 are pytest's files, so rich cannot
        # find the terminal's size there; ask the copy of the descriptor.
        if self.fd is not None:
            with contextlib.suppress(OSError):
                size = os.get_terminal_size(self.fd)
                # A pseudo-terminal nobody sized reports 0 x 0: keep rich's own.
                if size.columns > 0 and size.lines > 0:
                    self.console.size = (size.columns, size.lines)

    def renderable(self, now_mono: float | None = None) -> RenderableType:
        """What the Live shows now; never raises."""
        try:
            return self._render(time.monotonic() if now_mono is None else now_mono)
        except Exception as exc:
            self._note_failure("render", exc)
            return Text(f"chaoscert run {self.run_id} (live view unavailable: {exc})")

    def _render(self, now_mono: float) -> RenderableType:
        run, index, total, done = self._snapshot()
        statuses: Counter[str] = Counter(result.status for result in done)
        finished = ", ".join(f"{statuses[s]} {s}" for s in STATUS_STYLES if statuses[s])
        head = Text.assemble(
            ("chaoscert run ", "bold"),
            (self.run_id, "bold cyan"),
            f"  scenario {index} of {total}" if run is not None else "",
            f"  done: {finished}" if finished else "",
        )
        if run is None:
            waiting = "between scenarios" if done else "waiting for the first scenario"
            return Group(head, Text(waiting, style="dim"))
        name = f"{run.feature}: {run.name}" if run.feature else run.name
        facts = Table.grid(padding=(0, 1))
        facts.add_column(style="dim")
        facts.add_column()
        facts.add_row("phase", Text(phase_text(run, now_mono), style="bold"))
        facts.add_row("faults", _faults_text(list(run.faults), now_mono))
        return Group(head, Text(name, style="bold"), facts, _rates_table(run, now_mono))


def _faults_text(faults: list[FaultHandle], now_mono: float) -> Text:
    if not faults:
        return Text("none yet", style="dim")
    lines = []
    for handle in faults:
        if handle.healed_mono is not None:
            took_s = handle.healed_mono - handle.injected_mono
            lines.append(
                Text(f"healed  {fault_text(handle)} after {took_s:.1f} s", "green")
            )
        else:
            age_s = now_mono - handle.injected_mono
            failing = (
                f" (heal failed: {handle.heal_error})" if handle.heal_error else ""
            )
            lines.append(
                Text(f"live    {fault_text(handle)}, {age_s:.0f} s{failing}", "red")
            )
    return Text("\n").join(lines)


def _rates_table(run: ScenarioRun, now_mono: float) -> RenderableType:
    counts = tallies(run)
    if not counts:
        return Text("no traffic yet", style="dim")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("workflow")
    for column in ("samples", "failed", "success"):
        table.add_column(column, justify="right")
    table.add_column("now")
    for workflow, tally in counts:
        pct = tally.success_pct
        table.add_row(
            workflow_label(workflow),
            str(tally.samples),
            str(tally.failed),
            "-" if pct is None else f"{pct:.1f} %",
            _state_text(tally, now_mono),
        )
    return table


def _state_text(tally: Tally, now_mono: float) -> Text:
    if tally.latest_ok is None:
        return Text("-", style="dim")
    if tally.latest_ok:
        return Text("up", style="green")
    since = "" if tally.since_mono is None else f" {now_mono - tally.since_mono:.0f} s"
    return Text(f"down{since} ({tally.latest_error_kind})", style="bold red")


# -- routing other output around the display ------------------------------------
class LineProxy:
    """A text stream that hands whole lines to `emit`; a partial line waits
    for its end (a carriage return starts it over, as on a terminal).

    Stands in for ``sys.stdout``/``sys.stderr`` while a view is attached; a
    failing `emit` falls back to writing the line to `original`.
    """

    def __init__(self, emit: Callable[[str], None], original: TextIO) -> None:
        self._emit = emit
        self._original = original
        self._buffer = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            *lines, self._buffer = (self._buffer + text).split("\n")
        for line in lines:
            self._hand_on(line.rsplit("\r", 1)[-1])
        return len(text)

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Nothing: a partial line printed now would cut through the display."""

    def drain(self) -> None:
        """Hand on what is left of a partial line."""
        with self._lock:
            rest, self._buffer = self._buffer, ""
        if rest:
            self._hand_on(rest.rsplit("\r", 1)[-1])

    def _hand_on(self, line: str) -> None:
        try:
            self._emit(line)
        except Exception as exc:
            log.debug("live view: printing a line failed: %r", exc)
            with contextlib.suppress(Exception):
                self._original.write(line + "\n")

    def isatty(self) -> bool:
        return self._original.isatty()

    def fileno(self) -> int:
        return self._original.fileno()

    def writable(self) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


class QuietStream:
    """The view's output. Once a write fails (the terminal or the pipe is
    gone) the view's output is dropped instead of raising into the run; rich
    would answer a broken pipe with SystemExit, which no guard here catches."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                self._stream.write(text)
            except (OSError, ValueError) as exc:
                self._lose(exc)
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self._stream.flush()
            except (OSError, ValueError) as exc:
                self._lose(exc)

    def _lose(self, exc: Exception) -> None:
        self.gone = True
        log.debug("live view: output lost, dropped from now on: %r", exc)

    def isatty(self) -> bool:
        try:
            return self._stream.isatty()
        except (OSError, ValueError):
            return False

    def fileno(self) -> int:
        return self._stream.fileno()

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _same_file(stream: TextIO, fd: int | None) -> bool:
    """Whether `stream` writes where descriptor `fd` does (2>&1, one terminal)."""
    if fd is None:
        return False
    try:
        return os.path.samestat(os.fstat(stream.fileno()), os.fstat(fd))
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return False
