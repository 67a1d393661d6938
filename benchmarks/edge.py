"""Outages of known length: the edge load balancer frozen for exactly D seconds.

The edge is the one door users come through; freezing its node's cgroup stops
every user request at once, and thawing it lets them all through again. The
outage's ground truth is the time between the two writes to ``cgroup.freeze``,
read from the monotonic clock right around them: neither the probes nor the
report have a hand in it. The freeze is registered as a live fault like any
other, so an interrupted benchmark leaves nothing frozen (the next run heals it).

Users are not served again the instant the edge thaws: the requests clients
abandoned during the freeze wait in the edge's accept queue, and the thawed
edge forwards them to the apps, which answer them before any new request (the
ingress logs show bursts of hundreds of them answered 200 after the thaw).
So the outage users see is measured too, by an observer that shares nothing
with chaoscert's probes: from the thaw on, a fresh connection every 10 ms
asks the apps' health through the edge, and the first answer that comes in
time ends the outage.
"""

from __future__ import annotations

import http.client
import itertools
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from chaoscert.platforms.local.faults import undo_all
from chaoscert.platforms.local.layout import EDGE_NODE, PING_PATH
from chaoscert.platforms.local.platform import LocalPlatform
from chaoscert.topology import Ports, load_topology

ROOT = Path(__file__).resolve().parents[1]
# Below Linux's ephemeral ports (32768 and up), apart from make certify's and
# the tests' stacks.
BENCH_PORT_OFFSET = -10000
BENCH_STATE_DIR = Path(
    os.environ.get("CHAOSCERT_BENCH_HOME", "/var/tmp/chaoscert-bench")
)


# The apps' health through the edge: the whole path a user's request takes.
SERVED_PATH = "/web/health"
SERVED_EVERY_S = 0.01
SERVED_BOUND_S = 10.0


@dataclass(frozen=True)
class Outage:
    """A frozen edge: monotonic times right after the freeze and thaw writes,
    and when the observer was first answered in time after the thaw (None if
    it was not within its bound, or not asked)."""

    frozen_mono: float
    thawed_mono: float
    served_mono: float | None = None

    @property
    def seconds(self) -> float:
        return self.thawed_mono - self.frozen_mono

    @property
    def served_s(self) -> float | None:
        """The outage the observer saw: from the freeze to its first answer in
        time."""
        if self.served_mono is None:
            return None
        return self.served_mono - self.frozen_mono


def bench_topology_file(directory: Path, source: str = "reference") -> Path:
    """The shipped topology on the benchmark's own ports, written to directory."""
    topology = load_topology(ROOT / f"fixtures/topologies/{source}.yaml")
    ports = Ports(**{k: v + BENCH_PORT_OFFSET for k, v in Ports().model_dump().items()})
    bench = topology.model_copy(update={"ports": ports, "name": f"{source}-bench"})
    path = directory / f"{source}-bench.json"
    path.write_text(bench.model_dump_json())
    return path


@contextmanager
def bench_platform(
    directory: Path, state_dir: Path = BENCH_STATE_DIR
) -> Iterator[LocalPlatform]:
    """A local stack of the reference topology, up and held for the benchmark;
    every fault healed and the stack taken down when the block ends."""
    platform = LocalPlatform(bench_topology_file(directory), state_dir)
    platform.take()
    try:
        yield platform
    finally:
        try:
            platform.heal_all()
        finally:
            platform.release()
            platform.stack.down()
            platform.registry.uninstall()


def freeze_edge(
    platform: LocalPlatform, seconds: float, slow_s: float | None = None
) -> Outage:
    """Freeze the edge's node for ``seconds`` (monotonic) and thaw it; with
    ``slow_s``, then wait for the observer's first answer within ``slow_s``."""
    group = platform.stack.group(EDGE_NODE)
    if group.path is None:
        raise RuntimeError("outages of known length need a writable cgroup v2")
    control = group.path / "cgroup.freeze"
    times: dict[str, float] = {}

    def act(undo: list[dict[str, object]]) -> None:
        undo.append({"op": "thaw", "node": EDGE_NODE})
        control.write_text("1")
        times["frozen"] = time.monotonic()

    handle = platform.run_fault(
        "edge_hang",
        "the edge load balancer (ground-truth outage)",
        act,
        lambda steps: undo_all(platform.stack, steps),
    )
    try:
        left = times["frozen"] + seconds - time.monotonic()
        if left > 0:
            time.sleep(left)
        control.write_text("0")
        times["thawed"] = time.monotonic()
    finally:
        handle.heal()  # thaws again, harmlessly, when the write above was done
        platform.registry.save()  # a healed fault leaves the record
    served = None
    if slow_s is not None:
        topology = platform.layout.topology
        served = first_answer_in_time(
            topology.edge_address, topology.ports.edge, slow_s
        )
    return Outage(times["frozen"], times["thawed"], served)


def first_answer_in_time(
    host: str, port: int, slow_s: float, bound_s: float = SERVED_BOUND_S
) -> float | None:
    """When the first GET of ``SERVED_PATH`` (each on a fresh connection, one
    started every ``SERVED_EVERY_S``) was answered 200 within ``slow_s`` of its
    start; None if none was within ``bound_s``."""
    answers: list[float] = []
    found = threading.Event()

    def ask() -> None:
        started = time.monotonic()
        conn = http.client.HTTPConnection(host, port, timeout=bound_s)
        try:
            conn.request("GET", SERVED_PATH)
            ok = conn.getresponse().status == 200
        except OSError:
            return
        finally:
            conn.close()
        ended = time.monotonic()
        if ok and ended - started <= slow_s:
            answers.append(ended)
            found.set()

    deadline = time.monotonic() + bound_s
    while not found.is_set() and time.monotonic() < deadline:
        threading.Thread(target=ask, daemon=True).start()
        found.wait(SERVED_EVERY_S)
    return min(answers, default=None)


@dataclass
class PingWatch:
    """An independent observer of the edge: a GET of its own liveness URI on a
    fresh connection every ``interval_s``, each answer's arrival recorded."""

    host: str
    port: int
    interval_s: float = 0.005
    timeout_s: float = 60.0
    answers: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        # Several askers, so an answer held up by the freeze does not stop the
        # others from asking; each waits for its own answer.
        for index in range(4):
            thread = threading.Thread(target=self._ask, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> list[float]:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout_s + 1)
        return sorted(self.answers)

    def longest_silence(self, since_mono: float, until_mono: float) -> float:
        """The longest time between consecutive answers inside the interval."""
        inside = [t for t in sorted(self.answers) if since_mono <= t <= until_mono]
        return max((b - a for a, b in itertools.pairwise(inside)), default=0.0)

    def _ask(self, index: int) -> None:
        time.sleep(index * self.interval_s / 4)
        while not self._stop.is_set():
            started = time.monotonic()
            conn = http.client.HTTPConnection(
                self.host, self.port, timeout=self.timeout_s
            )
            try:
                conn.request("GET", PING_PATH)
                if conn.getresponse().status == 200:
                    self.answers.append(time.monotonic())
            except OSError:
                pass
            finally:
                conn.close()
            left = started + self.interval_s - time.monotonic()
            if left > 0:
                time.sleep(left)
