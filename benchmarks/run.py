"""``make bench``: every benchmark, printed and written as a markdown table to
benchmarks/results/<UTC time>.md (and latest.md).

    python -m benchmarks.run                  # everything, three trials each
    python -m benchmarks.run --quick          # one trial, shorter ladders
    python -m benchmarks.run --only engine    # accuracy, engine, cost

Figures are printed, never asserted: they depend on the machine. The
benchmark stack has its own ports and state directory
($CHAOSCERT_BENCH_HOME, default /var/tmp/chaoscert-bench) and is taken down
at the end; ``make certify``'s stack is not touched.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform as host
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import accuracy, cost, engine
from benchmarks.edge import bench_platform

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PARTS = ("accuracy", "engine", "cost")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one trial each")
    parser.add_argument(
        "--only", default=",".join(PARTS), help=f"comma-separated: {', '.join(PARTS)}"
    )
    parser.add_argument("--reports-dir", default=str(ROOT / "reports"))
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        print(f"benchmarks: unknown part {unknown[0]!r} (known: {', '.join(PARTS)})")
        return 2

    started = time.monotonic()
    now = dt.datetime.now(dt.UTC)
    sections = [
        f"# chaoscert benchmarks, {now:%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {os.cpu_count()} cores, {host.machine()}, Python"
        f" {host.python_version()}, {host.platform()}."
        + (" Quick run: one trial each." if args.quick else ""),
    ]
    with tempfile.TemporaryDirectory(prefix="chaoscert-bench-") as scratch:
        cold_empty = None
        if "cost" in parts:
            cost.empty_state()
            print("cost: starting the benchmark stack from empty data", flush=True)
            up = time.monotonic()
        with bench_platform(Path(scratch)) as platform:
            if "cost" in parts:
                cold_empty = time.monotonic() - up
            if "accuracy" in parts:
                print("accuracy: outages of known length at the edge", flush=True)
                trials = accuracy.run_trials(platform, repeats=1 if args.quick else 3)
                sections += [
                    "",
                    "## Accuracy against outages of known length",
                    "",
                    "The edge load balancer frozen for D seconds (cgroup freeze; D is"
                    " the time between the freeze and thaw writes). Observed: the"
                    " outage an observer independent of chaoscert saw, from the"
                    " freeze to its first answer in time (a fresh GET of the apps'"
                    " health through the edge every 10 ms from the thaw on); it"
                    " outlasts D while the thawed edge hands the apps the requests"
                    " abandoned during the freeze. Errors: chaoscert's longest"
                    " outage of warehouse scanning minus D, and minus the observed"
                    " outage, median / worst in ms; successes slower than"
                    f" {accuracy.SLOW_S:g} s counted failed. Goal: within one probe"
                    " interval plus 50 ms.",
                    "",
                    *accuracy.table(accuracy.rows(trials)),
                ]
            if "engine" in parts:
                print("engine: highest rate with the schedule kept", flush=True)
                quick_ladder = engine.ENGINE_LADDER_HZ[:5]
                with engine.pinned({0}):
                    with engine.minimal_server(core=1) as server:
                        own = engine.ladder(
                            server,
                            quick_ladder if args.quick else engine.ENGINE_LADDER_HZ,
                        )
                    system = engine.ladder(platform.endpoint(), engine.STACK_LADDER_HZ)
                    cpu = engine.cpu_at_default_rates(
                        platform.endpoint(), 15.0 if args.quick else 30.0
                    )
                sections += [
                    "",
                    "## Probe engine",
                    "",
                    "One workflow (warehouse scanning) per step, for"
                    f" {engine.STEP_S:g} s, the probe pinned to one core; sustained"
                    " when no attempt fails and 99 % of the slots start less than"
                    " 5 ms late (a skipped slot counts as late).",
                    "",
                    *engine.table(own, system, cpu),
                ]
            if "cost" in parts:
                print("cost: cold start and recovery", flush=True)
                existing = cost.cold_start(platform)
                recoveries = [
                    cost.recovery(platform, "app_replica_kill", "app", 5.0),
                    cost.recovery(platform, "node_hang", "primary", 30.0),
                ]
                found = cost.latest_catalogue(Path(args.reports_dir))
                run = cost.catalogue(found) if found else None
                sections += [
                    "",
                    "## Cost of a run",
                    "",
                    *cost.table(cold_empty, existing, recoveries, run),
                ]
    sections += ["", f"Benchmarks took {time.monotonic() - started:.0f} s."]
    text = "\n".join(sections) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{now:%Y%m%dT%H%M%SZ}.md"
    out.write_text(text)
    (RESULTS / "latest.md").write_text(text)
    print(text)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
