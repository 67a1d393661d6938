"""The node agent: runs one node's programs and restarts any that dies alone.

It plays the kubelet: an app or ingress process that exits is started again
after a short backoff. A frozen or killed node takes its agent with it, so a
lost node restarts nothing until the fault is healed, as a real one would.

Run as ``python -m chaoscert.platforms.local.agent PLAN_FILE STACK_ID``.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from chaoscert.platforms.local.cgroups import MARK_NODE, MARK_STACK
from chaoscert.platforms.local.layout import NodePlan, ServicePlan

log = logging.getLogger("chaoscert.local.agent")

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 5.0
POLL_S = 0.1


@dataclass
class Supervised:
    plan: ServicePlan
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    backoff_s: float = BACKOFF_FIRST_S
    next_start: float = 0.0
    started_at: float = field(default=0.0)
    last_exit: int | None = None


class Agent:
    def __init__(self, plan: NodePlan, stack_id: str, status_file: Path):
        self.plan = plan
        self.status_file = status_file
        self.stack_id = stack_id
        self.services = [Supervised(service) for service in plan.services]
        self.stopping = False

    def _env(self, service: ServicePlan) -> dict[str, str]:
        env = dict(os.environ)
        env.update(service.env)
        env[MARK_STACK] = self.stack_id
        env[MARK_NODE] = self.plan.node
        if service.user:
            entry = pwd.getpwnam(service.user)
            env.update(HOME=entry.pw_dir, USER=service.user, LOGNAME=service.user)
        return env

    def start(self, item: Supervised) -> None:
        service = item.plan
        with open(service.log, "ab") as log_file:
            log_file.write(f"--- chaoscert: starting {service.name}\n".encode())
            log_file.flush()
            item.process = subprocess.Popen(
                service.argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=self._env(service),
                cwd=service.cwd,
                user=service.user,
                group=service.user,
                extra_groups=[] if service.user else None,
            )
        item.started_at = time.monotonic()
        self.write_status()
        log.info(
            "node %s: started %s (pid %d)",
            self.plan.node,
            service.name,
            item.process.pid,
        )

    def write_status(self) -> None:
        """Restart counts per service, for `chaoscert local up` to blame."""
        status = {
            item.plan.name: {
                "pid": item.process.pid if item.process else None,
                "restarts": item.restarts,
                "last_exit": item.last_exit,
                "log": item.plan.log,
            }
            for item in self.services
        }
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(status))
        tmp.replace(self.status_file)

    def tick(self) -> None:
        now = time.monotonic()
        for item in self.services:
            if item.process is None:
                if now >= item.next_start:
                    self.start(item)
                continue
            code = item.process.poll()
            if code is None:
                if now - item.started_at > 30:
                    item.backoff_s = BACKOFF_FIRST_S
                continue
            item.restarts += 1
            item.last_exit = code
            item.process = None
            self.write_status()
            item.next_start = now + item.backoff_s
            log.warning(
                "node %s: %s exited with %s; restart %d in %.1f s",
                self.plan.node,
                item.plan.name,
                code,
                item.restarts,
                item.backoff_s,
            )
            item.backoff_s = min(item.backoff_s * 2, BACKOFF_MAX_S)

    def stop(self) -> None:
        for item in reversed(self.services):
            process = item.process
            if process is None or process.poll() is not None:
                continue
            process.terminate()
            try:
                process.wait(timeout=item.plan.stop_timeout_s)
            except subprocess.TimeoutExpired:
                log.warning(
                    "node %s: %s did not stop in %.0f s; killing it",
                    self.plan.node,
                    item.plan.name,
                    item.plan.stop_timeout_s,
                )
                process.kill()
                process.wait(timeout=5)

    def run(self) -> int:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        while not self.stopping:
            self.tick()
            time.sleep(POLL_S)
        log.info("node %s: stopping", self.plan.node)
        self.stop()
        return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m chaoscert.platforms.local.agent PLAN STACK_ID")
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    plan_file = Path(args[0])
    plan = NodePlan.from_json(plan_file.read_text())
    status_file = plan_file.parent / "run" / "agent-status.json"  # see Layout
    return Agent(plan, args[1], status_file).run()


if __name__ == "__main__":
    sys.exit(main())
