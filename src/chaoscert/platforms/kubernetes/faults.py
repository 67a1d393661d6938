"""Faults on a Kubernetes cluster, each returning the action that heals it.

Pod kills delete with grace 0, as a crash; a node is lost either by a
NoExecute taint plus force-deleting its pods, or drained through the Eviction
API, which respects PodDisruptionBudgets (a 429 is retried for a bounded time
and then reported, naming the pod).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kubernetes import client

from chaoscert.errors import FaultError
from chaoscert.platforms.kubernetes.api import EvictionBlocked, KubeApi

log = logging.getLogger("chaoscert.kubernetes.faults")

Heal = Callable[[], None]
EVICTION_RETRY_S = 30.0
EVICTION_PAUSE_S = 2.0


def _movable(pod: client.V1Pod) -> bool:
    """Pods a drain moves: not DaemonSet pods, not static (mirror) pods."""
    meta = pod.metadata
    if meta is None:
        return False
    if "kubernetes.io/config.mirror" in (meta.annotations or {}):
        return False
    return not any(ref.kind == "DaemonSet" for ref in (meta.owner_references or []))


def _name(pod: client.V1Pod) -> tuple[str, str]:
    meta = pod.metadata
    assert meta is not None and meta.name and meta.namespace
    return meta.namespace, meta.name


def kill_one_pod(api: KubeApi, namespace: str, selector: str) -> tuple[str, Heal]:
    """Delete one running pod matching `selector` with grace 0; its controller
    replaces it, so healing has nothing to undo."""
    running = [
        pod
        for pod in api.pods(namespace, selector)
        if pod.status is not None and pod.status.phase == "Running"
    ]
    if not running:
        raise FaultError(f"no running pod matches {selector} in {namespace}")
    victim = sorted(running, key=lambda pod: _name(pod)[1])[0]
    namespace, name = _name(victim)
    api.delete_pod(namespace, name, grace_s=0)
    return f"pod {namespace}/{name}", lambda: None


def taint_node(api: KubeApi, node: str) -> Heal:
    """Lose a node: NoExecute taint and cordon, then force-delete its pods."""

    def heal() -> None:
        api.set_fault_taint(node, present=False)
        api.set_unschedulable(node, False)

    api.set_unschedulable(node, True)
    api.set_fault_taint(node, present=True)
    for pod in api.pods_on_node(node):
        if _movable(pod):
            api.delete_pod(*_name(pod), grace_s=0)
    return heal


def drain_node(api: KubeApi, node: str, retry_s: float = EVICTION_RETRY_S) -> Heal:
    """Cordon a node and evict its pods, respecting PodDisruptionBudgets."""

    def heal() -> None:
        api.set_unschedulable(node, False)

    api.set_unschedulable(node, True)
    try:
        for pod in api.pods_on_node(node):
            if _movable(pod):
                _evict_within(api, pod, retry_s)
    except FaultError:
        heal()
        raise
    return heal


def _evict_within(api: KubeApi, pod: client.V1Pod, retry_s: float) -> None:
    namespace, name = _name(pod)
    deadline = time.monotonic() + retry_s
    while True:
        try:
            api.evict_pod(namespace, name)
            return
        except EvictionBlocked:
            if time.monotonic() + EVICTION_PAUSE_S > deadline:
                raise EvictionBlocked(
                    f"eviction of pod {namespace}/{name} still blocked by a"
                    f" PodDisruptionBudget after {retry_s:.0f} s"
                ) from None
            log.info("eviction of %s/%s blocked by a PDB; retrying", namespace, name)
            time.sleep(EVICTION_PAUSE_S)
