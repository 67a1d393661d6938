"""The ``results.json`` contract and the writer of ``reports/<run-id>/``.

A run directory holds ``results.json``, rewritten atomically after every
scenario so an interrupted run keeps what it measured, and one JSON-lines file
of samples per scenario under ``samples/``. ``reports/latest`` points at the
newest run. Wall-clock times are timezone-aware UTC and serialise as ISO 8601;
``*_mono`` fields are ``time.monotonic()`` seconds of the machine that measured.
"""

from __future__ import annotations

import json
import logging
import os
import re
import resource
import secrets
import tempfile
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
)

from chaoscert.config import Tier, describe_validation, load_json
from chaoscert.errors import ChaoscertError, ConfigError
from chaoscert.probes.samples import Sample
from chaoscert.slo import Schedule, WorkflowVerdict

log = logging.getLogger(__name__)

# 2: scenarios carry component log excerpts (``logs``).
SCHEMA_VERSION = 2
RESULTS_FILE = "results.json"
SAMPLES_DIR = "samples"
LATEST_LINK = "latest"

Status = Literal["passed", "failed", "error", "skipped"]


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcTime = Annotated[AwareDatetime, AfterValidator(_as_utc)]


class _Model(BaseModel):
    # A new field is a new schema_version: older readers refuse what they
    # cannot represent rather than silently dropping it.
    model_config = ConfigDict(extra="forbid")


class TierSlo(_Model):
    """A tier as it was applied in this run (copied, so the run stays auditable
    after the SLO file changes)."""

    name: str
    title: str
    max_outage_s: float
    rpo_writes: int
    slow_threshold_s: float
    queued: bool = False


class SloApplied(_Model):
    max_outage_s: float
    rpo_writes: int
    slow_threshold_s: float


class WindowResult(_Model):
    start_mono: float
    end_mono: float | None = Field(description="None: still open when measured")


class ScheduleResult(_Model):
    """How the probe kept its schedule; see ``chaoscert.slo.Schedule``."""

    interval_s: float = Field(description="planned time between attempts, 1/rate")
    resolution_s: float = Field(
        description="achieved: 99th percentile of the times between starts"
    )
    late_p99_s: float = Field(description="99th percentile of late starts")
    late_max_s: float
    skipped: int = Field(description="slots given up because the probe fell behind")
    kept: bool


class WorkflowResult(_Model):
    name: str
    tier: str
    samples: int
    failed: int
    max_outage_s: float
    downtime_s: float
    recovery_s: float | None
    recovered: bool
    lost_writes: int
    lost_write_ids: list[int] = Field(default_factory=list)
    acknowledged_writes: int = 0
    writes: bool = Field(default=True, description="False: the workflow only reads")
    resolution_s: float
    slo: SloApplied
    verdict: Literal["pass", "fail"]
    reasons: list[str] = Field(default_factory=list)
    windows: list[WindowResult] = Field(default_factory=list)
    schedule: ScheduleResult | None = None


class FaultResult(_Model):
    kind: str
    target: str
    injected_at: UtcTime | None = None
    healed_at: UtcTime | None = None
    injected_mono: float | None = None
    healed_mono: float | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    heal_error: str | None = None


class EventResult(_Model):
    at: UtcTime
    mono: float | None = None
    source: str
    text: str


class LogExcerpt(_Model):
    """What one component wrote to its log while a scenario ran."""

    component: str = Field(description="e.g. patroni on a1, or pod odoo-7f9c")
    source: str = Field(description="the log's path or the pod it came from")
    lines: list[str] = Field(default_factory=list)
    omitted: int = Field(default=0, description="lines left out to keep it short")


class ScenarioResult(_Model):
    feature: str
    name: str
    status: Status
    tags: list[str] = Field(default_factory=list)
    fault: FaultResult | None = None
    workflows: list[WorkflowResult] = Field(default_factory=list)
    events: list[EventResult] = Field(default_factory=list)
    logs: list[LogExcerpt] = Field(default_factory=list)
    error: str | None = None
    samples_file: str | None = Field(
        default=None, description="JSON lines of Sample.to_dict(), relative to run"
    )
    started_mono: float | None = None
    duration_s: float | None = None


class ProbeSettings(_Model):
    rates_hz: dict[str, float]
    timeout_s: float
    resolution_s: float = Field(description="the coarsest probe interval, 1/rate")


class RunResults(_Model):
    # strict: "3" or 3.0 is no version this chaoscert wrote.
    schema_version: int = Field(default=SCHEMA_VERSION, strict=True)
    run_id: str
    platform: str
    topology: str
    platform_note: str = Field(
        default="", description="what the platform is, in plain words"
    )
    environment: dict[str, Any] = Field(
        default_factory=dict, description="the platform's settings; no secrets"
    )
    started_at: UtcTime
    ended_at: UtcTime | None = None
    complete: bool = False
    probe: ProbeSettings
    tiers: dict[str, TierSlo] = Field(default_factory=dict)
    scenarios: list[ScenarioResult] = Field(default_factory=list)
    peak_rss_mib: float | None = Field(
        default=None,
        description="peak resident memory of chaoscert's own process (the probes,"
        " the steps, the writer), MiB; the platform's programs are not in it",
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


def wall_time(unix_s: float) -> datetime:
    """A Unix time (``time.time()``) as an aware UTC datetime."""
    return datetime.fromtimestamp(unix_s, UTC)


def new_run_id(now: datetime | None = None) -> str:
    """A sortable run id: UTC second of the start plus 4 random hex digits,
    e.g. ``20261203T153000Z-ab12``."""
    stamp = (now or utc_now()).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(2)}"


def probe_settings(rates_hz: Mapping[str, float], timeout_s: float) -> ProbeSettings:
    """Probe settings whose resolution is the longest interval of any workflow."""
    resolution_s = max((1.0 / rate for rate in rates_hz.values()), default=0.0)
    return ProbeSettings(
        rates_hz=dict(rates_hz), timeout_s=timeout_s, resolution_s=resolution_s
    )


def tier_slo(tier: Tier) -> TierSlo:
    return TierSlo(
        name=tier.name,
        title=tier.title,
        max_outage_s=tier.max_outage_s,
        rpo_writes=tier.rpo_writes,
        slow_threshold_s=tier.slow_threshold_s,
        queued=tier.queued,
    )


def workflow_result(
    verdict: WorkflowVerdict, acknowledged_writes: int = 0, writes: bool = True
) -> WorkflowResult:
    """The results.json entry of one judged workflow."""
    figures, tier = verdict.figures, verdict.tier
    return WorkflowResult(
        name=figures.workflow,
        tier=figures.tier,
        samples=figures.samples,
        failed=figures.failed,
        max_outage_s=figures.max_outage_s,
        downtime_s=figures.downtime_s,
        recovery_s=figures.recovery_s,
        recovered=figures.recovered,
        lost_writes=figures.lost_writes,
        lost_write_ids=list(figures.lost_write_ids),
        acknowledged_writes=acknowledged_writes,
        writes=writes,
        resolution_s=figures.resolution_s,
        slo=SloApplied(
            max_outage_s=tier.max_outage_s,
            rpo_writes=tier.rpo_writes,
            slow_threshold_s=tier.slow_threshold_s,
        ),
        verdict=verdict.verdict,
        reasons=list(verdict.reasons),
        windows=[
            WindowResult(start_mono=w.start_mono, end_mono=w.end_mono)
            for w in figures.windows
        ],
        schedule=_schedule_result(figures.schedule),
    )


def _schedule_result(schedule: Schedule | None) -> ScheduleResult | None:
    if schedule is None:
        return None
    # Read field by field, ``kept`` (a property) included.
    return ScheduleResult.model_validate(schedule, from_attributes=True)


def load_results(path: Path) -> RunResults:
    """Read a results.json (or the run directory holding one).

    Raises ConfigError naming the file when it is missing, not JSON, written by
    a newer chaoscert (higher ``schema_version``) or not of this shape.
    """
    if path.is_dir():
        path = path / RESULTS_FILE
    return results_from(load_json(path), path)


def results_from(data: Any, source: Path) -> RunResults:
    """Validate results read from ``source`` (a file, or a journal's activity);
    ConfigError names it when they are newer than this chaoscert or malformed."""
    version = data.get("schema_version") if isinstance(data, dict) else None
    if isinstance(version, int | float) and version > SCHEMA_VERSION:
        raise ConfigError(
            f"{source}: schema_version {version} is newer than this chaoscert reads"
            f" ({SCHEMA_VERSION}); upgrade chaoscert to read it"
        )
    try:
        return RunResults.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation(source, exc)) from None


def read_samples(path: Path) -> list[Sample]:
    """Read a JSON-lines samples file; ConfigError names the file and line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    samples = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            samples.append(Sample.from_dict(json.loads(line)))
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{path}: line {number}: not a sample: {exc}") from None
    return samples


def scenario_samples_path(run_dir: Path, scenario: ScenarioResult) -> Path | None:
    """Where a scenario's samples live, or None if it names no file inside the
    run directory (a path escaping it is ignored, not followed)."""
    if not scenario.samples_file:
        return None
    root = run_dir.resolve()
    path = (root / scenario.samples_file).resolve()
    return path if path.is_relative_to(root) else None


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file,
    never a torn one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp makes files only their owner can read; reports are for all.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def point_latest(reports_dir: Path, run_dir: Path) -> Path:
    """Point ``reports/latest`` at ``run_dir`` (a relative symlink, swapped
    atomically so a reader never finds it missing)."""
    link = reports_dir / LATEST_LINK
    tmp = reports_dir / f".{LATEST_LINK}.{secrets.token_hex(4)}"
    target = os.path.relpath(run_dir, reports_dir)
    try:
        tmp.symlink_to(target, target_is_directory=True)
        os.replace(tmp, link)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ChaoscertError(
            f"cannot point {link} at {run_dir}: {exc.strerror}"
            " (a directory of that name is in the way?)"
        ) from None
    return link


class RunWriter:
    """Writes one run's directory as the run goes.

    Create it with ``RunWriter.start``; call ``add_scenario`` after each scenario
    and ``finish`` at the end. ``results.json`` is complete=False until then.
    """

    def __init__(self, reports_dir: Path, results: RunResults) -> None:
        self.reports_dir = reports_dir
        self.results = results
        self.run_dir = reports_dir / results.run_id

    @classmethod
    def start(
        cls,
        reports_dir: Path,
        *,
        platform: str,
        topology: str,
        probe: ProbeSettings,
        tiers: Iterable[Tier] = (),
        run_id: str | None = None,
        platform_note: str = "",
        environment: dict[str, Any] | None = None,
    ) -> RunWriter:
        """Create ``reports_dir/<run-id>/``, write a first results.json and point
        ``reports_dir/latest`` at it."""
        results = RunResults(
            run_id=run_id or new_run_id(),
            platform=platform,
            topology=topology,
            platform_note=platform_note,
            environment=environment or {},
            started_at=utc_now(),
            probe=probe,
            tiers={tier.name: tier_slo(tier) for tier in tiers},
        )
        writer = cls(reports_dir, results)
        (writer.run_dir / SAMPLES_DIR).mkdir(parents=True, exist_ok=False)
        writer.write()
        point_latest(reports_dir, writer.run_dir)
        log.info("run %s writing to %s", results.run_id, writer.run_dir)
        return writer

    @property
    def results_path(self) -> Path:
        return self.run_dir / RESULTS_FILE

    def write(self) -> Path:
        """Rewrite results.json atomically from the current state."""
        write_atomically(self.results_path, self.results.model_dump_json(indent=2))
        return self.results_path

    def write_samples(self, scenario_name: str, samples: Iterable[Sample]) -> str:
        """Write a scenario's samples as JSON lines; returns the path relative to
        the run directory, as ``ScenarioResult.samples_file`` wants it."""
        index = len(self.results.scenarios) + 1
        relative = f"{SAMPLES_DIR}/{index:03d}-{_slug(scenario_name)}.jsonl"
        lines = (json.dumps(s.to_dict(), separators=(",", ":")) for s in samples)
        path = self.run_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, "".join(f"{line}\n" for line in lines))
        return relative

    def add_scenario(
        self, scenario: ScenarioResult, samples: Iterable[Sample] | None = None
    ) -> ScenarioResult:
        """Record a finished scenario (and its samples, if given) and rewrite
        results.json, so an interrupted run keeps it."""
        if samples is not None:
            relative = self.write_samples(scenario.name, samples)
            scenario = scenario.model_copy(update={"samples_file": relative})
        self.results.scenarios.append(scenario)
        self.write()
        log.debug("recorded scenario %r (%s)", scenario.name, scenario.status)
        return scenario

    def finish(self, complete: bool = True) -> Path:
        """Stamp the end time and completeness, and write results.json."""
        self.results.ended_at = utc_now()
        self.results.complete = complete
        # Linux gives kilobytes.
        self.results.peak_rss_mib = (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        )
        path = self.write()
        log.info(
            "run %s %s: %s",
            self.results.run_id,
            "complete" if complete else "INCOMPLETE",
            path,
        )
        return path


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:60].rstrip("-") or "scenario"


def redact_tree(root: Path, secrets: list[str]) -> None:
    """Replace every secret value in the files under `root` (defence in depth:
    secrets are kept out of outputs at the source, this catches what slips)."""
    values = [value for value in secrets if len(value) >= 8]
    if not values or not root.exists():
        return
    for path in root.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if any(value in text for value in values):
            for value in values:
                text = text.replace(value, "[redacted]")
            path.write_text(text, encoding="utf-8")
            log.warning("redacted a secret that reached %s", path)
