"""What the probe engine can do: its highest rate with the schedule kept, and
the CPU it takes at the default rates.

The engine's own limit is measured against a minimal Odoo look-alike (the
tests' ``FakeOdoo``) in another process on the other core, the probe pinned
to one core; the system's limit the same way against the local stack's edge.
A rate is sustained when no attempt fails and 99 % of the slots start less than
5 ms late (a skipped slot counts as late).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psutil
from pydantic import SecretStr

from chaoscert.platforms.base import Endpoint
from chaoscert.probes.engine import ProbeSession
from chaoscert.slo import schedule

WORKFLOW = "warehouse_scanning"
LATE_GOAL_S = 0.005
RATE_GOAL_HZ = 200.0
ENGINE_LADDER_HZ = (50.0, 100.0, 200.0, 300.0, 400.0, 600.0, 800.0)
STACK_LADDER_HZ = (10.0, 20.0, 50.0, 100.0, 200.0, 300.0)
STEP_S = 5.0
DEFAULT_RATES_HZ = {
    "warehouse_scanning": 10.0,
    "dispatch": 10.0,
    "procurement_approval": 2.0,
    "invoice_posting": 1.0,
}
_SERVER = """
import os, sys
os.sched_setaffinity(0, {%d})
sys.path.insert(0, %r)
from tests.unit.fake_odoo import FakeOdoo
with FakeOdoo() as fake:
    print(fake.url, flush=True)
    sys.stdin.read()
"""


@dataclass(frozen=True)
class RateStep:
    rate_hz: float
    samples: int
    failed: int
    late_p99_s: float
    late_max_s: float
    skipped: int

    @property
    def sustained(self) -> bool:
        """No failure, and 99 % of the slots started less than 5 ms late; a
        skipped slot counts as one that started too late."""
        too_late = self.skipped / (self.samples + self.skipped) if self.samples else 1
        return not self.failed and too_late < 0.01 and self.late_p99_s < LATE_GOAL_S


@contextmanager
def pinned(cores: set[int]) -> Iterator[None]:
    """This process (all its threads started meanwhile) on ``cores`` only."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores & before or before)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextmanager
def minimal_server(core: int) -> Iterator[Endpoint]:
    """The tests' Odoo look-alike in its own process, pinned to ``core``."""
    from tests.unit import fake_odoo

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER % (core, root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the minimal server did not start: {url!r}")
        yield Endpoint(
            url, fake_odoo.DB, fake_odoo.LOGIN, SecretStr(fake_odoo.PASSWORD)
        )
    finally:
        server.kill()
        server.wait(10)


def ladder(
    endpoint: Endpoint, rates_hz: tuple[float, ...], step_s: float = STEP_S
) -> list[RateStep]:
    """One workflow at each rate for ``step_s``; stops after two rates in a row
    are not sustained."""
    steps: list[RateStep] = []
    for rate in rates_hz:
        with ProbeSession.at(
            endpoint,
            [WORKFLOW],
            rate_hz=rate,
            timeout_s=2.0,
            max_in_flight=256,
        ) as probes:
            probes.start()
            time.sleep(step_s)
            samples = probes.stop()[WORKFLOW]
        kept = schedule(samples, 1.0 / rate)
        step = RateStep(
            rate_hz=rate,
            samples=len(samples),
            failed=sum(not s.ok for s in samples),
            late_p99_s=kept.late_p99_s if kept else 0.0,
            late_max_s=kept.late_max_s if kept else 0.0,
            skipped=kept.skipped if kept else 0,
        )
        steps.append(step)
        print(
            f"  {rate:g}/s: {step.samples} attempts, {step.failed} failed,"
            f" late p99 {step.late_p99_s * 1000:.1f} ms, {step.skipped} skipped",
            flush=True,
        )
        if len(steps) >= 2 and not steps[-1].sustained and not steps[-2].sustained:
            break
    return steps


def highest_sustained(steps: list[RateStep]) -> float:
    sustained = [s.rate_hz for s in steps if s.sustained]
    return max(sustained, default=0.0)


def cpu_at_default_rates(endpoint: Endpoint, seconds: float = 30.0) -> float:
    """Share of one core this process takes while probing every workflow at
    its tier's default rate (the process does nothing else meanwhile)."""
    me = psutil.Process()
    with ProbeSession.at(
        endpoint,
        list(DEFAULT_RATES_HZ),
        rate_hz=DEFAULT_RATES_HZ,
        timeout_s=2.0,
    ) as probes:
        probes.start()
        before, wall = me.cpu_times(), time.monotonic()
        time.sleep(seconds)
        after, elapsed = me.cpu_times(), time.monotonic() - wall
        probes.stop()
    used = (after.user - before.user) + (after.system - before.system)
    return used / elapsed


def table(
    engine: list[RateStep], stack: list[RateStep], cpu: float | None
) -> list[str]:
    lines = [
        "| against | rate | attempts | failed | late start p99 | late start max"
        " | skipped | sustained |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, steps in (("minimal server", engine), ("local stack", stack)):
        for s in steps:
            lines.append(
                f"| {name} | {s.rate_hz:g}/s | {s.samples} | {s.failed}"
                f" | {s.late_p99_s * 1000:.1f} ms | {s.late_max_s * 1000:.1f} ms"
                f" | {s.skipped} | {'yes' if s.sustained else 'no'} |"
            )
    lines.append("")
    best = highest_sustained(engine)
    met = "met" if best >= RATE_GOAL_HZ else "NOT met"
    lines.append(
        f"Engine limit (one core, minimal server): {best:g} attempts/s sustained"
        f" (goal {RATE_GOAL_HZ:g}/s: {met}). System limit (local stack):"
        f" {highest_sustained(stack):g} attempts/s."
    )
    if cpu is not None:
        lines.append(
            f"CPU of the probes at the default rates (10, 10, 2, 1 per second,"
            f" four workflows against the local stack): {cpu * 100:.1f} % of one core."
        )
    return lines
