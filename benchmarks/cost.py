"""What a run costs: cold start, recovery to steady state, the catalogue's wall
time and how much of it is chaoscert's own, and chaoscert's peak memory.

Cold start and recovery are measured on the benchmark's own stack. The
catalogue's figures come from a finished run of the whole catalogue (the one
``make certify`` writes; ``make bench`` names the run it read): its wall time
is split into the time the platform spent under a fault or recovering from
it (fault injected to steady state again, per scenario) and everything else,
which is chaoscert's own overhead: start-up, steady-state checks before each
fault, the clean traffic measured before it and the 10 s measured past
recovery, reading every write back, the report.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.edge import BENCH_STATE_DIR
from chaoscert.errors import ChaoscertError
from chaoscert.platforms.local.platform import LocalPlatform
from chaoscert.results import RunResults, ScenarioResult, load_results

COLD_START_GOAL_S = 30.0
OVERHEAD_GOAL = 0.20
STEADY_TEXT = "steady state again after"


@dataclass(frozen=True)
class Recovery:
    fault: str
    held_s: float
    steady_after_heal_s: float


@dataclass(frozen=True)
class Catalogue:
    run_id: str
    scenarios: int
    wall_s: float
    platform_s: float
    peak_rss_mib: float | None

    @property
    def overhead(self) -> float:
        return 1.0 - self.platform_s / self.wall_s if self.wall_s > 0 else 0.0


def empty_state(state_dir: Path = BENCH_STATE_DIR) -> None:
    """Remove the benchmark stack's state so the next start is from nothing."""
    if state_dir.exists():
        shutil.rmtree(state_dir)


def cold_start(platform: LocalPlatform) -> float:
    """Seconds `local up` takes to steady state, from a stack that is down."""
    platform.release()  # a stack held by a run refuses to go down
    platform.stack.down()
    started = time.monotonic()
    platform.ensure_up()
    took = time.monotonic() - started
    platform.acquire()
    return took


def recovery(
    platform: LocalPlatform, kind: str, target: str, held_s: float
) -> Recovery:
    """Inject, hold, heal, and time the way back to steady state."""
    platform.wait_steady(180)
    handle = platform.inject(kind, target)
    try:
        time.sleep(held_s)
    finally:
        handle.heal()
    healed = time.monotonic()
    platform.wait_steady(180)
    return Recovery(
        f"{kind.replace('_', ' ')} ({handle.target})",
        held_s,
        time.monotonic() - healed,
    )


def latest_catalogue(reports: Path, min_scenarios: int = 15) -> RunResults | None:
    """The newest complete run in ``reports`` with the whole catalogue."""
    candidates = sorted(
        (p for p in reports.glob("*/results.json") if p.parent.name != "latest"),
        key=lambda p: p.parent.name,
        reverse=True,
    )
    for path in candidates:
        try:
            results = load_results(path)
        except ChaoscertError:
            continue
        if results.complete and len(results.scenarios) >= min_scenarios:
            return results
    return None


def catalogue(results: RunResults) -> Catalogue:
    wall = (
        (results.ended_at - results.started_at).total_seconds()
        if results.ended_at
        else 0.0
    )
    return Catalogue(
        run_id=results.run_id,
        scenarios=len(results.scenarios),
        wall_s=wall,
        platform_s=sum(_platform_s(s) for s in results.scenarios),
        peak_rss_mib=results.peak_rss_mib,
    )


def _platform_s(scenario: ScenarioResult) -> float:
    """Fault injected to steady state again (to healed, if no steady event)."""
    fault = scenario.fault
    if fault is None or fault.injected_mono is None:
        return 0.0
    steady = [
        e.mono for e in scenario.events if e.mono is not None and STEADY_TEXT in e.text
    ]
    end = max(steady, default=fault.healed_mono or fault.injected_mono)
    return max(0.0, end - fault.injected_mono)


def table(
    cold_empty_s: float | None,
    cold_existing_s: float | None,
    recoveries: list[Recovery],
    run: Catalogue | None,
) -> list[str]:
    lines = ["| figure | value | goal |", "|---|---|---|"]
    goal = f"under {COLD_START_GOAL_S:g} s"
    if cold_empty_s is not None:
        lines.append(
            f"| cold start, empty data directories | {cold_empty_s:.1f} s | {goal} |"
        )
    if cold_existing_s is not None:
        lines.append(
            f"| cold start, existing data | {cold_existing_s:.1f} s | {goal} |"
        )
    for item in recoveries:
        lines.append(
            f"| fault healed to steady state: {item.fault}, held {item.held_s:g} s"
            f" | {item.steady_after_heal_s:.1f} s | |"
        )
    if run is None:
        lines.append("| catalogue | no complete catalogue run in reports/ | |")
        return lines
    minutes, seconds = divmod(run.wall_s, 60)
    lines += [
        f"| catalogue wall time ({run.scenarios} scenarios, run {run.run_id})"
        f" | {int(minutes)} min {seconds:.0f} s | |",
        f"| of it, platform under a fault or recovering | {run.platform_s:.0f} s | |",
        f"| chaoscert's own overhead | {run.overhead:.0%}"
        f" | under {OVERHEAD_GOAL:.0%} |",
    ]
    memory = (
        f"{run.peak_rss_mib:.0f} MiB"
        if run.peak_rss_mib is not None
        else "not recorded"
    )
    lines.append(
        f"| peak resident memory of chaoscert during the catalogue | {memory} | |"
    )
    return lines
