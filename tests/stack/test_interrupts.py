"""Every fault kind, cut short while live, leaves nothing behind.

Each case runs a process that takes the stack as a run does and injects one
fault, then ends it: SIGTERM, SIGINT, an exception escaping, or SIGKILL
(after which the next run must heal what is on record, and say so). After
each: the exit code says how it ended, the live-fault record is gone, no node
is frozen, no stack process is stopped, and the stack is steady again.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from chaoscert.platforms.local.platform import LocalPlatform
from tests.stack.conftest import ROOT, TEST_STATE_DIR

pytestmark = pytest.mark.stack

STEADY_BOUND_S = 180.0
INJECT_BOUND_S = 60.0

# Every fault kind of the local platform, with the way its run ends.
CASES = [
    ("node_hang", "app", "SIGTERM"),
    ("node_crash", "replica", "SIGINT"),
    ("database_primary_hang", "", "SIGTERM"),
    ("database_primary_crash", "", "raise"),
    ("zone_hang", "primary", "SIGINT"),
    ("zone_crash", "zone-c", "SIGTERM"),
    ("database_switchover", "", "SIGINT"),
    ("ingress_replica_kill", "", "raise"),
    ("app_replica_kill", "", "SIGTERM"),
    ("dcs_member_loss", "", "SIGINT"),
    ("dcs_quorum_loss", "", "SIGTERM"),
    ("replication_stall", "", "raise"),
    ("zone_hang", "zone-b", "SIGKILL"),
    ("replication_stall", "", "SIGKILL"),
]


def start(platform: LocalPlatform, topology: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.stack.interrupt_harness",
            str(topology),
            str(TEST_STATE_DIR),
            *args,
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_line(proc: subprocess.Popen[str], wanted: str) -> list[str]:
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + INJECT_BOUND_S
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line.rstrip())
        if line.startswith(wanted):
            return seen
    proc.kill()
    raise AssertionError(f"no {wanted!r} from the harness: {seen[-10:]}")


def stopped_stack_processes(platform: LocalPlatform) -> list[int]:
    stopped = []
    for node in platform.layout.nodes():
        for pid in platform.stack.group(node).pids():
            try:
                if psutil.Process(pid).status() == psutil.STATUS_STOPPED:
                    stopped.append(pid)
            except psutil.NoSuchProcess:
                continue
    return stopped


def assert_nothing_left(platform: LocalPlatform) -> None:
    record = platform.registry.record
    assert record is not None and not record.exists(), record.read_text()
    assert not any(platform.stack.group(n).frozen() for n in platform.layout.nodes())
    assert stopped_stack_processes(platform) == []
    platform.wait_steady(STEADY_BOUND_S)


@pytest.mark.parametrize(
    ("kind", "target", "how"), CASES, ids=[f"{k}-{h}" for k, _, h in CASES]
)
def test_a_fault_cut_short_is_healed(
    local_platform: LocalPlatform,
    stack_topology_file: Path,
    kind: str,
    target: str,
    how: str,
) -> None:
    local_platform.wait_steady(STEADY_BOUND_S)
    harness = start(
        local_platform,
        stack_topology_file,
        kind,
        target,
        how if how == "raise" else "wait",
    )
    wait_for_line(harness, "INJECTED")
    record = local_platform.registry.record
    assert record is not None and record.exists()

    if how == "raise":
        assert harness.stdin is not None
        harness.stdin.close()
        code = harness.wait(INJECT_BOUND_S)
        assert code == 1
    elif how == "SIGKILL":
        harness.kill()
        assert harness.wait(INJECT_BOUND_S) == -signal.SIGKILL
        assert record.exists()  # nothing could heal it: it is on record
        nxt = start(local_platform, stack_topology_file, kind, target, "none")
        out, _ = nxt.communicate(timeout=STEADY_BOUND_S)
        assert nxt.returncode == 0, out
        assert "HEALED" in out and kind in out, out
    else:
        signum = getattr(signal, how)
        harness.send_signal(signum)
        code = harness.wait(INJECT_BOUND_S)
        assert code == 128 + signum

    assert_nothing_left(local_platform)


SCENARIO = "application and hangs"  # -k: the application node hangs
POINTS = [("before", "SIGTERM"), ("during", "SIGINT"), ("after", "SIGTERM")]


def run_scenario(topology: Path, reports: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chaoscert.cli",
            "run",
            "--plain",
            f"--topology={topology}",
            f"--state-dir={TEST_STATE_DIR}",
            f"--reports-dir={reports}",
            f"--suite={ROOT}",
            "--",
            "-k",
            SCENARIO,
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_until(check: Callable[[], bool], what: str, bound_s: float = 120.0) -> None:
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {bound_s:g} s")


@pytest.mark.parametrize(("point", "how"), POINTS, ids=[p for p, _ in POINTS])
def test_a_run_interrupted_before_during_or_after_its_fault(
    local_platform: LocalPlatform,
    stack_topology_file: Path,
    tmp_path: Path,
    point: str,
    how: str,
) -> None:
    local_platform.wait_steady(STEADY_BOUND_S)
    record = local_platform.registry.record
    assert record is not None
    reports = tmp_path / "reports"
    run = run_scenario(stack_topology_file, reports)
    try:
        wait_until(lambda: any(reports.glob("*/results.json")), "the run's start")
        if point in ("during", "after"):
            wait_until(record.exists, "the fault's injection")
        if point == "after":
            wait_until(lambda: not record.exists(), "the fault's healing")
        assert point != "before" or not record.exists()
        signum = getattr(signal, how)
        run.send_signal(signum)
        out, _ = run.communicate(timeout=STEADY_BOUND_S + 60)
    except AssertionError as exc:
        run.kill()
        out, _ = run.communicate(timeout=30)
        raise AssertionError(f"{exc}; the run printed: {out[-3000:]}") from None

    assert run.returncode == 128 + signum, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    run_dir = next(reports.glob("*/results.json")).parent
    results = json.loads((run_dir / "results.json").read_text())
    assert results["complete"] is False
    assert (run_dir / "report.html").exists()
    assert_nothing_left(local_platform)


def test_a_second_run_on_a_held_stack_is_refused_in_one_line(
    local_platform: LocalPlatform, stack_topology_file: Path, tmp_path: Path
) -> None:
    holder = start(local_platform, stack_topology_file, "none", "", "hold")
    try:
        wait_for_line(holder, "HELD")
        second = run_scenario(stack_topology_file, tmp_path / "reports")
        out, _ = second.communicate(timeout=120)
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.wait(INJECT_BOUND_S)

    assert second.returncode == 2, out[-2000:]
    assert "is using the local stack" in out, out[-2000:]
    assert "Traceback" not in out
    assert not list((tmp_path / "reports").glob("*/results.json"))
