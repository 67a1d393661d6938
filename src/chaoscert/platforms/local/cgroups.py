"""Act on every process of a node at once.

With a writable cgroup v2 hierarchy each node gets its own cgroup, so
``cgroup.freeze`` and ``cgroup.kill`` reach every process, the detached
postmaster included. Without one, processes are found by the marker
environment variables every process of a node inherits, and signalled.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from chaoscert.errors import FaultError

log = logging.getLogger("chaoscert.local.cgroups")

MARK_STACK = "CHAOSCERT_STACK"
MARK_NODE = "CHAOSCERT_NODE"
CGROUP2_CANDIDATES = (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))


def cgroup2_root() -> Path | None:
    """The writable cgroup v2 mount, if this machine has one."""
    for mount in CGROUP2_CANDIDATES:
        if (mount / "cgroup.procs").exists() and os.access(mount, os.W_OK):
            probe = mount / f"chaoscert-probe-{os.getpid()}"
            try:
                probe.mkdir()
                usable = (probe / "cgroup.freeze").exists() and (
                    probe / "cgroup.kill"
                ).exists()
                probe.rmdir()
            except OSError:
                continue
            if usable:
                return mount
    return None


class NodeGroup:
    """The processes of one node of one stack."""

    def __init__(self, stack_id: str, node: str, root: Path | None):
        self.stack_id = stack_id
        self.node = node
        self.path = root / "chaoscert" / stack_id / node if root else None

    @property
    def mechanism(self) -> str:
        return "cgroup v2" if self.path else "signals"

    def prepare(self) -> None:
        if self.path:
            self.path.mkdir(parents=True, exist_ok=True)
            if self.frozen():
                self.thaw()

    def enter(self) -> None:
        """Move the calling process into the node's cgroup (run after fork)."""
        if self.path:
            (self.path / "cgroup.procs").write_text("0")

    def pids(self) -> list[int]:
        if self.path:
            try:
                text = (self.path / "cgroup.procs").read_text()
            except FileNotFoundError:
                return []
            return [int(line) for line in text.split()]
        return [proc.pid for proc in self._marked()]

    def _marked(self) -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter():
            try:
                env = proc.environ()
            except (psutil.Error, OSError):
                continue
            if env.get(MARK_STACK) == self.stack_id and env.get(MARK_NODE) == self.node:
                found.append(proc)
        return found

    def frozen(self) -> bool:
        if self.path:
            events = self._events()
            return events.get("frozen") == "1"
        procs = self._marked()
        return bool(procs) and all(
            proc.status() == psutil.STATUS_STOPPED for proc in procs
        )

    def _events(self) -> dict[str, str]:
        try:
            text = (self.path / "cgroup.events").read_text() if self.path else ""
        except FileNotFoundError:
            return {}
        return dict(line.split(" ", 1) for line in text.splitlines() if " " in line)

    def freeze(self, timeout_s: float = 10.0) -> None:
        """Stop every process of the node; they hold sockets but answer nothing."""
        if self.path:
            (self.path / "cgroup.freeze").write_text("1")
            self._wait(self.frozen, timeout_s, "freeze")
        else:
            self._signal(signal.SIGSTOP)

    def thaw(self, timeout_s: float = 10.0) -> None:
        if self.path and not self.path.exists():
            return  # a node that is not running is not frozen
        if self.path:
            (self.path / "cgroup.freeze").write_text("0")
            self._wait(lambda: not self.frozen(), timeout_s, "thaw")
        else:
            self._signal(signal.SIGCONT)

    def kill(self, timeout_s: float = 10.0) -> None:
        """Kill every process of the node at once, as a power loss would."""
        if self.path:
            (self.path / "cgroup.kill").write_text("1")
        else:
            self._signal(signal.SIGKILL)
        self._wait(lambda: not self.pids(), timeout_s, "kill")

    def remove(self) -> None:
        if self.path and self.path.exists():
            try:
                self.path.rmdir()
            except OSError as exc:
                log.warning("cgroup %s not removed: %s", self.path, exc)

    def _signal(self, signum: int) -> None:
        for proc in self._marked():
            try:
                proc.send_signal(signum)
            except psutil.NoSuchProcess:
                continue

    def _wait(self, done: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if done():
                return
            time.sleep(0.05)
        raise FaultError(
            f"{what} of node {self.node} did not complete within {timeout_s:.0f} s"
        )
