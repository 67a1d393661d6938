"""Faults on a Kubernetes cluster, each recording the steps that undo it.

Every fault appends its undo step to the fault's record *before* it acts, so
a fault that fails halfway, or a run killed in the middle, is healed by
replaying the record (newest first). Pod kills delete with grace 0, as a
crash. A node is lost in one of three ways, chosen by the target profile:
its kind container paused (hang) or killed (crash); a NoExecute taint plus
force-deleting its pods; or a drain through the Eviction API, which respects
PodDisruptionBudgets (a 429 is retried for a bounded time, then reported
naming the pod).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from kubernetes import client

from chaoscert.errors import ChaoscertError, FaultError
from chaoscert.platforms.kubernetes.api import EvictionBlocked, KubeApi, NotFound

log = logging.getLogger("chaoscert.kubernetes.faults")

Undo = dict[str, Any]
EVICTION_RETRY_S = 30.0
EVICTION_PAUSE_S = 2.0


class NodeContainers(Protocol):
    """What node faults need of kind: pause, unpause, kill and start a node."""

    def pause(self, node: str) -> None: ...
    def unpause(self, node: str) -> None: ...
    def stop(self, node: str) -> None: ...
    def start(self, node: str) -> None: ...


def movable(pod: client.V1Pod) -> bool:
    """Pods a drain moves: not DaemonSet pods, not static (mirror) pods."""
    meta = pod.metadata
    if meta is None:
        return False
    if "kubernetes.io/config.mirror" in (meta.annotations or {}):
        return False
    return not any(ref.kind == "DaemonSet" for ref in (meta.owner_references or []))


def pod_name(pod: client.V1Pod) -> tuple[str, str]:
    meta = pod.metadata
    if meta is None or not meta.name or not meta.namespace:
        raise FaultError("the API returned a pod without a name or namespace")
    return meta.namespace, meta.name


def running(pods: list[client.V1Pod]) -> list[client.V1Pod]:
    return [
        pod
        for pod in pods
        if pod.status is not None
        and pod.status.phase == "Running"
        and not (pod.metadata and pod.metadata.deletion_timestamp)
    ]


def pick_pod(
    api: KubeApi, namespace: str, selector: str, node: str = ""
) -> tuple[str, str]:
    """The running pod a kill hits: on `node` if given; the first by name."""
    candidates = running(api.pods(namespace, selector))
    if node:
        candidates = [p for p in candidates if p.spec and p.spec.node_name == node]
    if not candidates:
        where = f" on node {node}" if node else ""
        raise FaultError(f"no running pod matches {selector} in {namespace}{where}")
    return pod_name(sorted(candidates, key=lambda pod: pod_name(pod)[1])[0])


def kill_pod(api: KubeApi, namespace: str, name: str) -> None:
    """Delete a pod with grace 0; its controller replaces it, nothing to undo."""
    if not api.delete_pod(namespace, name, grace_s=0):
        raise FaultError(f"pod {namespace}/{name} was already gone")


def pause_node(kind: NodeContainers, node: str, undo: list[Undo]) -> None:
    undo.append({"op": "unpause", "node": node})
    kind.pause(node)


def kill_node_container(kind: NodeContainers, node: str, undo: list[Undo]) -> None:
    undo.append({"op": "start", "node": node})
    kind.stop(node)


def taint_node(api: KubeApi, node: str, undo: list[Undo]) -> None:
    """Lose a node: cordon, NoExecute taint, then force-delete its pods."""
    undo.append({"op": "uncordon", "node": node})
    api.set_unschedulable(node, True)
    undo.append({"op": "untaint", "node": node})
    api.set_fault_taint(node, present=True)
    for pod in api.pods_on_node(node):
        if movable(pod):
            api.delete_pod(*pod_name(pod), grace_s=0)


def drain_node(
    api: KubeApi, node: str, undo: list[Undo], retry_s: float | None = None
) -> None:
    """Cordon a node and evict its pods, respecting PodDisruptionBudgets; a
    budget that refuses longer than `retry_s` (default 30 s) fails the fault."""
    retry_s = EVICTION_RETRY_S if retry_s is None else retry_s
    undo.append({"op": "uncordon", "node": node})
    api.set_unschedulable(node, True)
    for pod in api.pods_on_node(node):
        if movable(pod):
            _evict_within(api, pod, retry_s)


def _evict_within(api: KubeApi, pod: client.V1Pod, retry_s: float) -> None:
    namespace, name = pod_name(pod)
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


def undo_all(api: KubeApi, kind: NodeContainers | None, steps: list[Undo]) -> None:
    """Heal: replay every undo step, newest first, even when one fails."""
    actions: dict[str, Callable[[str], None]] = {
        "uncordon": lambda node: api.set_unschedulable(node, False),
        "untaint": lambda node: api.set_fault_taint(node, present=False),
    }
    if kind is not None:
        actions["unpause"] = kind.unpause
        actions["start"] = kind.start
    errors = []
    for step in reversed(steps):
        action = actions.get(step.get("op", ""))
        try:
            if action is None:
                raise FaultError(f"no way to undo {step.get('op')!r} on this target")
            action(str(step["node"]))
        except NotFound:
            log.warning("node %s is gone; nothing to undo there", step.get("node"))
        except ChaoscertError as exc:  # every step is tried, errors reported
            errors.append(f"{step.get('op')} {step.get('node')}: {exc}")
    if errors:
        raise FaultError("; ".join(errors))
