"""What one `chaos run` keeps between activities: platform, scenario, run directory.

Chaos Toolkit runs python activities one after another in one process, so
the state lives here, in the process: the first activity builds the session
from the experiment's configuration, later ones find it. The session takes
the platform for the run (as `chaoscert run` does), heals every fault it
injected on SIGINT, SIGTERM and interpreter exit, and gives the platform
back when the process ends.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaoscert.config import SloConfig, load_slo
from chaoscert.ctk.journal import measurement
from chaoscert.errors import ChaoscertError, ConfigError, FaultError
from chaoscert.platforms import get_platform
from chaoscert.platforms.base import FaultHandle, Platform
from chaoscert.platforms.local.layout import default_state_dir
from chaoscert.probes.engine import ProbeSession
from chaoscert.results import RunWriter, ScenarioResult, Status, redact_tree
from chaoscert.scenario import (
    RECOVERED_AFTER_SUCCESSES,
    ProbeOptions,
    ScenarioRun,
    start_run,
)
from chaoscert.slo import WorkflowVerdict, workflow_label

log = logging.getLogger("chaoscert.ctk")

CONFIG_PREFIX = "chaoscert_"
# The secrets an experiment gives for a kubernetes target (a secrets scope
# whose keys these are); the local stack knows its own credentials.
# Key names, not values:
SECRET_LOGIN = "odoo_login"  # noqa: S105
SECRET_PASSWORD = "odoo_password"  # noqa: S105


@dataclass(frozen=True)
class CtkSettings:
    """The experiment's `configuration` keys chaoscert reads (chaoscert_*)."""

    platform: str = "local"
    topology: Path = Path("fixtures/topologies/reference.yaml")
    state_dir: Path = field(default_factory=default_state_dir)
    target: Path | None = None
    kubeconfig: Path | None = None
    slo: Path = Path("fixtures/slo-tiers.yaml")
    reports_dir: Path = Path("reports")
    rate_hz: float = 10.0
    probe_timeout_s: float = 2.0

    @classmethod
    def from_configuration(cls, configuration: Mapping[str, Any] | None) -> CtkSettings:
        """Read chaoscert_* keys; an unknown one, a bad number or a path that is
        not text is a ConfigError."""
        if configuration is not None and not isinstance(configuration, Mapping):
            raise ConfigError(
                "the experiment's configuration is not a mapping of keys to values"
            )
        given = {
            key.removeprefix(CONFIG_PREFIX): value
            for key, value in (configuration or {}).items()
            if isinstance(key, str) and key.startswith(CONFIG_PREFIX)
        }
        known = cls.__dataclass_fields__
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ConfigError(
                f"configuration key {CONFIG_PREFIX}{unknown[0]} is unknown (known: "
                + ", ".join(CONFIG_PREFIX + name for name in known)
                + ")"
            )
        values: dict[str, Any] = {}
        for name, value in given.items():
            if value in (None, ""):
                continue
            if name in ("rate_hz", "probe_timeout_s"):
                values[name] = _positive(f"{CONFIG_PREFIX}{name}", value)
            elif not isinstance(value, str):
                raise ConfigError(
                    f"configuration key {CONFIG_PREFIX}{name} must be text,"
                    f" not {type(value).__name__}"
                )
            elif name == "platform":
                values[name] = value
            else:
                values[name] = Path(value)
        return cls(**values)


def _positive(key: str, value: Any) -> float:
    try:
        # YAML reads yes/no/true as booleans, which float() takes as 1 or 0.
        number = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise ConfigError(f"configuration key {key} must be a positive number")
    return number


class CtkSession:
    """The platform and the scenario of one `chaos run`."""

    def __init__(self, settings: CtkSettings, secrets: Mapping[str, Any]):
        self.settings = settings
        self.slo: SloConfig = load_slo(settings.slo)
        self.accept_secrets(secrets)
        self.platform: Platform = get_platform(
            settings.platform,
            settings.topology,
            settings.state_dir,
            target=settings.target,
            kubeconfig=settings.kubeconfig,
        )
        self.run: ScenarioRun | None = None
        self.writer: RunWriter | None = None
        self.recorded: list[ScenarioResult] = []
        self.finished: list[ScenarioRun] = []
        self._acquired = False
        self.closed = False

    def accept_secrets(self, secrets: Mapping[str, Any] | None) -> None:
        """Take the Odoo login of a kubernetes target from an activity's secrets."""
        target = self.settings.target
        if secrets and self.settings.platform == "kubernetes" and target is not None:
            _export_odoo_credentials(target, secrets)

    # -- the platform, for the whole run ---------------------------------------
    def open(self) -> None:
        """Take the platform, heal what a killed run left, bring it up."""
        self.platform.take()
        self._acquired = True
        # Registered after the registry's own exit hook, so it runs first:
        # close() heals, records what was measured and releases.
        atexit.register(self.close)
        log.info(
            "chaoscert session on the %s platform (%s)",
            self.platform.name,
            self.platform.describe().get("topology", self.settings.target),
        )

    def close(self) -> None:
        """Heal every live fault, record an unfinished scenario as incomplete,
        and give the platform back; safe to call twice."""
        if self.closed:
            return
        self.closed = True
        errors = self.platform.heal_all()
        for error in errors:
            log.error("%s", error)
        if self.run is not None:
            errors += self.run.close()
            self._record(self.run, "error", "interrupted before it was measured")
            self.run = None
            if self.writer is not None:
                self.writer.finish(complete=False)
                self._render()
        if self._acquired:
            self.platform.release()
            self._acquired = False
        atexit.unregister(self.close)

    # -- one scenario ------------------------------------------------------------
    def probe_options(self) -> ProbeOptions:
        return ProbeOptions.for_slo(
            self.slo, self.settings.rate_hz, self.settings.probe_timeout_s
        )

    def start_scenario(
        self, name: str, family: str, workflows: list[str]
    ) -> ScenarioRun:
        """Start probing `workflows` in a new scenario (one at a time)."""
        if self.run is not None:
            raise ChaoscertError(
                f"scenario {self.run.name!r} is still measuring; stop its traffic"
                " before starting another"
            )
        unknown = [w for w in workflows if w not in self.slo.workflows]
        if unknown:
            raise ConfigError(
                f"workflow {unknown[0]!r} has no tier in {self.settings.slo}"
                f" (known: {', '.join(self.slo.workflows)})"
            )
        self.run = ScenarioRun(
            self.platform,
            self.slo,
            self.probe_options(),
            feature=f"Chaos Toolkit: {family}" if family else "Chaos Toolkit",
            name=name,
            tags=[family] if family else [],
        )
        self.run.start_traffic(workflows)
        return self.run

    def current(self) -> ScenarioRun:
        if self.run is None:
            raise ChaoscertError(
                "no workflow traffic is running: start_workflow_traffic comes first"
            )
        return self.run

    def inject(self, kind: str, target: str) -> FaultHandle:
        """Inject `kind` into the running scenario (or the bare platform)."""
        if self.run is not None:
            return self.run.inject(kind, target)
        return self.platform.inject(kind, target)

    def heal(self) -> list[str]:
        """Heal every live fault; return what was healed."""
        live = [f"{h.kind} on {h.target}" for h in self.platform.registry.live()]
        if self.run is not None:
            self.run.heal()
        errors = self.platform.heal_all()
        if errors:
            raise FaultError("; ".join(errors))
        return live

    def finish_scenario(self) -> dict[str, Any]:
        """Heal, stop the traffic, judge every workflow, record the scenario in
        the run directory (results.json, samples, report.html); return the
        measurement for the journal."""
        run = self.current()
        self.run = None
        run.heal()
        verdicts = run.finish_measurement()
        heal_errors = run.close()
        self.finished.append(run)
        status: Status = "passed"
        error = None
        if heal_errors:
            status, error = "error", "; ".join(heal_errors)
        elif any(not v.passed for v in verdicts.values()):
            status, error = "failed", "; ".join(run.failures())
        scenario = self._record(run, status, error)
        assert self.writer is not None
        self.writer.finish(complete=True)
        self._render()
        output = measurement(
            self.writer.results,
            scenario,
            verdicts,
            run.all_samples(),
            self.writer.run_dir,
        )
        return self.redact(output)

    def verdicts(
        self, workflows: list[str] | None, tier: str | None
    ) -> list[WorkflowVerdict] | None:
        """The verdicts of the last measured scenario for `workflows` (or those
        of `tier`, or all); None when no scenario was measured in this run. A
        scenario still measuring is finished first."""
        if self.run is not None:
            self.finish_scenario()
        if not self.finished:
            return None
        verdicts = self.finished[-1].verdicts
        chosen = workflows or [
            w for w in verdicts if tier is None or self.slo.workflows.get(w) == tier
        ]
        missing = [w for w in chosen if w not in verdicts]
        if missing:
            raise ConfigError(
                f"workflow {missing[0]!r} was not measured"
                f" (measured: {', '.join(verdicts) or 'none'})"
            )
        return [verdicts[w] for w in chosen]

    def unavailable(self, workflows: list[str], burst_s: float) -> list[str]:
        """Probe `workflows` for `burst_s` at their rates; return one line per
        workflow whose last attempts did not all succeed (empty: available)."""
        endpoint = self.platform.endpoint()
        options = self.probe_options()
        probes = ProbeSession.at(
            endpoint,
            workflows,
            rate_hz={w: options.rate_of(w) for w in workflows},
            timeout_s=options.timeout_s,
        )
        try:
            probes.prepare()
            probes.start()
            time.sleep(burst_s)
            samples = probes.stop()
        except ChaoscertError as exc:
            return [f"probing failed: {exc}"]
        finally:
            probes.close()

        problems = []
        for workflow in workflows:
            tail = samples.get(workflow, [])[-RECOVERED_AFTER_SUCCESSES:]
            failed = [s for s in tail if not s.ok]
            if len(tail) < RECOVERED_AFTER_SUCCESSES or failed:
                first = f": {failed[0].error_kind} {failed[0].error}" if failed else ""
                problems.append(
                    f"{workflow_label(workflow)}: {len(failed)} of the last"
                    f" {len(tail)} attempts in {burst_s:g} s failed{first}"
                )
        return problems

    def tier_workflows(self, tier: str) -> list[str]:
        """The workflows of `tier` in the SLO file; ConfigError if none."""
        workflows = [w for w, t in self.slo.workflows.items() if t == tier]
        if not workflows:
            raise ConfigError(
                f"no workflow has tier {tier!r} in {self.settings.slo}"
                f" (tiers: {', '.join(self.slo.tiers)})"
            )
        return workflows

    # -- the run directory ---------------------------------------------------------
    def _record(
        self, run: ScenarioRun, status: Status, error: str | None
    ) -> ScenarioResult:
        writer = self._writer()
        scenario = writer.add_scenario(run.result(status, error), run.all_samples())
        self.recorded.append(scenario)
        log.info("scenario %r %s: %s", run.name, status, writer.run_dir)
        return scenario

    def _writer(self) -> RunWriter:
        if self.writer is None:
            self.writer = start_run(
                self.settings.reports_dir,
                self.platform,
                self.slo,
                self.probe_options(),
                driver="chaostoolkit",
            )
        return self.writer

    def _render(self) -> None:
        from chaoscert.history import history_path
        from chaoscert.report.publish import publish_run

        assert self.writer is not None
        try:
            publish_run(
                self.writer.run_dir,
                history_path(self.settings.reports_dir),
                self.platform.secrets(),
            )
        except Exception as exc:  # the results are written; keep them visible
            log.error("report could not be rendered: %s", exc)
        redact_tree(self.writer.run_dir, self.platform.secrets())

    def redact(self, output: dict[str, Any]) -> dict[str, Any]:
        """`output` with every secret value replaced, for the journal."""
        values = [value for value in self.platform.secrets() if len(value) >= 8]
        text = json.dumps(output)
        if not any(value in text for value in values):
            return output
        for value in values:
            text = text.replace(json.dumps(value)[1:-1], "[redacted]")
        log.warning("redacted a secret from an activity's output")
        redacted: dict[str, Any] = json.loads(text)
        return redacted


def _export_odoo_credentials(target: Path, secrets: Mapping[str, Any]) -> None:
    """Put the Odoo login from the experiment's secrets into this process's
    environment, under the variable names the target profile gives, where the
    kubernetes platform reads them (only this process sees them)."""
    from chaoscert.targets import load_target

    odoo = load_target(target).odoo
    for key, env in (
        (SECRET_LOGIN, odoo.login_env),
        (SECRET_PASSWORD, odoo.password_env),
    ):
        value = secrets.get(key)
        if value:
            os.environ[env] = str(value)


_lock = threading.Lock()
# The one session of this process, under the key "open".
_sessions: dict[str, CtkSession] = {}


def session(
    configuration: Mapping[str, Any] | None, secrets: Mapping[str, Any] | None
) -> CtkSession:
    """This process's session, opened by the first activity that asks."""
    with _lock:
        current = existing()
        if current is None:
            _narrate_through_chaostoolkit()
            current = CtkSession(
                CtkSettings.from_configuration(configuration), secrets or {}
            )
            try:
                current.open()
            except BaseException:
                current.close()
                raise
            _sessions["open"] = current
        else:
            current.accept_secrets(secrets)
        return current


def existing() -> CtkSession | None:
    """The open session, if an activity opened one."""
    current = _sessions.get("open")
    return current if current is not None and not current.closed else None


def _narrate_through_chaostoolkit() -> None:
    """Send chaoscert's narration to wherever `chaos` sends its own (console
    and chaostoolkit.log): chaostoolkit configures only its own logger."""
    ours, theirs = logging.getLogger("chaoscert"), logging.getLogger("chaostoolkit")
    if ours.handlers or not theirs.handlers:
        return
    for handler in theirs.handlers:
        ours.addHandler(handler)
    ours.setLevel(theirs.level or logging.INFO)
    ours.propagate = False
    # One line per probe request would drown the narration.
    logging.getLogger("httpx").setLevel(logging.WARNING)
