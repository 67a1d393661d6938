"""A Kubernetes cluster as a Platform, reached through a target profile.

Faults go through the official client (and, on kind, through docker on the
node containers); every fault records its undo steps on disk before it acts.
Destructive faults run only on a context the profile allows. One run holds a
target at a time, by a Lease in the application namespace that it renews
while it runs. What Kubernetes did meanwhile (node conditions, pod phases,
ready endpoints, events) is polled into the run's events.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import httpx
import yaml
from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.config.config_exception import ConfigException

from chaoscert.errors import (
    ChaoscertError,
    ComponentError,
    ConfigError,
    FaultError,
    FaultNotApplicable,
)
from chaoscert.platforms import http
from chaoscert.platforms.base import (
    Endpoint,
    FaultHandle,
    FaultRegistry,
    Platform,
    heal_leftovers_with,
)
from chaoscert.platforms.kubernetes import faults
from chaoscert.platforms.kubernetes.api import (
    FAULT_TAINT_KEY,
    Conflict,
    KubeApi,
    KubeError,
)
from chaoscert.platforms.kubernetes.faults import NodeContainers, Undo
from chaoscert.platforms.logs import LogText, excerpt
from chaoscert.targets import TargetProfile, load_target

log = logging.getLogger("chaoscert.kubernetes")
# Evidence, not monitoring: a few pods per group, a bounded tail of each.
LOG_PODS_PER_GROUP = 6
POD_LOG_LINES = 400

Act = Callable[[list[Undo]], None]
LEASE_NAME = "chaoscert-run"
LEASE_DURATION_S = 60
LEASE_RENEW_S = 15.0
NEW_PRIMARY_TIMEOUT_S = 120.0
OBSERVE_EVERY_S = 1.0
STEADY_POLL_S = 2.0
HEALTH_TIMEOUT_S = 5.0
CNPG = ("postgresql.cnpg.io", "v1", "clusters")
PATRONI_PORT = 8008
PATRONI_SWITCHOVER_TIMEOUT_S = 45.0

NOT_APPLICABLE = {
    "dcs_member_loss": (
        "the kubernetes platform does not stop members of the database's"
        " consensus store (CloudNativePG keeps its state in the Kubernetes API)"
    ),
    "dcs_quorum_loss": (
        "the kubernetes platform does not stop members of the database's"
        " consensus store (CloudNativePG keeps its state in the Kubernetes API)"
    ),
    "replication_stall": (
        "stalling WAL senders needs a shell inside the primary's pod, which"
        " chaoscert does not use on a cluster"
    ),
}


def micro_now() -> dt.datetime:
    """Now, never on a whole second: the client writes datetimes with
    isoformat(), which drops the fraction at 0 µs, and a Lease's MicroTime
    fields want it."""
    now = dt.datetime.now(dt.UTC)
    return now if now.microsecond else now.replace(microsecond=1)


def kube_configuration(
    profile: TargetProfile, kubeconfig: Path | None, source: Path
) -> client.Configuration:
    """The client configuration of the profile's context; ConfigError otherwise,
    naming the kubeconfig and the context but never its credentials."""
    path = str(kubeconfig) if kubeconfig else os.environ.get("KUBECONFIG") or None
    shown = path or "~/.kube/config"
    configuration = client.Configuration()
    try:
        contexts, _ = kube_config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=path
        )
        names = [str(c.get("name")) for c in contexts or []]
        if profile.context not in names:
            raise ConfigError(
                f"{source}: context {profile.context!r} is not in kubeconfig"
                f" {shown} (contexts: {', '.join(names) or 'none'})"
            )
        with _CredentialPluginErrors() as plugin:
            kube_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path,
                context=profile.context,
                client_configuration=configuration,
                persist_config=False,
            )
        if plugin.failed:
            raise ConfigError(
                f"kubeconfig {shown}: the credential plugin of context"
                f" {profile.context!r} failed (its output is not shown: it may"
                " hold secrets)"
            )
    except ConfigException as exc:
        first = str(exc).splitlines()[0][:200] if str(exc) else "unreadable"
        raise ConfigError(f"kubeconfig {shown}: {first}") from None
    except (
        OSError,
        ValueError,
        TypeError,
        AttributeError,
        KeyError,
        yaml.YAMLError,
    ) as exc:
        # A malformed file trips the loader in many ways; its text may hold
        # credentials, so only the kind of error is shown.
        raise ConfigError(
            f"kubeconfig {shown}: unreadable ({type(exc).__name__})"
        ) from None
    return configuration


class _CredentialPluginErrors(logging.Filter):
    """The client logs an exec credential plugin's failure, stderr included,
    on the root logger and goes on without credentials. Drop those records
    (they may hold a token) and remember that the plugin failed."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def filter(self, record: logging.LogRecord) -> bool:
        if f"kubernetes{os.sep}config" in record.pathname:
            self.failed = True
            return False
        return True

    def __enter__(self) -> _CredentialPluginErrors:
        logging.getLogger().addFilter(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeFilter(self)


class KubernetesPlatform(Platform):
    """Faults on a Kubernetes cluster described by a target profile."""

    name = "kubernetes"

    def __init__(
        self,
        target: Path,
        state_dir: Path,
        kubeconfig: Path | None = None,
        configuration: client.Configuration | None = None,
        nodes: NodeContainers | None = None,
    ):
        super().__init__()
        self.target_path = target
        self.profile = load_target(target)
        self.kubeconfig = kubeconfig
        self._configuration = configuration
        self._nodes = nodes
        self.registry = FaultRegistry(
            state_dir / "targets" / self.profile.name / "live-faults.json"
        )
        self._api: KubeApi | None = None
        self._watch_api: KubeApi | None = None
        self._lease_stop = threading.Event()
        self._lease_thread: threading.Thread | None = None
        self._holder = f"{socket.gethostname()}/{os.getpid()}"
        self.lease_lost = False
        self._baseline: dict[str, int] = {}
        self._since = dt.datetime.now(dt.UTC)
        self._seen: dict[str, Any] = {}
        self._last_observed = 0.0
        self._last_fault_mono: float | None = None

    # -- connection ----------------------------------------------------------
    @property
    def api(self) -> KubeApi:
        if self._api is None:
            configuration = self._configuration or kube_configuration(
                self.profile, self.kubeconfig, self.target_path
            )
            self._configuration = configuration
            self._api = KubeApi.connect(configuration)
            self._watch_api = KubeApi(self._api.api_client, timeout_s=3.0)
        return self._api

    @property
    def watch_api(self) -> KubeApi:
        _ = self.api
        assert self._watch_api is not None
        return self._watch_api

    @property
    def node_containers(self) -> NodeContainers:
        if self._nodes is None:
            from chaoscert.platforms.kubernetes.kind import KindNodes

            cluster = self.profile.node_faults.kind_cluster
            if cluster is None:
                raise FaultError("the profile does not name a kind cluster")
            self._nodes = KindNodes(cluster)
        return self._nodes

    def endpoint(self) -> Endpoint:
        login, password = self.profile.odoo.credentials(self.target_path)
        return Endpoint(
            base_url=self.profile.base_url,
            database=self.profile.odoo.database,
            login=login,
            password=password,
        )

    # -- one run at a time -----------------------------------------------------
    def acquire(self) -> None:
        """Refuse a context the profile protects, then take the target's lease."""
        self.profile.refuse_unless_allowed(self.profile.context, "faults")
        namespace = self.profile.namespaces.app
        now = micro_now()
        body = self._lease_body(now)
        try:
            self.api.create_lease(namespace, body)
        except Conflict:
            self._take_expired_lease(namespace, now)
        self._lease_stop.clear()
        self._lease_thread = threading.Thread(
            target=self._renew_lease, name="chaoscert-lease", daemon=True
        )
        self._lease_thread.start()
        log.info("holding lease %s/%s as %s", namespace, LEASE_NAME, self._holder)

    def _lease_body(
        self, now: dt.datetime, resource_version: str | None = None
    ) -> client.V1Lease:
        return client.V1Lease(
            metadata=client.V1ObjectMeta(
                name=LEASE_NAME,
                resource_version=resource_version,
                labels={"app.kubernetes.io/managed-by": "chaoscert"},
            ),
            spec=client.V1LeaseSpec(
                holder_identity=self._holder,
                lease_duration_seconds=LEASE_DURATION_S,
                acquire_time=now,
                renew_time=now,
            ),
        )

    def _take_expired_lease(self, namespace: str, now: dt.datetime) -> None:
        lease = self.api.lease(namespace, LEASE_NAME)
        spec = lease.spec
        holder = (spec.holder_identity if spec else None) or "unknown"
        renewed = spec.renew_time if spec else None
        duration = (spec.lease_duration_seconds if spec else None) or 0
        if renewed is not None and (now - renewed).total_seconds() < duration:
            raise ChaoscertError(
                f"target {self.profile.name}: another run holds it (lease"
                f" {namespace}/{LEASE_NAME} held by {holder}, renewed"
                f" {(now - renewed).total_seconds():.0f} s ago); wait for it to end"
            )
        version = lease.metadata.resource_version if lease.metadata else None
        log.warning("taking over lease %s left by %s", LEASE_NAME, holder)
        self.api.replace_lease(namespace, LEASE_NAME, self._lease_body(now, version))

    def _renew_lease(self) -> None:
        namespace = self.profile.namespaces.app
        while not self._lease_stop.wait(LEASE_RENEW_S):
            try:
                lease = self.watch_api.lease(namespace, LEASE_NAME)
                if lease.spec is None or lease.spec.holder_identity != self._holder:
                    log.error(
                        "lease %s was taken by another run; no further fault",
                        LEASE_NAME,
                    )
                    self.lease_lost = True
                    return
                lease.spec.renew_time = micro_now()
                self.watch_api.replace_lease(namespace, LEASE_NAME, lease)
            except ChaoscertError as exc:
                log.warning("could not renew lease %s: %s", LEASE_NAME, exc)

    def release(self) -> None:
        if self._lease_thread is None:
            return
        self._lease_stop.set()
        self._lease_thread.join(LEASE_RENEW_S)
        self._lease_thread = None
        namespace = self.profile.namespaces.app
        try:
            lease = self.api.lease(namespace, LEASE_NAME)
            holder = lease.spec.holder_identity if lease.spec else None
            if holder != self._holder:
                log.warning(
                    "lease %s is held by %s now; left alone", LEASE_NAME, holder
                )
                return
            version = lease.metadata.resource_version if lease.metadata else None
            self.api.delete_lease(namespace, LEASE_NAME, version)
        except ChaoscertError as exc:
            log.warning("lease %s not released (it expires): %s", LEASE_NAME, exc)

    # -- state -----------------------------------------------------------------
    def ensure_up(self) -> None:
        """Check the cluster answers and the profile's selectors find pods.
        A cluster is not started by chaoscert (`chaoscert kind up` makes one)."""
        groups = self._groups()
        for group, (namespace, selector) in groups.items():
            pods = self.api.pods(namespace, selector)
            if not pods:
                raise ComponentError(
                    f"no pod matches {selector} in namespace {namespace}",
                    component=f"{group} pods",
                )
            self._baseline[group] = len(pods)
        self._primary_pod()

    def _groups(self) -> dict[str, tuple[str, str]]:
        p = self.profile
        return {
            "app": (p.namespaces.app, p.selectors.app),
            "ingress": (p.namespaces.ingress, p.selectors.ingress),
            "database": (p.namespaces.database, p.database.members_selector()),
        }

    def steady_problems(self) -> list[str]:
        """What keeps the cluster from steady state now (empty: steady)."""
        problems = []
        for node in self.api.nodes():
            name = node.metadata.name if node.metadata else "?"
            if not _node_ready(node):
                problems.append(f"node {name} is not Ready")
            if node.spec and node.spec.unschedulable:
                problems.append(f"node {name} is cordoned")
            taints = (node.spec.taints if node.spec else None) or []
            if any(t.key == FAULT_TAINT_KEY for t in taints):
                problems.append(f"node {name} carries chaoscert's fault taint")
        for group, (namespace, selector) in self._groups().items():
            pods = [p for p in self.api.pods(namespace, selector) if _live(p)]
            ready = [p for p in pods if _pod_ready(p)]
            expected = self._baseline.get(group, 1)
            if len(ready) < expected or len(ready) < len(pods):
                problems.append(
                    f"{group}: {len(ready)} of {max(expected, len(pods))} pods ready"
                )
        try:
            primaries = self._primaries()
            if len(primaries) != 1 or not _pod_ready(primaries[0]):
                problems.append(f"database: {len(primaries)} ready primary pods")
        except ChaoscertError as exc:
            problems.append(str(exc))
        problems += self._health_problem()
        return problems

    def _health_problem(self) -> list[str]:
        url = self.profile.base_url.rstrip("/") + "/web/health"
        try:
            answer = http.get(url, HEALTH_TIMEOUT_S)
        except httpx.HTTPError as exc:
            return [f"{url}: {type(exc).__name__}"]
        return [] if answer.status_code == 200 else [f"{url}: {answer.status_code}"]

    def wait_steady(self, timeout_s: float) -> float:
        started = time.monotonic()
        problems: list[str] = []
        while time.monotonic() - started < timeout_s:
            try:
                problems = self.steady_problems()
            except KubeError as exc:
                problems = [str(exc)]
            if not problems:
                return time.monotonic() - started
            time.sleep(STEADY_POLL_S)
        raise ComponentError(
            f"not in steady state after {timeout_s:.0f} s: " + "; ".join(problems[:5]),
            component=f"target {self.profile.name}",
        )

    # -- the database ----------------------------------------------------------
    def _primaries(self) -> list[client.V1Pod]:
        db = self.profile.database
        pods = self.api.pods(self.profile.namespaces.database, db.primary_selector())
        return [p for p in pods if _live(p)]

    def _primary_pod(self) -> client.V1Pod:
        primaries = self._primaries()
        if len(primaries) != 1:
            raise ChaoscertError(
                f"database cluster {self.profile.database.cluster}: expected one"
                f" primary pod ({self.profile.database.primary_selector()}),"
                f" found {len(primaries)}"
            )
        return primaries[0]

    def database_primary(self) -> str:
        pod = self._primary_pod()
        node = pod.spec.node_name if pod.spec else None
        if not node:
            raise ChaoscertError("the database primary pod is not on a node")
        return str(node)

    def _replica_pods(self) -> list[client.V1Pod]:
        primary = faults.pod_name(self._primary_pod())
        members = self.api.pods(
            self.profile.namespaces.database, self.profile.database.members_selector()
        )
        return sorted(
            (p for p in members if _live(p) and faults.pod_name(p) != primary),
            key=lambda p: (not _pod_ready(p), faults.pod_name(p)[1]),
        )

    # -- targets -----------------------------------------------------------------
    def zones(self) -> dict[str, list[str]]:
        label = self.profile.zone_label
        zones: dict[str, list[str]] = {}
        for node in self.api.nodes():
            meta = node.metadata
            zone = (meta.labels or {}).get(label) if meta else None
            if zone and meta and meta.name:
                zones.setdefault(zone, []).append(meta.name)
        return {zone: sorted(nodes) for zone, nodes in sorted(zones.items())}

    def resolve_node(self, target: str) -> str:
        """A node by name, or by role: primary, replica (a node holding only a
        database replica) or app (a node running Odoo and no database). Only
        nodes carrying the zone label are ever targets."""
        node = self._resolve_role(target)
        zoned = [n for nodes in self.zones().values() for n in nodes]
        if node not in zoned:
            raise FaultError(
                f"node {node} ({target or 'primary'}) carries no"
                f" {self.profile.zone_label} label; chaoscert faults only nodes"
                f" in zones (nodes: {', '.join(zoned)})"
            )
        return node

    def _resolve_role(self, target: str) -> str:
        if target in ("", "primary"):
            return self.database_primary()
        if target == "replica":
            replicas = self._replica_pods()
            if not replicas:
                raise FaultError("no database replica pod to target")
            return self._node_of(replicas[0])
        if target == "app":
            db_nodes = {self._node_of(p) for p in self._members()}
            app_nodes = sorted(
                {self._node_of(p) for p in faults.running(self._pods("app"))}
            )
            plain = [n for n in app_nodes if n not in db_nodes]
            if not (plain or app_nodes):
                raise FaultError("no node runs an Odoo pod")
            return (plain or app_nodes)[0]
        names = [n for nodes in self.zones().values() for n in nodes]
        if target not in names:
            raise FaultError(
                f"no node {target!r} carrying {self.profile.zone_label}"
                f" (nodes: {', '.join(names)})"
            )
        return target

    def resolve_zone(self, target: str) -> str:
        zones = self.zones()
        if target in ("", "primary"):
            primary = self.database_primary()
            for zone, nodes in zones.items():
                if primary in nodes:
                    return zone
            raise FaultError(f"the primary's node {primary} has no zone label")
        if target not in zones:
            raise FaultError(f"no zone {target!r} (zones: {', '.join(zones)})")
        return target

    def log_marks(self) -> dict[str, int]:
        return {"since_unix": int(time.time())}

    def component_logs(self, marks: dict[str, int]) -> list[LogText]:
        """The logs of the Odoo, Traefik and database pods since ``marks``
        (pods deleted meanwhile took their logs with them)."""
        since = marks.get("since_unix")
        if since is None:
            return []
        since_s = int(time.time()) - since + 1
        texts = []
        for group in ("database", "app", "ingress"):
            try:
                pods = self._pods(group)
            except ChaoscertError as exc:
                log.debug("no %s logs: %s", group, exc)
                continue
            for pod in pods[:LOG_PODS_PER_GROUP]:
                meta = pod.metadata
                if meta is None or not meta.name or not meta.namespace:
                    continue
                namespace, name = str(meta.namespace), str(meta.name)
                try:
                    text = self.api.pod_log(namespace, name, since_s, POD_LOG_LINES)
                except ChaoscertError as exc:
                    log.debug("no log of %s/%s: %s", namespace, name, exc)
                    continue
                kept, omitted = excerpt(text.splitlines())
                if kept:
                    texts.append(
                        LogText(
                            f"{group} pod {name}",
                            f"pod {namespace}/{name}",
                            tuple(kept),
                            omitted,
                        )
                    )
        return texts

    def _pods(self, group: str) -> list[client.V1Pod]:
        namespace, selector = self._groups()[group]
        return self.api.pods(namespace, selector)

    def _members(self) -> list[client.V1Pod]:
        return [p for p in self._pods("database") if _live(p)]

    @staticmethod
    def _node_of(pod: client.V1Pod) -> str:
        return str(pod.spec.node_name) if pod.spec and pod.spec.node_name else ""

    # -- faults -------------------------------------------------------------------
    def inject(self, kind: str, target: str) -> FaultHandle:
        """Inject `kind`; `target` names a node, zone or role (see resolve_*)."""
        if kind in NOT_APPLICABLE:
            raise FaultNotApplicable(
                f"{kind.replace('_', ' ')}: {NOT_APPLICABLE[kind]}"
            )
        if kind not in self.FAULTS:
            raise FaultError(
                f"the kubernetes platform cannot inject {kind!r}"
                f" (known: {', '.join(sorted(self.FAULTS))})"
            )
        self.profile.refuse_unless_allowed(self.profile.context, kind)
        if self.lease_lost:
            raise FaultError(
                f"target {self.profile.name}: this run lost its lease to another"
                " run; no further fault is injected"
            )
        what, act = self.FAULTS[kind](self, target)
        self._last_fault_mono = time.monotonic()
        return self.run_fault(
            kind,
            what,
            act,
            lambda steps: faults.undo_all(self.api, self._nodes_if_kind(), steps),
        )

    def plan(self, kind: str, target: str) -> str:
        """What `kind` on `target` would hit, without touching anything."""
        if kind in NOT_APPLICABLE:
            raise FaultNotApplicable(
                f"{kind.replace('_', ' ')}: {NOT_APPLICABLE[kind]}"
            )
        if kind not in self.FAULTS:
            raise FaultError(f"the kubernetes platform cannot inject {kind!r}")
        what, _ = self.FAULTS[kind](self, target)
        nodes = self._plan_nodes(kind, target)
        if not nodes:
            return what
        on_nodes = []
        for node in nodes:
            pods = sorted(
                "/".join(faults.pod_name(p))
                for p in self.api.pods_on_node(node)
                if faults.movable(p)
            )
            on_nodes.append(f"{node} [pods: {', '.join(pods) or 'none'}]")
        return f"{what}; nodes: {'; '.join(on_nodes)}"

    def _plan_nodes(self, kind: str, target: str) -> list[str]:
        if kind.startswith("zone_"):
            return self.zones()[self.resolve_zone(target)]
        if kind.startswith("node_") or kind == "database_primary_hang":
            return [self.resolve_node(target if kind.startswith("node_") else "")]
        return []

    def _nodes_if_kind(self) -> NodeContainers | None:
        return self.node_containers if self.profile.node_faults.mode == "kind" else None

    def _node_fault(self, target: str, mode: str) -> tuple[str, Act]:
        node = self.resolve_node(target)
        return f"node {node}{self._role_text(node)}", self._lose_nodes([node], mode)

    def _zone_fault(self, target: str, mode: str) -> tuple[str, Act]:
        zone = self.resolve_zone(target)
        nodes = self.zones()[zone]
        return f"zone {zone} ({', '.join(nodes)})", self._lose_nodes(nodes, mode)

    def _lose_nodes(self, nodes: list[str], mode: str) -> Act:
        how = self.profile.node_faults.mode

        def act(undo: list[Undo]) -> None:
            for node in nodes:
                if how == "kind" and mode == "hang":
                    faults.pause_node(self.node_containers, node, undo)
                elif how == "kind":
                    faults.kill_node_container(self.node_containers, node, undo)
                elif how == "taint":
                    faults.taint_node(self.api, node, undo)
                else:
                    faults.drain_node(self.api, node, undo)

        return act

    def _role_text(self, node: str) -> str:
        roles = [
            "database primary"
            if faults.pod_name(p) == faults.pod_name(self._primary_pod())
            else "database replica"
            for p in self._members()
            if self._node_of(p) == node
        ]
        return f" ({', '.join(roles)})" if roles else ""

    def _primary_crash(self) -> tuple[str, Act]:
        namespace, name = faults.pod_name(self._primary_pod())

        def act(undo: list[Undo]) -> None:
            faults.kill_pod(self.api, namespace, name)

        return f"database primary pod {namespace}/{name}, deleted with grace 0", act

    def _switchover(self, target: str) -> tuple[str, Act]:
        namespace, leader = faults.pod_name(self._primary_pod())
        replicas = [p for p in self._replica_pods() if _pod_ready(p)]
        if not replicas:
            raise FaultError("no ready database replica to switch over to")
        names = [faults.pod_name(p)[1] for p in replicas]
        candidate = target if target not in ("", "replica") else names[0]
        if candidate not in names:
            raise FaultError(f"{candidate} is not a ready replica ({', '.join(names)})")

        def act(undo: list[Undo]) -> None:
            started = time.monotonic()
            if self.profile.database.flavour == "cloudnativepg":
                self._cnpg_promote(namespace, candidate)
            else:
                self._patroni_switchover(namespace, leader, candidate)
            took_s, primary = self._await_new_primary(leader, started)
            self.event(
                "database", f"switchover from {leader} to {primary}: {took_s:.1f} s"
            )

        return f"primary {leader} to {candidate}", act

    def _cnpg_promote(self, namespace: str, candidate: str) -> None:
        """What `kubectl cnpg promote` does: set the cluster's target primary in
        its status, with the cluster's resourceVersion as an optimistic lock."""
        group, version, plural = CNPG
        cluster = self.profile.database.cluster
        current = self.api.custom_object(group, version, namespace, plural, cluster)
        now = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
        self.api.patch_custom_status(
            group,
            version,
            namespace,
            plural,
            cluster,
            {
                "metadata": {
                    "resourceVersion": current.get("metadata", {}).get(
                        "resourceVersion"
                    )
                },
                "status": {
                    "targetPrimary": candidate,
                    "targetPrimaryTimestamp": now.replace("+00:00", "Z"),
                    "phase": "Switchover in progress",
                    "phaseReason": f"Switching over to {candidate}",
                },
            },
        )

    def _patroni_switchover(self, namespace: str, leader: str, candidate: str) -> None:
        status, text = self.api.post_to_pod(
            namespace,
            leader,
            PATRONI_PORT,
            "switchover",
            {"leader": leader, "candidate": candidate},
            # Patroni answers once the switchover is done: up to twice
            # max(10 s, loop_wait) of its own polling.
            timeout_s=PATRONI_SWITCHOVER_TIMEOUT_S,
        )
        if status != 200:
            raise FaultError(
                f"Patroni refused the switchover ({status}): {text.strip()[:200]}"
            )

    def _await_new_primary(self, old: str, started: float) -> tuple[float, str]:
        """Seconds until a primary other than `old` is ready (bounded), and it."""
        while time.monotonic() - started < NEW_PRIMARY_TIMEOUT_S:
            try:
                primary = self._primary_pod()
                name = faults.pod_name(primary)[1]
                if name != old and _pod_ready(primary):
                    return time.monotonic() - started, name
            except ChaoscertError:
                pass
            time.sleep(0.5)
        raise FaultError(
            f"no new ready database primary within {NEW_PRIMARY_TIMEOUT_S:.0f} s"
        )

    def _kill(self, group: str, target: str) -> tuple[str, Act]:
        namespace, selector = self._groups()[group]
        node = "" if target in ("", "any") else self.resolve_node(target)
        _, name = faults.pick_pod(self.api, namespace, selector, node)
        return f"{group} pod {namespace}/{name}", lambda undo: faults.kill_pod(
            self.api, namespace, name
        )

    FAULTS: ClassVar[
        dict[str, Callable[[KubernetesPlatform, str], tuple[str, Act]]]
    ] = {
        "node_hang": lambda p, t: p._node_fault(t, "hang"),
        "node_crash": lambda p, t: p._node_fault(t, "crash"),
        "database_primary_hang": lambda p, t: p._node_fault("primary", "hang"),
        "database_primary_crash": lambda p, t: p._primary_crash(),
        "zone_hang": lambda p, t: p._zone_fault(t, "hang"),
        "zone_crash": lambda p, t: p._zone_fault(t, "crash"),
        "database_switchover": lambda p, t: p._switchover(t),
        "ingress_replica_kill": lambda p, t: p._kill("ingress", t),
        "app_replica_kill": lambda p, t: p._kill("app", t),
    }

    def heal_leftovers(self) -> list[str]:
        """Replay the undo steps of faults a killed run left in the record."""
        return heal_leftovers_with(
            self.registry.record,
            lambda steps: faults.undo_all(self.api, self._nodes_if_kind(), steps),
        )

    # -- what Kubernetes did -------------------------------------------------------
    def observe(self) -> None:
        """Poll nodes, pods, endpoint slices and events; record what changed."""
        now = time.monotonic()
        if now - self._last_observed < OBSERVE_EVERY_S:
            return
        self._last_observed = now
        api = self.watch_api
        nodes = {
            str(n.metadata.name): _node_state(n) for n in api.nodes() if n.metadata
        }
        self._changes("node", nodes)
        pods: dict[str, str] = {}
        primaries = []
        for group, (namespace, selector) in self._groups().items():
            for pod in api.pods(namespace, selector):
                name = "/".join(faults.pod_name(pod))
                pods[name] = f"{group}: {_pod_state(pod)}"
                if _role(pod) == "primary" and _pod_ready(pod):
                    primaries.append(name)
        self._changes("pod", pods)
        self._primary_change(primaries)
        slices: dict[str, str] = {}
        for namespace in sorted(
            {self.profile.namespaces.app, self.profile.namespaces.ingress}
        ):
            counts: dict[str, int] = {}
            for item in api.endpoint_slices(namespace):
                labels = (item.metadata.labels or {}) if item.metadata else {}
                service = labels.get("kubernetes.io/service-name", "?")
                ready = sum(
                    1
                    for e in item.endpoints or []
                    if e.conditions is None or e.conditions.ready is not False
                )
                counts[service] = counts.get(service, 0) + ready
            for service, count in counts.items():
                slices[f"{namespace}/{service}"] = f"{count} ready endpoints"
        self._changes("service", slices)
        self._cluster_events(api)

    def _changes(self, what: str, now: dict[str, str]) -> None:
        before: dict[str, str] | None = self._seen.get(what)
        self._seen[what] = now
        if before is None:
            return
        for name, state in sorted(now.items()):
            if before.get(name) != state:
                self.event("kubernetes", f"{what} {name}: {state}")
        for name in sorted(set(before) - set(now)):
            self.event("kubernetes", f"{what} {name}: gone")

    def _primary_change(self, primaries: list[str]) -> None:
        current = primaries[0] if len(primaries) == 1 else None
        before = self._seen.get("primary")
        if current and before and current != before:
            since = ""
            if self._last_fault_mono is not None:
                after_s = time.monotonic() - self._last_fault_mono
                since = f", {after_s:.1f} s after the fault"
            self.event(
                "database",
                f"new primary {current} ready (was {before}){since};"
                " seen by a poll every second",
            )
        if current:
            self._seen["primary"] = current

    def _cluster_events(self, api: KubeApi) -> None:
        seen: set[str] = self._seen.setdefault("events", set())
        namespaces = {
            self.profile.namespaces.app,
            self.profile.namespaces.database,
            self.profile.namespaces.ingress,
            "default",  # node events are recorded there
        }
        for namespace in sorted(namespaces):
            for item in api.events(namespace):
                when = item.last_timestamp or item.event_time or item.first_timestamp
                if when is None or when < self._since:
                    continue
                key = f"{item.metadata.uid if item.metadata else ''}/{item.count}"
                if key in seen:
                    continue
                seen.add(key)
                obj = item.involved_object
                who = f"{obj.kind}/{obj.name}" if obj else "?"
                message = (item.message or "").strip().splitlines()
                self.event(
                    "kubernetes",
                    f"event {who}: {item.reason or ''}"
                    f" {message[0][:200] if message else ''}".rstrip(),
                )

    # -- description ---------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        p = self.profile
        try:
            zones: dict[str, list[str]] | str = self.zones()
        except ChaoscertError as exc:
            zones = f"unknown: {exc}"
        return {
            "platform": self.name,
            "note": (
                f"a Kubernetes cluster through context {p.context} (target profile"
                f" {p.name}); users reach Odoo at {p.base_url}; database"
                f" {p.database.flavour} cluster {p.database.cluster}; node faults"
                f" by {p.node_faults.mode}"
            ),
            "topology": f"target {p.name}",
            "target": str(self.target_path),
            "context": p.context,
            "namespaces": p.namespaces.model_dump(),
            "selectors": p.selectors.model_dump(),
            "database": p.database.model_dump(),
            "node_faults": p.node_faults.model_dump(),
            "zone_label": p.zone_label,
            "zones": zones,
        }

    def secrets(self) -> list[str]:
        values = []
        env = os.environ.get(self.profile.odoo.password_env)
        if env:
            values.append(env)
        configuration = self._configuration
        if configuration is not None:
            for key in (configuration.api_key or {}).values():
                values.append(str(key).removeprefix("Bearer ").strip())
            if configuration.password:
                values.append(str(configuration.password))
        return [v for v in values if v]


def _node_ready(node: client.V1Node) -> bool:
    conditions = (node.status.conditions if node.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _node_state(node: client.V1Node) -> str:
    conditions = (node.status.conditions if node.status else None) or []
    ready = next((c for c in conditions if c.type == "Ready"), None)
    state = f"Ready={ready.status if ready else 'Unknown'}"
    if ready is not None and ready.status != "True" and ready.reason:
        state += f" ({ready.reason})"
    if node.spec and node.spec.unschedulable:
        state += ", cordoned"
    taints = sorted(t.key for t in ((node.spec.taints if node.spec else None) or []))
    if taints:
        state += f", taints {', '.join(taints)}"
    return state


def _live(pod: client.V1Pod) -> bool:
    phase = pod.status.phase if pod.status else None
    return phase not in ("Succeeded", "Failed") and not (
        pod.metadata and pod.metadata.deletion_timestamp
    )


def _pod_ready(pod: client.V1Pod) -> bool:
    conditions = (pod.status.conditions if pod.status else None) or []
    return _live(pod) and any(
        c.type == "Ready" and c.status == "True" for c in conditions
    )


def _pod_state(pod: client.V1Pod) -> str:
    phase = (pod.status.phase if pod.status else None) or "Unknown"
    role = _role(pod)
    parts = [
        phase,
        "ready" if _pod_ready(pod) else "not ready",
        f"on {pod.spec.node_name}"
        if pod.spec and pod.spec.node_name
        else "unscheduled",
    ]
    if role:
        parts.append(role)
    if pod.metadata and pod.metadata.deletion_timestamp:
        parts.append("terminating")
    return ", ".join(parts)


def _role(pod: client.V1Pod) -> str:
    """primary, replica or "" from CloudNativePG's or Spilo's role label."""
    labels = (pod.metadata.labels or {}) if pod.metadata else {}
    role = labels.get("cnpg.io/instanceRole") or labels.get("spilo-role") or ""
    return "primary" if role in ("primary", "master") else role
