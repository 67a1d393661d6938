"""The local stack and its faults, on real etcd, Patroni, PostgreSQL and HAProxy."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest

from chaoscert.errors import ComponentError
from chaoscert.platforms.local import health
from chaoscert.platforms.local.platform import LocalPlatform
from chaoscert.platforms.local.stack import LocalStack
from tests.stack.conftest import shifted_topology

pytestmark = pytest.mark.stack

FAILOVER_BOUND_S = 90.0
STEADY_BOUND_S = 180.0


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"{what} not seen within {timeout_s:.0f} s")


def new_leader(platform: LocalPlatform, old: str) -> str | None:
    others = [n for n in platform.nodes() if n != old]
    view = health.patroni_cluster(platform.layout, others)
    return view.leader if view.leader not in (None, old) else None


def test_stack_is_steady_and_up_is_idempotent(local_platform: LocalPlatform) -> None:
    before = {s.node: s.pids for s in local_platform.stack.status()}

    seconds = local_platform.stack.up()

    after = local_platform.stack.status()
    assert all(s.state == "running" for s in after), after
    assert {s.node: s.pids for s in after} == before
    assert health.steady_state_problems(local_platform.layout, True) == []
    assert seconds < STEADY_BOUND_S


def test_app_answers_through_the_edge(local_platform: LocalPlatform) -> None:
    endpoint = local_platform.endpoint()
    body = {
        "jsonrpc": "2.0",
        "method": "call",
        "id": 1,
        "params": {"service": "common", "method": "version", "args": []},
    }

    answer = httpx.post(endpoint.base_url + "/jsonrpc", json=body, timeout=5).json()

    assert answer["result"]["server_serie"] == "17.0"


def test_primary_hang_fails_over_and_old_primary_rejoins(
    local_platform: LocalPlatform,
) -> None:
    local_platform.wait_steady(STEADY_BOUND_S)
    old = local_platform.database_primary()

    handle = local_platform.inject("database_primary_hang", "")
    try:
        assert old in handle.target
        assert local_platform.stack.group(old).frozen()
        leader = wait_for(
            lambda: new_leader(local_platform, old), FAILOVER_BOUND_S, "a new leader"
        )
    finally:
        handle.heal()

    assert not local_platform.stack.group(old).frozen()
    local_platform.wait_steady(STEADY_BOUND_S)
    view = health.patroni_cluster(local_platform.layout)
    assert view.leader == leader
    assert view.state_of(old) == "streaming"
    assert local_platform.registry.live() == []


def test_primary_crash_kills_the_node_and_heal_restarts_it(
    local_platform: LocalPlatform,
) -> None:
    local_platform.wait_steady(STEADY_BOUND_S)
    old = local_platform.database_primary()

    handle = local_platform.inject("database_primary_crash", "")
    try:
        assert local_platform.stack.group(old).pids() == []
        assert local_platform.stack.agent_pid(old) is None
        wait_for(
            lambda: new_leader(local_platform, old), FAILOVER_BOUND_S, "a new leader"
        )
    finally:
        handle.heal()

    local_platform.wait_steady(STEADY_BOUND_S)
    assert health.patroni_cluster(local_platform.layout).state_of(old) == "streaming"


def test_a_process_killed_alone_is_restarted_by_its_node(
    local_platform: LocalPlatform,
) -> None:
    local_platform.wait_steady(STEADY_BOUND_S)
    node = local_platform.stack.topology.running("app")[0]
    pid_file = local_platform.layout.run_dir(node) / "gunicorn.pid"
    old_pid = int(pid_file.read_text())

    os.kill(old_pid, signal.SIGKILL)

    wait_for(
        lambda: (
            pid_file.exists() and int(pid_file.read_text() or 0) not in (0, old_pid)
        ),
        30,
        f"a new app process on {node}",
    )
    local_platform.wait_steady(STEADY_BOUND_S)


def test_a_leftover_frozen_node_is_found_and_healed(
    local_platform: LocalPlatform,
) -> None:
    local_platform.wait_steady(STEADY_BOUND_S)
    handle = local_platform.inject("node_hang", "c2")
    # A run killed with SIGKILL leaves the record behind and heals nothing.
    record = local_platform.registry.record
    assert record is not None and record.exists()
    local_platform.registry._live.clear()

    healed = local_platform.heal_leftovers()

    assert healed and "c2" in healed[0]
    assert not local_platform.stack.group("c2").frozen()
    assert not record.exists()
    handle.healed_mono = time.monotonic()
    local_platform.wait_steady(STEADY_BOUND_S)


def test_a_component_that_cannot_start_is_named_and_the_rest_stopped() -> None:
    topology = shifted_topology(offset=12000, name="blocked-edge")
    # Under /var/tmp: the database user cannot reach pytest's private tmp_path.
    state_dir = Path(f"/var/tmp/chaoscert-test-blocked-{os.getpid()}")
    stack = LocalStack(topology, state_dir)
    blocker = _listen(topology.edge_address, topology.ports.edge)
    try:
        with pytest.raises(ComponentError) as caught:
            stack.up(steady_timeout_s=25)
        after = stack.status()
        leftovers = _marked_processes(stack.stack_id)
    finally:
        blocker.close()
        stack.down()
        shutil.rmtree(state_dir, ignore_errors=True)

    message = str(caught.value)
    assert "edge" in message
    assert str(stack.layout.log_of("edge", "haproxy")) in message
    assert all(s.state == "stopped" for s in after), after
    assert leftovers == []


def _listen(address: str, port: int):
    import socket

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen()
    return sock


def _marked_processes(stack_id: str) -> list[int]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("CHAOSCERT_STACK") == stack_id:
                found.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    return found


def _stopped(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_STOPPED
    except psutil.NoSuchProcess:
        return False


def _killed(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _undo_pids(handle) -> list[int]:
    return [step["pid"] for step in handle.details["undo"] if step["op"] == "cont"]


def _nodes_hit(platform: LocalPlatform, handle) -> list[str]:
    return [step["node"] for step in handle.details["undo"] if "node" in step]


# kind, target, what must hold while the fault is live
FAULT_EFFECTS = [
    (
        "node_hang",
        "app",
        lambda p, h: all(p.stack.group(n).frozen() for n in _nodes_hit(p, h)),
    ),
    (
        "node_crash",
        "replica",
        lambda p, h: all(not p.stack.group(n).pids() for n in _nodes_hit(p, h)),
    ),
    (
        "zone_hang",
        "primary",
        lambda p, h: (
            len(_nodes_hit(p, h)) == 2
            and all(p.stack.group(n).frozen() for n in _nodes_hit(p, h))
        ),
    ),
    (
        "zone_crash",
        "zone-c",
        lambda p, h: (
            len(_nodes_hit(p, h)) == 2
            and all(not p.stack.group(n).pids() for n in _nodes_hit(p, h))
        ),
    ),
    (
        "ingress_replica_kill",
        "",
        lambda p, h: _killed(h.details["undo"][0]["old_pid"]),
    ),
    (
        "app_replica_kill",
        "",
        lambda p, h: _killed(h.details["undo"][0]["old_pid"]),
    ),
    (
        "dcs_member_loss",
        "",
        lambda p, h: len(_undo_pids(h)) == 1 and all(map(_stopped, _undo_pids(h))),
    ),
    (
        "dcs_quorum_loss",
        "",
        lambda p, h: len(_undo_pids(h)) == 2 and all(map(_stopped, _undo_pids(h))),
    ),
    (
        "replication_stall",
        "",
        lambda p, h: len(_undo_pids(h)) == 2 and all(map(_stopped, _undo_pids(h))),
    ),
]


@pytest.mark.parametrize(
    ("kind", "target", "effect"), FAULT_EFFECTS, ids=[f[0] for f in FAULT_EFFECTS]
)
def test_each_fault_acts_and_heals_back_to_steady_state(
    local_platform: LocalPlatform, kind: str, target: str, effect
) -> None:
    local_platform.wait_steady(STEADY_BOUND_S)

    handle = local_platform.inject(kind, target)
    try:
        assert effect(local_platform, handle), handle.details
    finally:
        handle.heal()

    assert handle.healed
    assert local_platform.registry.live() == []
    local_platform.wait_steady(STEADY_BOUND_S)
    assert not any(
        local_platform.stack.group(n).frozen() for n in local_platform.layout.nodes()
    )


def test_switchover_moves_the_leader_to_a_replica(
    local_platform: LocalPlatform,
) -> None:
    local_platform.wait_steady(STEADY_BOUND_S)
    old = local_platform.database_primary()

    handle = local_platform.inject("database_switchover", "replica")

    new = local_platform.database_primary()
    assert new != old
    assert handle.target == f"primary {old} to {new}"
    handle.heal()
    local_platform.wait_steady(STEADY_BOUND_S)


# Last: it takes the session's stack down.
def test_down_leaves_no_process_and_no_lock(local_platform: LocalPlatform) -> None:
    stack = local_platform.stack

    stack.down()

    assert not _marked_processes(stack.stack_id)
    assert all(s.state == "stopped" and s.pids == 0 for s in stack.status())
    for lock in (stack.layout.lock_file, stack.layout.run_lock_file):
        if lock.exists():  # present but held by nobody: no stale lock
            with open(lock) as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert not any(
        stack.layout.agent_pid_file(n).exists() for n in stack.layout.nodes()
    )
