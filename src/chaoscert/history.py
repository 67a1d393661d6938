"""The store of past runs and each workflow's trend across them.

Every run's figures go into one SQLite file, ``reports/history.sqlite`` by
default: one row per run and one per scenario x workflow. Nothing has to run
to use it; the file is the database. A trend is one workflow of one scenario on
one platform and topology across runs, oldest first, and is judged for a
regression against the runs before its newest (see ``judge_regression``).

Times are seconds; wall-clock times are timezone-aware UTC, stored as ISO 8601.
Only scenarios that passed or failed are measurements; an errored or skipped
scenario is recorded but never becomes a point of a trend.
"""

from __future__ import annotations

import logging
import sqlite3
import statistics
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from chaoscert.errors import ChaoscertError, ConfigError
from chaoscert.results import RunResults, ScenarioResult, WorkflowResult

log = logging.getLogger(__name__)

HISTORY_FILE = "history.sqlite"
# 1: runs and measurements as first released.
HISTORY_SCHEMA_VERSION = 1
# Two runs finishing together: the second waits for the first's one short
# write transaction rather than failing on a locked database.
LOCK_TIMEOUT_S = 10.0
# How many runs before the newest a trend is judged against, whatever it shows.
BASELINE_RUNS = 10
MIN_OUTAGE_BASELINE_RUNS = 3
MEASURED = ("passed", "failed")

_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        platform TEXT NOT NULL,
        topology TEXT NOT NULL,
        complete INTEGER NOT NULL
    )""",
    """CREATE TABLE measurements (
        run_id TEXT NOT NULL REFERENCES runs (run_id),
        position INTEGER NOT NULL,
        feature TEXT NOT NULL,
        scenario TEXT NOT NULL,
        status TEXT NOT NULL,
        workflow TEXT NOT NULL,
        tier TEXT NOT NULL,
        max_outage_s REAL NOT NULL,
        downtime_s REAL NOT NULL,
        recovered INTEGER NOT NULL,
        lost_writes INTEGER NOT NULL,
        acknowledged_writes INTEGER NOT NULL,
        samples INTEGER NOT NULL,
        failed INTEGER NOT NULL,
        resolution_s REAL NOT NULL,
        limit_s REAL NOT NULL,
        rpo_writes INTEGER NOT NULL,
        verdict TEXT NOT NULL,
        PRIMARY KEY (run_id, feature, scenario, workflow)
    )""",
    "CREATE INDEX measurements_by_key ON measurements (feature, scenario, workflow)",
    "CREATE INDEX runs_by_context ON runs (platform, topology, started_at)",
)

_POINTS_SQL = """
    SELECT m.*, r.started_at FROM measurements AS m JOIN runs AS r USING (run_id)
    WHERE r.platform = ? AND r.topology = ? AND m.feature = ? AND m.scenario = ?
      AND m.workflow = ? AND m.status IN ('passed', 'failed')
      AND m.run_id != ? AND (r.started_at < ? OR (r.started_at = ? AND r.run_id < ?))
    ORDER BY r.started_at DESC, r.run_id DESC
    LIMIT ?
"""


@dataclass(frozen=True)
class TrendPoint:
    """One run's figures for one workflow of one scenario (seconds, writes)."""

    run_id: str
    started_at: datetime
    max_outage_s: float
    downtime_s: float
    lost_writes: int
    recovered: bool
    verdict: str


@dataclass(frozen=True)
class Trend:
    """One workflow of one scenario across runs, oldest first.

    The last point is the run the trend is for; ``baseline_s`` (the median
    longest outage before it, seconds) and ``noise_s`` (the margin above the
    baseline still taken as noise, seconds) are None without an earlier run.
    ``regression`` is one plain sentence when that run is flagged, else None.
    """

    feature: str
    scenario: str
    workflow: str
    tier: str
    limit_s: float
    rpo_writes: int
    resolution_s: float
    points: tuple[TrendPoint, ...]
    baseline_s: float | None
    noise_s: float | None
    regression: str | None

    @property
    def latest(self) -> TrendPoint:
        """The run the trend is for."""
        return self.points[-1]


def history_path(reports_dir: Path) -> Path:
    """The history store under a reports directory."""
    return reports_dir / HISTORY_FILE


def record_run(path: Path, results: RunResults) -> None:
    """Add one run to the store at ``path``, replacing it if already there.

    Creates the file, its directory and the schema when missing. The run is
    written in one transaction, waiting up to ``LOCK_TIMEOUT_S`` seconds for
    another writer. Raises ConfigError naming the file when it is not SQLite,
    not a chaoscert store, or written by a newer chaoscert.
    """
    rows = [
        _measurement_row(results.run_id, position, scenario, workflow)
        for position, (scenario, workflow) in enumerate(_workflows(results))
    ]
    path.parent.mkdir(parents=True, exist_ok=True)

    with _connect(path, readonly=False) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if _schema_version(conn, path) is None:
                _create_schema(conn)
            conn.execute("DELETE FROM measurements WHERE run_id = ?", (results.run_id,))
            conn.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?)",
                (
                    results.run_id,
                    _iso(results.started_at),
                    _iso(results.ended_at) if results.ended_at else None,
                    results.platform,
                    results.topology,
                    int(results.complete),
                ),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO measurements VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    log.info(
        "recorded run %s in %s (%d scenario workflows)",
        results.run_id,
        path,
        len(rows),
    )


def judge_regression(
    previous: Sequence[TrendPoint],
    current: TrendPoint,
    resolution_s: float,
    limit_s: float,
    workflow: str,
) -> tuple[str | None, float | None, float | None]:
    """Whether ``current`` regressed against the runs before it.

    Returns (sentence, baseline_s, noise_s); all three are None without a
    previous run. ``previous`` is oldest first; ``resolution_s`` is the probe
    resolution and ``limit_s`` the tier's longest allowed outage, in seconds.

    The rule:

    - baseline: the median longest outage of the last (up to) 10 previous runs;
    - noise: the largest of twice the probe resolution, 3 x 1.4826 x the median
      absolute deviation of those runs (three robust standard deviations), 10 %
      of the baseline, and 0.5 s;
    - a regression when the longest outage exceeds baseline + noise (judged
      from ``MIN_OUTAGE_BASELINE_RUNS`` previous runs on), when more
      writes were lost than in any previous run, when the workflow did not
      recover although every previous run did, or when the verdict is fail
      although every previous run passed.

    The sentence joins every reason found with "; ".
    """
    if not previous:
        return None, None, None
    window = [point.max_outage_s for point in previous[-BASELINE_RUNS:]]
    baseline_s = statistics.median(window)
    mad_s = statistics.median(abs(value - baseline_s) for value in window)
    noise_s = max(2 * resolution_s, 3 * 1.4826 * mad_s, 0.1 * baseline_s, 0.5)

    reasons = []
    # One or two earlier runs say nothing of the spread: a failover's length
    # varies by seconds from night to night (Patroni's ttl, its loop).
    if (
        len(window) >= MIN_OUTAGE_BASELINE_RUNS
        and current.max_outage_s > baseline_s + noise_s
    ):
        reasons.append(
            f"{workflow}'s longest outage rose to {current.max_outage_s:.1f} s"
            f" from a median of {baseline_s:.1f} s over the previous"
            f" {_runs(len(window))} (noise {noise_s:.1f} s); limit {limit_s:g} s"
        )
    most_lost = max(point.lost_writes for point in previous)
    if current.lost_writes > most_lost:
        before = f"at most {most_lost}" if most_lost else "none"
        reasons.append(
            f"{workflow} lost {current.lost_writes} acknowledged"
            f" {_plural(current.lost_writes, 'write')} where the previous"
            f" {_runs(len(previous))} lost {before}"
        )
    if not current.recovered and all(point.recovered for point in previous):
        reasons.append(
            f"{workflow} did not recover, after recovering in each of the"
            f" previous {_runs(len(previous))}"
        )
    if current.verdict == "fail" and all(p.verdict == "pass" for p in previous):
        reasons.append(
            f"{workflow} failed its tier, after passing in each of the"
            f" previous {_runs(len(previous))}"
        )
    return ("; ".join(reasons) or None), baseline_s, noise_s


def trends_for_run(path: Path, results: RunResults, last: int = 20) -> list[Trend]:
    """The trend of every measured scenario x workflow of ``results``.

    In results order; each trend holds the runs of the same platform, topology,
    feature, scenario and workflow that started before this one, plus this run
    as its last point, at most ``last`` points. ``results`` is taken as given,
    recorded in the store or not. A missing store gives one-point trends. A
    scenario that errored or was skipped has no trend.
    """
    if last < 1:
        raise ValueError(f"last must be at least 1, not {last}")
    wanted = [
        (scenario, workflow)
        for scenario, workflow in _workflows(results)
        if scenario.status in MEASURED
    ]
    if not path.exists():
        return [_trend(s, w, results, [], last) for s, w in wanted]

    with _connect(path, readonly=True) as conn, _reading(conn):
        known = _schema_version(conn, path) is not None
        trends = []
        for scenario, workflow in wanted:
            before = (
                _points_before(conn, results, scenario, workflow, last) if known else []
            )
            trends.append(_trend(scenario, workflow, results, before, last))
    flagged = sum(1 for trend in trends if trend.regression)
    log.info(
        "run %s: %d of %d scenario workflows regressed against earlier runs",
        results.run_id,
        flagged,
        len(trends),
    )
    return trends


def contexts(
    path: Path, platform: str | None = None, topology: str | None = None
) -> list[tuple[str, str]]:
    """The (platform, topology) pairs the store holds runs of, sorted; an empty
    list when the store is missing."""
    if not path.exists():
        return []
    with _connect(path, readonly=True) as conn, _reading(conn):
        if _schema_version(conn, path) is None:
            return []
        rows = conn.execute(
            "SELECT DISTINCT platform, topology FROM runs"
            " WHERE (? IS NULL OR platform = ?) AND (? IS NULL OR topology = ?)"
            " ORDER BY platform, topology",
            (platform, platform, topology, topology),
        ).fetchall()
    return [(str(row["platform"]), str(row["topology"])) for row in rows]


def latest_trends(
    path: Path,
    platform: str | None = None,
    topology: str | None = None,
    scenario: str | None = None,
    last: int = 20,
) -> list[Trend]:
    """The trend of every scenario x workflow in the store, each judged on its
    newest measured run; at most ``last`` points each.

    ``platform`` and ``topology`` must match exactly, ``scenario`` is a
    case-insensitive part of the scenario's name. Sorted by platform, topology,
    feature, scenario and workflow. A missing store gives an empty list.
    """
    if last < 1:
        raise ValueError(f"last must be at least 1, not {last}")
    if not path.exists():
        return []

    with _connect(path, readonly=True) as conn, _reading(conn):
        if _schema_version(conn, path) is None:
            return []
        keys = conn.execute(
            "SELECT DISTINCT r.platform, r.topology, m.feature, m.scenario, m.workflow"
            " FROM measurements AS m JOIN runs AS r USING (run_id)"
            " WHERE m.status IN ('passed', 'failed')"
            " AND (? IS NULL OR r.platform = ?) AND (? IS NULL OR r.topology = ?)"
            " ORDER BY r.platform, r.topology, m.feature, m.scenario, m.workflow",
            (platform, platform, topology, topology),
        ).fetchall()
        needle = (scenario or "").casefold()
        trends = []
        for key in keys:
            if needle not in str(key["scenario"]).casefold():
                continue
            rows = _newest_rows(conn, key, max(last, BASELINE_RUNS + 1))
            if not rows:
                # Listed by an index, yet not found in the table: the file
                # was damaged after SQLite wrote it.
                raise ConfigError(
                    f"{path}: the history store is damaged (its indexes and"
                    " tables disagree)"
                )
            trends.append(_trend_from_rows(rows, last))
    return trends


def _workflows(results: RunResults) -> Iterator[tuple[ScenarioResult, WorkflowResult]]:
    for scenario in results.scenarios:
        for workflow in scenario.workflows:
            yield scenario, workflow


def _measurement_row(
    run_id: str, position: int, scenario: ScenarioResult, workflow: WorkflowResult
) -> tuple[object, ...]:
    return (
        run_id,
        position,
        scenario.feature,
        scenario.name,
        scenario.status,
        workflow.name,
        workflow.tier,
        workflow.max_outage_s,
        workflow.downtime_s,
        int(workflow.recovered),
        workflow.lost_writes,
        workflow.acknowledged_writes,
        workflow.samples,
        workflow.failed,
        workflow.resolution_s,
        workflow.slo.max_outage_s,
        workflow.slo.rpo_writes,
        workflow.verdict,
    )


def _points_before(
    conn: sqlite3.Connection,
    results: RunResults,
    scenario: ScenarioResult,
    workflow: WorkflowResult,
    last: int,
) -> list[TrendPoint]:
    """Measured points of the same key from runs started before ``results``,
    oldest first; enough to show ``last`` and to judge the newest."""
    started = _iso(results.started_at)
    rows = conn.execute(
        _POINTS_SQL,
        (
            results.platform,
            results.topology,
            scenario.feature,
            scenario.name,
            workflow.name,
            results.run_id,
            started,
            started,
            results.run_id,
            max(last - 1, BASELINE_RUNS),
        ),
    ).fetchall()
    return [_point(row) for row in reversed(rows)]


def _newest_rows(
    conn: sqlite3.Connection, key: sqlite3.Row, count: int
) -> list[sqlite3.Row]:
    """The newest ``count`` measured rows of a key, oldest first."""
    rows = conn.execute(
        "SELECT m.*, r.started_at FROM measurements AS m JOIN runs AS r"
        " USING (run_id) WHERE r.platform = ? AND r.topology = ? AND m.feature = ?"
        " AND m.scenario = ? AND m.workflow = ? AND m.status IN ('passed', 'failed')"
        " ORDER BY r.started_at DESC, r.run_id DESC LIMIT ?",
        (*tuple(key), count),
    ).fetchall()
    return list(reversed(rows))


def _trend(
    scenario: ScenarioResult,
    workflow: WorkflowResult,
    results: RunResults,
    before: list[TrendPoint],
    last: int,
) -> Trend:
    current = TrendPoint(
        run_id=results.run_id,
        started_at=results.started_at.astimezone(UTC),
        max_outage_s=workflow.max_outage_s,
        downtime_s=workflow.downtime_s,
        lost_writes=workflow.lost_writes,
        recovered=workflow.recovered,
        verdict=workflow.verdict,
    )
    return _judged(
        feature=scenario.feature,
        scenario=scenario.name,
        workflow=workflow.name,
        tier=workflow.tier,
        limit_s=workflow.slo.max_outage_s,
        rpo_writes=workflow.slo.rpo_writes,
        resolution_s=workflow.resolution_s,
        points=[*before, current],
        last=last,
    )


def _trend_from_rows(rows: list[sqlite3.Row], last: int) -> Trend:
    newest = rows[-1]
    return _judged(
        feature=str(newest["feature"]),
        scenario=str(newest["scenario"]),
        workflow=str(newest["workflow"]),
        tier=str(newest["tier"]),
        limit_s=float(newest["limit_s"]),
        rpo_writes=int(newest["rpo_writes"]),
        resolution_s=float(newest["resolution_s"]),
        points=[_point(row) for row in rows],
        last=last,
    )


def _judged(
    *,
    feature: str,
    scenario: str,
    workflow: str,
    tier: str,
    limit_s: float,
    rpo_writes: int,
    resolution_s: float,
    points: list[TrendPoint],
    last: int,
) -> Trend:
    """A trend of ``points`` (oldest first, the judged run last), judged on up to
    BASELINE_RUNS before the last and keeping the last ``last`` of them."""
    *previous, current = points
    sentence, baseline_s, noise_s = judge_regression(
        previous[-BASELINE_RUNS:], current, resolution_s, limit_s, workflow
    )
    if sentence:
        log.debug("regression in %r: %s", scenario, sentence)
    return Trend(
        feature=feature,
        scenario=scenario,
        workflow=workflow,
        tier=tier,
        limit_s=limit_s,
        rpo_writes=rpo_writes,
        resolution_s=resolution_s,
        points=tuple(points[-last:]),
        baseline_s=baseline_s,
        noise_s=noise_s,
        regression=sentence,
    )


def _point(row: sqlite3.Row) -> TrendPoint:
    return TrendPoint(
        run_id=str(row["run_id"]),
        started_at=datetime.fromisoformat(str(row["started_at"])).astimezone(UTC),
        max_outage_s=float(row["max_outage_s"]),
        downtime_s=float(row["downtime_s"]),
        lost_writes=int(row["lost_writes"]),
        recovered=bool(row["recovered"]),
        verdict=str(row["verdict"]),
    )


@contextmanager
def _connect(path: Path, readonly: bool) -> Iterator[sqlite3.Connection]:
    """A connection in autocommit mode (transactions are explicit), with every
    sqlite3 error, and every stored value that is not the figure or time its
    column holds, mapped into chaoscert's, naming the file."""
    # mode=ro: reading never creates or changes the store.
    target = f"{path.resolve().as_uri()}?mode=ro" if readonly else str(path)
    try:
        conn = sqlite3.connect(
            target, timeout=LOCK_TIMEOUT_S, isolation_level=None, uri=readonly
        )
    except sqlite3.Error as exc:
        raise _mapped(path, exc) from None
    conn.row_factory = sqlite3.Row
    with closing(conn):
        try:
            yield conn
        except sqlite3.Error as exc:
            raise _mapped(path, exc) from None
        except (ValueError, TypeError, OverflowError) as exc:
            # SQLite keeps any value in any column; a store edited by hand
            # may hold text where a number or a time belongs.
            raise ConfigError(f"{path}: a stored value is malformed: {exc}") from None
        except IndexError:
            # What sqlite3.Row raises for a column the table does not have.
            raise ConfigError(
                f"{path}: not a chaoscert history store (a table lacks a column"
                " chaoscert reads)"
            ) from None


@contextmanager
def _reading(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction, so a run recorded meanwhile is seen whole or not."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")


def _mapped(path: Path, exc: sqlite3.Error) -> ChaoscertError:
    name = getattr(exc, "sqlite_errorname", "")
    # SQLite may quote a damaged schema, line breaks and all.
    said = " ".join(str(exc).split())
    if name in {"SQLITE_NOTADB", "SQLITE_CORRUPT"}:
        return ConfigError(f"{path}: not a chaoscert history store (SQLite: {said})")
    if name in {"SQLITE_BUSY", "SQLITE_LOCKED"}:
        return ChaoscertError(
            f"{path}: the history store stayed locked by another run for"
            f" {LOCK_TIMEOUT_S:g} s"
        )
    return ChaoscertError(f"{path}: cannot use the history store: {said}")


def _schema_version(conn: sqlite3.Connection, path: Path) -> int | None:
    """The store's schema version, or None for an empty database; ConfigError
    for a database of something else or a store written by a newer chaoscert."""
    tables = {
        str(row[0])
        for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    if not tables:
        return None
    if "meta" not in tables:
        raise ConfigError(
            f"{path}: an SQLite database but not a chaoscert history store"
            " (no meta table)"
        )
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    try:
        version = int(row[0])
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: the history store has no schema_version") from None
    if version > HISTORY_SCHEMA_VERSION:
        raise ConfigError(
            f"{path}: history schema_version {version} is newer than this"
            f" chaoscert reads ({HISTORY_SCHEMA_VERSION}); upgrade chaoscert"
            " to read it"
        )
    return version


def _create_schema(conn: sqlite3.Connection) -> None:
    # Not executescript: it would commit the transaction this runs in.
    for statement in _SCHEMA:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO meta VALUES ('schema_version', ?)", (str(HISTORY_SCHEMA_VERSION),)
    )
    log.debug("created the history schema, version %d", HISTORY_SCHEMA_VERSION)


def _iso(value: datetime) -> str:
    # A fixed width, so the stored text sorts in time order.
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _runs(count: int) -> str:
    return f"{count} {_plural(count, 'run')}"


def _plural(count: int, noun: str) -> str:
    return noun if count == 1 else f"{noun}s"
