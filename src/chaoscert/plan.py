"""A dry run: the steps of each scenario walked without traffic or faults.

`--dry-run` gives the steps a PlanRun instead of a ScenarioRun. It answers
the same calls, but only writes down what would happen: which workflows
would be probed, and which nodes and pods each fault would hit now, as the
platform resolves its targets (read-only calls).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chaoscert.config import SloConfig
from chaoscert.errors import ChaoscertError, FaultNotApplicable
from chaoscert.platforms.base import Platform


@dataclass
class PlanRun:
    """The plan of one scenario: one line per thing it would do."""

    platform: Platform
    slo: SloConfig
    name: str
    lines: list[str] = field(default_factory=list)
    skipped: str | None = None

    def _note(self, line: str) -> None:
        self.lines.append(line)

    def wait_steady(self, timeout_s: float) -> None:
        self._note(f"wait for steady state, at most {timeout_s:.0f} s")

    def start_traffic(self, workflows: list[str]) -> None:
        self._note(f"probe {', '.join(workflows)}")

    def run_for(self, seconds: float) -> None:
        self._note(f"let {seconds:.0f} s pass")

    def scale_rate(self, workflow: str, factor: float) -> None:
        self._note(f"run {workflow} at {factor:g} times its rate")

    def inject(self, kind: str, target: str = "") -> None:
        label = kind.replace("_", " ")
        try:
            self._note(f"inject {label}: {self.platform.plan(kind, target)}")
        except FaultNotApplicable as exc:
            # As in a real run: the scenario stops here and is skipped.
            self.skipped = str(exc)
            self._note(f"SKIPPED on this platform: {exc}")
            raise
        except ChaoscertError as exc:
            self._note(f"inject {label} on {target or 'its default target'}: {exc}")

    def stall_replication_then_crash_primary(self, stall_s: float) -> None:
        self.inject("replication_stall", "")
        self._note(f"let {stall_s:.0f} s pass")
        self.inject("database_primary_crash", "")

    def heal(self) -> None:
        self._note("heal every fault")

    def wait_available(self, timeout_s: float) -> None:
        self._note(f"wait for every workflow, at most {timeout_s:.0f} s")

    def assert_platform_recovers(self, timeout_s: float) -> None:
        self._note(f"heal, then wait for steady state, at most {timeout_s:.0f} s")

    def assert_baseline(self, seconds: float) -> None:
        """Nothing to check: no traffic runs in a dry run."""

    def finish_measurement(self) -> None:
        """Nothing was measured."""

    def assert_no_lost_writes(self, workflow: str | None = None) -> None:
        self._note(f"check no acknowledged {workflow or 'write'} is lost")

    def assert_max_outage(self, limit_s: float) -> None:
        self._note(f"judge: no workflow down more than {limit_s:.0f} s")

    def assert_tiers_met(self) -> None:
        self._note("judge every workflow against its tier")
