"""The faults of the local stack, each with the undo steps that heal it.

A fault records its undo steps in the handle's details, so a later run can
replay them when the run that injected it was killed before it could heal.
Undo steps: ``thaw`` a node, ``start`` a node, ``cont`` a stopped process,
``await`` a program its node restarts by itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import httpx
import psutil

from chaoscert.errors import FaultError
from chaoscert.platforms import http
from chaoscert.platforms.local import health
from chaoscert.platforms.local.stack import LocalStack

log = logging.getLogger("chaoscert.local.faults")

ACT_TIMEOUT_S = 10.0
RESTART_TIMEOUT_S = 60.0
SWITCHOVER_TIMEOUT_S = 60.0

Undo = dict[str, Any]


def service_pid(stack: LocalStack, node: str, service: str) -> int | None:
    """The pid of `service` on `node`, as its node agent last reported it."""
    try:
        status = json.loads(stack.layout.agent_status_file(node).read_text())
    except (OSError, ValueError):
        return None
    pid = status.get(service, {}).get("pid")
    # The status file may be stale: only a pid inside the node's own group is
    # the program, never a process that reused the number.
    if not pid or int(pid) not in stack.group(node).pids():
        return None
    return int(pid)


# Every act appends its undo step to `undo` before it acts, so a fault that
# fails or is interrupted halfway is still healed for what it did.


def freeze_nodes(stack: LocalStack, nodes: list[str], undo: list[Undo]) -> None:
    for node in nodes:
        undo.append({"op": "thaw", "node": node})
        stack.group(node).freeze(ACT_TIMEOUT_S)


def kill_nodes(stack: LocalStack, nodes: list[str], undo: list[Undo]) -> None:
    for node in nodes:
        undo.append({"op": "start", "node": node})
        stack.group(node).kill(ACT_TIMEOUT_S)


def kill_service(stack: LocalStack, node: str, service: str, undo: list[Undo]) -> None:
    """Kill one program and its children at once, as a container is killed."""
    pid = service_pid(stack, node, service)
    if pid is None:
        raise FaultError(f"no running {service} on node {node} to kill")
    undo.append({"op": "await", "node": node, "service": service, "old_pid": pid})
    try:
        root = psutil.Process(pid)
        victims = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        victims = []
    for proc in victims:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(victims, timeout=ACT_TIMEOUT_S)


def stop_processes(pids: list[int], undo: list[Undo]) -> None:
    """SIGSTOP: the process keeps its sockets and answers nothing."""
    for pid in pids:
        undo.append({"op": "cont", "pid": pid})
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)


def walsender_pids(stack: LocalStack, node: str) -> list[int]:
    """The WAL senders of the PostgreSQL primary on `node`, one per replica.

    Stopping them, not the replicas' receivers, keeps WAL from leaving the
    primary's host: a stopped receiver's kernel would still take it in.
    """
    found = []
    for pid in stack.group(node).pids():
        try:
            if "walsender" in " ".join(psutil.Process(pid).cmdline()):
                found.append(pid)
        except psutil.Error:
            continue
    return found


def switchover(stack: LocalStack, leader: str, candidate: str) -> float:
    """Ask Patroni for a planned switchover; return seconds until `candidate` leads."""
    started = time.monotonic()
    try:
        response = http.request(
            "POST",
            stack.layout.patroni_url(leader) + "/switchover",
            SWITCHOVER_TIMEOUT_S,
            json={"leader": leader, "candidate": candidate},
        )
    except httpx.HTTPError as exc:
        raise FaultError(
            f"Patroni on {leader} did not take the switchover: {exc}"
        ) from None
    if response.status_code != 200:
        raise FaultError(
            f"Patroni on {leader} refused the switchover to {candidate}:"
            f" HTTP {response.status_code} {response.text.strip()[:200]}"
        )
    deadline = started + SWITCHOVER_TIMEOUT_S
    while time.monotonic() < deadline:
        if health.patroni_cluster(stack.layout).leader == candidate:
            return time.monotonic() - started
        time.sleep(0.2)
    raise FaultError(
        f"{candidate} did not become leader within {SWITCHOVER_TIMEOUT_S} s"
    )


def undo_all(stack: LocalStack, steps: list[Undo]) -> None:
    """Heal: replay every undo step, newest first, even when one fails."""
    errors = []
    for step in reversed(steps):
        try:
            UNDO[step["op"]](stack, step)
        except (FaultError, OSError) as exc:
            errors.append(f"{step['op']} {step.get('node', step.get('pid'))}: {exc}")
    if errors:
        raise FaultError("; ".join(errors))


def _thaw(stack: LocalStack, step: Undo) -> None:
    stack.group(step["node"]).thaw(ACT_TIMEOUT_S)


def _start(stack: LocalStack, step: Undo) -> None:
    stack.start_node(step["node"])


def _cont(stack: LocalStack, step: Undo) -> None:
    pid = int(step["pid"])
    # Only a process of this stack: a record replayed later may name a pid
    # that now belongs to something else.
    if any(pid in stack.group(node).pids() for node in stack.layout.nodes()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def _await(stack: LocalStack, step: Undo) -> None:
    """A killed program comes back by its node's restart; wait for it, bounded."""
    if stack.agent_pid(step["node"]) is None:
        return  # the node is not running: starting it brings the program back
    deadline = time.monotonic() + RESTART_TIMEOUT_S
    while time.monotonic() < deadline:
        pid = service_pid(stack, step["node"], step["service"])
        if pid is not None and pid != step.get("old_pid"):
            return
        time.sleep(0.2)
    raise FaultError(
        f"{step['service']} on {step['node']} was not restarted by its node"
        f" within {RESTART_TIMEOUT_S:.0f} s"
    )


UNDO: dict[str, Callable[[LocalStack, Undo], None]] = {
    "thaw": _thaw,
    "start": _start,
    "cont": _cont,
    "await": _await,
}
