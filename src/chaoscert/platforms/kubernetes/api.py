"""The Kubernetes calls chaoscert makes, each bounded, errors mapped once here.

Only this module talks to the official client; the platform and its faults
see chaoscert errors: NotFound for 404, Conflict for 409, EvictionBlocked for
a 429 from the Eviction API (a PodDisruptionBudget said no).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from chaoscert.errors import ChaoscertError, FaultError

log = logging.getLogger("chaoscert.kubernetes")

T = TypeVar("T")
FAULT_TAINT_KEY = "chaoscert.io/fault"
# Every patch chaoscert sends is a JSON merge patch. The client would pick
# JSON Patch for a node by default, which needs a list of operations.
MERGE_PATCH = "application/merge-patch+json"
TAINT_CONFLICT_RETRIES = 5


class KubeError(ChaoscertError):
    """The API server answered with an error or did not answer in time."""


class NotFound(KubeError):
    pass


class Conflict(KubeError):
    pass


class Throttled(KubeError):
    """429: the API server asks to slow down (or, for an eviction, a PDB)."""


class EvictionBlocked(FaultError):
    """The Eviction API refused (429): a PodDisruptionBudget would be violated."""


class KubeApi:
    """The few calls of the Kubernetes API chaoscert needs, with timeouts."""

    def __init__(self, api_client: client.ApiClient, timeout_s: float = 10.0):
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.discovery = client.DiscoveryV1Api(api_client)
        self.coordination = client.CoordinationV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.timeout_s = timeout_s

    @classmethod
    def connect(
        cls, configuration: client.Configuration, timeout_s: float = 10.0
    ) -> KubeApi:
        """An API bound to `configuration`. urllib3 would retry a timed-out call
        three times, quadrupling every bound; chaoscert retries where it means to."""
        configuration.retries = 0
        return cls(client.ApiClient(configuration), timeout_s)

    def close(self) -> None:
        self.api_client.close()  # type: ignore[no-untyped-call]

    def _call(self, what: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return _within(
                what,
                self.timeout_s,
                lambda: func(*args, _request_timeout=self.timeout_s, **kwargs),
            )
        except ApiException as exc:
            status = int(exc.status or 0)
            if status == 404:
                raise NotFound(f"{what}: not found") from None
            if status == 409:
                raise Conflict(f"{what}: conflict") from None
            if status == 429:
                # The Eviction API says no with 429; so does the API server's
                # own throttling, on any call: only evict_pod reads it as a PDB.
                raise Throttled(f"{what}: too many requests (429)") from None
            raise KubeError(
                f"{what}: HTTP {status} {exc.reason or ''}".strip()
            ) from None
        except (Urllib3Error, OSError) as exc:
            raise KubeError(f"{what}: {_failure(exc, self.timeout_s)}") from None

    # -- pods -------------------------------------------------------------------
    def pods(self, namespace: str, selector: str) -> list[client.V1Pod]:
        result = self._call(
            f"list pods {selector} in {namespace}",
            self.core.list_namespaced_pod,
            namespace,
            label_selector=selector,
        )
        return list(result.items or [])

    def pods_on_node(self, node: str) -> list[client.V1Pod]:
        result = self._call(
            f"list pods on node {node}",
            self.core.list_pod_for_all_namespaces,
            field_selector=f"spec.nodeName={node}",
        )
        return list(result.items or [])

    def pod_log(self, namespace: str, name: str, since_s: int, tail_lines: int) -> str:
        """What the pod's containers logged in the last ``since_s`` seconds, at
        most ``tail_lines`` lines, each with the kubelet's timestamp."""
        text = self._call(
            f"read the log of pod {namespace}/{name}",
            self.core.read_namespaced_pod_log,
            name,
            namespace,
            since_seconds=max(1, since_s),
            tail_lines=tail_lines,
            timestamps=True,
        )
        return str(text or "")

    def delete_pod(self, namespace: str, name: str, grace_s: int = 0) -> bool:
        """Delete a pod (grace 0: at once, as a crash); False if it was gone."""
        try:
            self._call(
                f"delete pod {namespace}/{name}",
                self.core.delete_namespaced_pod,
                name,
                namespace,
                grace_period_seconds=grace_s,
                body=client.V1DeleteOptions(grace_period_seconds=grace_s),
            )
        except NotFound:
            return False
        return True

    def evict_pod(self, namespace: str, name: str) -> bool:
        """Evict a pod through the Eviction API, which respects PDBs."""
        body = client.V1Eviction(
            metadata=client.V1ObjectMeta(name=name, namespace=namespace)
        )
        try:
            self._call(
                f"evict pod {namespace}/{name}",
                self.core.create_namespaced_pod_eviction,
                name,
                namespace,
                body,
            )
        except NotFound:
            return False
        except Throttled:
            raise EvictionBlocked(
                f"evict pod {namespace}/{name}: refused (429), a"
                " PodDisruptionBudget would be violated"
            ) from None
        return True

    # -- nodes ------------------------------------------------------------------
    def node(self, name: str) -> client.V1Node:
        return self._call(f"read node {name}", self.core.read_node, name)

    def nodes(self, selector: str = "") -> list[client.V1Node]:
        result = self._call(
            f"list nodes {selector}".strip(),
            self.core.list_node,
            label_selector=selector or None,
        )
        return list(result.items or [])

    def set_unschedulable(self, name: str, value: bool) -> None:
        """Cordon (True) or uncordon (False) a node."""
        self._call(
            f"{'cordon' if value else 'uncordon'} node {name}",
            self.core.patch_node,
            name,
            {"spec": {"unschedulable": value}},
            _content_type=MERGE_PATCH,
        )

    def set_fault_taint(self, name: str, present: bool) -> None:
        """Add or remove chaoscert's NoExecute taint, keeping every other taint.

        A merge patch replaces the whole list, so it carries the node's
        resourceVersion: a taint the node controller adds meanwhile makes the
        patch fail with 409 and the list is read again, a bounded number of
        times."""
        for attempt in range(TAINT_CONFLICT_RETRIES):
            node = self.node(name)
            taints = [
                {
                    "key": t.key,
                    "value": t.value,
                    "effect": t.effect,
                    **({"timeAdded": t.time_added.isoformat()} if t.time_added else {}),
                }
                for t in ((node.spec.taints if node.spec else None) or [])
                if t.key != FAULT_TAINT_KEY
            ]
            if present:
                taints.append(
                    {
                        "key": FAULT_TAINT_KEY,
                        "value": "node-lost",
                        "effect": "NoExecute",
                    }
                )
            version = node.metadata.resource_version if node.metadata else None
            try:
                self._call(
                    f"{'taint' if present else 'untaint'} node {name}",
                    self.core.patch_node,
                    name,
                    {
                        "metadata": {"resourceVersion": version},
                        "spec": {"taints": taints},
                    },
                    _content_type=MERGE_PATCH,
                )
                return
            except Conflict:
                log.info("node %s changed meanwhile (attempt %d)", name, attempt + 1)
        raise Conflict(
            f"node {name} kept changing; its taints could not be written after"
            f" {TAINT_CONFLICT_RETRIES} attempts"
        )

    # -- what the cluster did -----------------------------------------------------
    def endpoint_slices(self, namespace: str) -> list[client.V1EndpointSlice]:
        result = self._call(
            f"list endpoint slices in {namespace}",
            self.discovery.list_namespaced_endpoint_slice,
            namespace,
        )
        return list(result.items or [])

    def events(self, namespace: str) -> list[client.CoreV1Event]:
        result = self._call(
            f"list events in {namespace}",
            self.core.list_namespaced_event,
            namespace,
        )
        return list(result.items or [])

    # -- leases: one run per target ---------------------------------------------
    def lease(self, namespace: str, name: str) -> client.V1Lease:
        return self._call(
            f"read lease {namespace}/{name}",
            self.coordination.read_namespaced_lease,
            name,
            namespace,
        )

    def create_lease(self, namespace: str, body: client.V1Lease) -> client.V1Lease:
        return self._call(
            f"create lease in {namespace}",
            self.coordination.create_namespaced_lease,
            namespace,
            body,
        )

    def replace_lease(
        self, namespace: str, name: str, body: client.V1Lease
    ) -> client.V1Lease:
        """Replace a lease; its resourceVersion makes a concurrent change a 409."""
        return self._call(
            f"replace lease {namespace}/{name}",
            self.coordination.replace_namespaced_lease,
            name,
            namespace,
            body,
        )

    def delete_lease(
        self, namespace: str, name: str, resource_version: str | None = None
    ) -> None:
        """Delete a lease; with `resource_version`, only that version of it."""
        options = client.V1DeleteOptions(
            preconditions=client.V1Preconditions(resource_version=resource_version)
            if resource_version
            else None
        )
        with contextlib.suppress(NotFound):
            self._call(
                f"delete lease {namespace}/{name}",
                self.coordination.delete_namespaced_lease,
                name,
                namespace,
                body=options,
            )

    # -- operators ----------------------------------------------------------------
    def custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str
    ) -> dict[str, Any]:
        result = self._call(
            f"read {plural} {namespace}/{name}",
            self.custom.get_namespaced_custom_object,
            group,
            version,
            namespace,
            plural,
            name,
        )
        if not isinstance(result, dict):
            raise KubeError(f"read {plural} {namespace}/{name}: not an object")
        return result

    def patch_custom_status(
        self,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        name: str,
        body: dict[str, Any],
    ) -> None:
        self._call(
            f"patch status of {plural} {namespace}/{name}",
            self.custom.patch_namespaced_custom_object_status,
            group,
            version,
            namespace,
            plural,
            name,
            body,
            _content_type=MERGE_PATCH,
        )

    def post_to_pod(
        self,
        namespace: str,
        pod: str,
        port: int,
        path: str,
        body: dict[str, Any],
        timeout_s: float | None = None,
    ) -> tuple[int, str]:
        """POST JSON to a pod's port through the API server's proxy; status and
        body text. Used for Patroni's REST API, which listens inside the pod."""
        what = f"POST {path} to pod {namespace}/{pod}:{port}"
        method, url, headers, data, _ = self.api_client.param_serialize(
            method="POST",
            resource_path="/api/v1/namespaces/{namespace}/pods/{name}/proxy/{path}",
            path_params={
                "namespace": namespace,
                "name": f"{pod}:{port}",
                "path": path.lstrip("/"),
            },
            header_params={
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            body=body,
            auth_settings=["BearerToken"],
        )
        bound_s = timeout_s or self.timeout_s

        def post() -> tuple[Any, str]:
            response = self.api_client.call_api(
                method, url, headers, data, _request_timeout=bound_s
            )
            text = response.read().decode("utf-8", "replace")  # type: ignore[no-untyped-call]
            return response, text

        try:
            response, text = _within(what, bound_s, post)
        except (Urllib3Error, OSError) as exc:
            raise KubeError(f"{what}: {_failure(exc, bound_s)}") from None
        except ApiException as exc:
            return int(exc.status or 0), str(exc.body or "")
        return int(response.status), text


def _failure(exc: Exception, bound_s: float) -> str:
    """What kept the API's answer from arriving, in a few words."""
    cause = getattr(exc, "reason", None) or exc  # MaxRetryError wraps the cause
    if isinstance(cause, Urllib3Timeout | TimeoutError):
        return f"no complete answer within {bound_s:g} s"
    return type(cause).__name__


def _within(what: str, bound_s: float, call: Callable[[], T]) -> T:
    """`call()`, or KubeError once `bound_s` seconds have passed without its end.

    urllib3's timeouts bound each socket operation, not the call: an API
    server, or a proxy before it, that answers a byte at a time would hold
    the caller as long as it drips. The call runs in a thread of its own; one
    past its bound is left to end when the server stops, its thread a daemon
    that never keeps chaoscert from exiting.
    """
    outcome: Future[T] = Future()

    def run() -> None:
        try:
            outcome.set_result(call())
        except BaseException as exc:
            outcome.set_exception(exc)

    threading.Thread(target=run, name="chaoscert-kube-call", daemon=True).start()
    try:
        return outcome.result(timeout=bound_s)
    except TimeoutError:
        raise KubeError(f"{what}: no complete answer within {bound_s:g} s") from None
