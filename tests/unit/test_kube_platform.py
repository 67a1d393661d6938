"""The Kubernetes platform against the API's contract: every fault's inject and
heal, the safety refusals, one run per target, leftovers, observation.

The API server is tests/unit/fake_kube.py (real HTTP on loopback, the official
client talking to it); kind's node containers are a recording stand-in here
(the docker and kind wrappers are tested with stand-in executables elsewhere).
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from chaoscert.errors import ChaoscertError, ConfigError, FaultError, FaultNotApplicable
from chaoscert.platforms.base import FaultRegistry
from chaoscert.platforms.kubernetes import platform as kube_platform
from chaoscert.platforms.kubernetes.api import FAULT_TAINT_KEY
from chaoscert.platforms.kubernetes.platform import (
    LEASE_NAME,
    KubernetesPlatform,
    kube_configuration,
)
from tests.unit.fake_kube import Cluster, serve

APP = {"app.kubernetes.io/name": "odoo"}
INGRESS = {"app.kubernetes.io/name": "traefik"}
TOKEN = "tok-3c1f9a7e5d2b8c4f6a0e"


class Containers:
    """kind's node containers, recorded: what was paused, killed, started."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail: set[str] = set()

    def _do(self, op: str, node: str) -> None:
        self.calls.append((op, node))
        if op in self.fail:
            raise FaultError(f"docker {op} {node}: exit 1")

    def pause(self, node: str) -> None:
        self._do("pause", node)

    def unpause(self, node: str) -> None:
        self._do("unpause", node)

    def stop(self, node: str) -> None:
        self._do("stop", node)

    def start(self, node: str) -> None:
        self._do("start", node)


def reference(cluster: Cluster, flavour: str = "cloudnativepg") -> None:
    """Three zones; a database node and an application node in each."""
    for zone in "abc":
        cluster.add_node(f"{zone}1", zone=f"zone-{zone}")
        cluster.add_node(f"{zone}2", zone=f"zone-{zone}")
        cluster.add_pod("odoo", f"odoo-{zone}", f"{zone}2", APP)
        cluster.add_pod("traefik", f"traefik-{zone}", f"{zone}2", INGRESS)
    cluster.add_node("control-plane")
    for i, zone in enumerate("abc", 1):
        if flavour == "cloudnativepg":
            labels = {
                "cnpg.io/cluster": "odoo-db",
                "cnpg.io/instanceRole": "primary" if i == 1 else "replica",
            }
            name = f"odoo-db-{i}"
        else:
            labels = {
                "cluster-name": "odoo-db",
                "spilo-role": "master" if i == 1 else "replica",
            }
            name = f"odoo-db-{i - 1}"
        cluster.add_pod("odoo", name, f"{zone}1", labels, owner="StatefulSet")
    cluster.add_cnpg("odoo", "odoo-db", "odoo-db-1")
    cluster.add_slice("odoo", "odoo", [True, True, True])
    cluster.add_slice("traefik", "traefik", [True, True, True])


def profile(
    tmp_path: Path, url: str, mode: str = "kind", allowed: bool = True, **extra: Any
) -> Path:
    data: dict[str, Any] = {
        "name": "fake",
        "context": "fake-ctx",
        "destructive_contexts": ["fake-ctx"] if allowed else [],
        "namespaces": {"app": "odoo", "database": "odoo", "ingress": "traefik"},
        "base_url": url,
        "odoo": {"database": "logistics"},
        "selectors": {
            "app": "app.kubernetes.io/name=odoo",
            "ingress": "app.kubernetes.io/name=traefik",
        },
        "database": {"flavour": "cloudnativepg", "cluster": "odoo-db"},
        "node_faults": {
            "mode": mode,
            **({"kind_cluster": "fake"} if mode == "kind" else {}),
        },
    }
    data.update(extra)
    path = tmp_path / f"target-{mode}-{allowed}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    fake = Cluster()
    reference(fake)
    yield fake


@pytest.fixture
def url(cluster: Cluster) -> Iterator[str]:
    server, address = serve(cluster)
    yield address
    server.shutdown()


@pytest.fixture
def containers() -> Containers:
    return Containers()


def make(
    tmp_path: Path, url: str, containers: Containers, mode: str = "kind", **kw: Any
) -> KubernetesPlatform:
    configuration = client.Configuration(host=url)
    configuration.api_key = {"BearerToken": f"Bearer {TOKEN}"}
    return KubernetesPlatform(
        profile(tmp_path, url, mode, **kw),
        tmp_path / "state",
        configuration=configuration,
        nodes=containers,
    )


@pytest.fixture
def kube(tmp_path: Path, url: str, containers: Containers) -> KubernetesPlatform:
    platform = make(tmp_path, url, containers)
    platform.ensure_up()
    return platform


@pytest.fixture
def spilo(
    tmp_path: Path, containers: Containers
) -> Iterator[tuple[Cluster, KubernetesPlatform]]:
    """A cluster whose database is Patroni under Spilo, and its platform."""
    fake = Cluster()
    reference(fake, flavour="patroni")
    server, url = serve(fake)
    yield (
        fake,
        make(
            tmp_path,
            url,
            containers,
            database={"flavour": "patroni", "cluster": "odoo-db"},
        ),
    )
    server.shutdown()


def record(platform: KubernetesPlatform) -> list[dict[str, Any]]:
    path = platform.registry.record
    assert path is not None
    return json.loads(path.read_text()) if path.exists() else []


# -- node and zone faults ----------------------------------------------------------
def test_kind_node_hang_pauses_the_primarys_node_and_heal_unpauses_it(
    kube: KubernetesPlatform, containers: Containers, cluster: Cluster
) -> None:
    handle = kube.inject("node_hang", "primary")

    assert containers.calls == [("pause", "a1")]
    assert handle.target == "node a1 (database primary)"
    assert record(kube)[0]["details"]["undo"] == [{"op": "unpause", "node": "a1"}]
    assert cluster.writes() == []  # kind node faults go through docker only

    kube.heal_all()

    assert containers.calls[-1] == ("unpause", "a1")
    assert record(kube) == []


def test_kind_crash_of_a_replica_node_and_of_the_primarys_zone(
    kube: KubernetesPlatform, containers: Containers
) -> None:
    kube.inject("node_crash", "replica")
    kube.inject("zone_crash", "primary")
    assert containers.calls == [("stop", "b1"), ("stop", "a1"), ("stop", "a2")]

    kube.heal_all()

    assert containers.calls[3:] == [("start", "a2"), ("start", "a1"), ("start", "b1")]


def test_zone_hang_by_name_and_unknown_targets_are_refused(
    kube: KubernetesPlatform, containers: Containers
) -> None:
    kube.inject("zone_hang", "zone-c")
    assert containers.calls == [("pause", "c1"), ("pause", "c2")]
    with pytest.raises(FaultError, match="no zone 'zone-x'"):
        kube.inject("zone_hang", "zone-x")
    with pytest.raises(FaultError, match="no node 'ghost'"):
        kube.inject("node_hang", "ghost")
    kube.heal_all()


def test_taint_mode_loses_the_app_node_and_heal_untaints_and_uncordons(
    tmp_path: Path, url: str, containers: Containers, cluster: Cluster
) -> None:
    kube = make(tmp_path, url, containers, mode="taint")

    handle = kube.inject("node_hang", "app")

    assert handle.target == "node a2"
    assert containers.calls == []
    node = cluster.nodes["a2"]
    assert node["spec"]["unschedulable"] is True
    assert [t["key"] for t in node["spec"]["taints"]] == [FAULT_TAINT_KEY]
    deleted = sorted(r.path.rsplit("/", 1)[1] for r in cluster.seen("DELETE"))
    assert deleted == ["odoo-a", "traefik-a"]
    assert all(r.query["gracePeriodSeconds"] == ["0"] for r in cluster.seen("DELETE"))

    kube.heal_all()

    assert node["spec"]["unschedulable"] is False
    assert node["spec"]["taints"] == []
    assert record(kube) == []


def test_drain_mode_evicts_a_zone_and_never_deletes(
    tmp_path: Path, url: str, containers: Containers, cluster: Cluster
) -> None:
    kube = make(tmp_path, url, containers, mode="drain")

    kube.inject("zone_hang", "zone-b")

    evicted = sorted(r.path.split("/")[-2] for r in cluster.seen("POST"))
    assert evicted == ["odoo-b", "odoo-db-2", "traefik-b"]
    assert cluster.seen("DELETE") == []
    assert cluster.nodes["b1"]["spec"]["unschedulable"] is True
    kube.heal_all()
    assert cluster.nodes["b1"]["spec"]["unschedulable"] is False
    assert cluster.nodes["b2"]["spec"]["unschedulable"] is False


def test_a_drain_a_budget_blocks_fails_but_leaves_the_node_healable(
    tmp_path: Path,
    url: str,
    containers: Containers,
    cluster: Cluster,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chaoscert.platforms.kubernetes import faults

    monkeypatch.setattr(faults, "EVICTION_RETRY_S", 0.2)
    monkeypatch.setattr(faults, "EVICTION_PAUSE_S", 0.05)
    kube = make(tmp_path, url, containers, mode="drain")
    cluster.evictions_refused = 10_000

    with pytest.raises(FaultError, match="PodDisruptionBudget"):
        kube.inject("node_crash", "primary")

    assert cluster.nodes["a1"]["spec"]["unschedulable"] is True
    assert record(kube)[0]["details"]["undo"] == [{"op": "uncordon", "node": "a1"}]
    assert kube.heal_all() == []
    assert cluster.nodes["a1"]["spec"]["unschedulable"] is False


# -- database ------------------------------------------------------------------------
def test_primary_crash_deletes_the_primary_pod_with_grace_zero(
    kube: KubernetesPlatform, cluster: Cluster
) -> None:
    handle = kube.inject("database_primary_crash", "")

    [delete] = cluster.seen("DELETE")
    assert delete.path == "/api/v1/namespaces/odoo/pods/odoo-db-1"
    assert delete.query["gracePeriodSeconds"] == ["0"]
    assert delete.body["gracePeriodSeconds"] == 0
    assert "odoo-db-1" in handle.target
    kube.heal_all()


def test_cnpg_switchover_sets_the_target_primary_and_times_the_new_primary(
    kube: KubernetesPlatform, cluster: Cluster
) -> None:
    kube.inject("database_switchover", "replica")

    [patch] = cluster.seen("PATCH")
    assert (
        patch.path
        == "/apis/postgresql.cnpg.io/v1/namespaces/odoo/clusters/odoo-db/status"
    )
    assert patch.content_type == "application/merge-patch+json"
    assert patch.body["status"]["targetPrimary"] == "odoo-db-2"
    assert patch.body["status"]["phase"] == "Switchover in progress"
    assert patch.body["metadata"]["resourceVersion"]  # optimistic lock
    assert kube.database_primary() == "b1"
    [event] = [e for e in kube.events if e.source == "database"]
    assert event.text.startswith("switchover from odoo-db-1 to odoo-db-2: ")


def test_a_switchover_no_new_primary_follows_fails_within_its_bound(
    kube: KubernetesPlatform, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kube_platform, "NEW_PRIMARY_TIMEOUT_S", 1.0)
    cluster.operator_follows = False

    with pytest.raises(FaultError, match="no new ready database primary within 1 s"):
        kube.inject("database_switchover", "")
    kube.heal_all()


def test_patroni_switchover_goes_to_the_leaders_rest_api_through_the_proxy(
    spilo: tuple[Cluster, KubernetesPlatform],
) -> None:
    fake, kube = spilo

    kube.inject("database_switchover", "")

    [post] = fake.seen("POST")
    assert post.path == "/api/v1/namespaces/odoo/pods/odoo-db-0:8008/proxy/switchover"
    assert post.body == {"leader": "odoo-db-0", "candidate": "odoo-db-1"}
    assert kube.database_primary() == "b1"
    fake.patroni_answer = (412, "candidate name does not match with sync_standby")
    with pytest.raises(FaultError, match=r"Patroni refused the switchover \(412\)"):
        kube.inject("database_switchover", "")


# -- replica kills ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("ingress_replica_kill", "/api/v1/namespaces/traefik/pods/traefik-a"),
        ("app_replica_kill", "/api/v1/namespaces/odoo/pods/odoo-a"),
    ],
)
def test_a_replica_kill_deletes_one_pod_with_grace_zero(
    kube: KubernetesPlatform, cluster: Cluster, kind: str, path: str
) -> None:
    kube.inject(kind, "")

    [delete] = cluster.seen("DELETE")
    assert delete.path == path
    assert delete.query["gracePeriodSeconds"] == ["0"]
    kube.heal_all()
    assert len(cluster.writes()) == 1  # nothing to undo: the controller replaces it


def test_faults_the_platform_cannot_make_say_why_and_touch_nothing(
    kube: KubernetesPlatform, cluster: Cluster, containers: Containers
) -> None:
    for kind in ("dcs_member_loss", "dcs_quorum_loss", "replication_stall"):
        with pytest.raises(FaultNotApplicable, match=kind.replace("_", " ")):
            kube.inject(kind, "")
    with pytest.raises(FaultError, match="cannot inject 'meteor'"):
        kube.inject("meteor", "")
    assert cluster.writes() == [] and containers.calls == []


# -- safety ----------------------------------------------------------------------------
def test_a_context_the_profile_protects_gets_no_fault_and_no_lease(
    tmp_path: Path, url: str, containers: Containers, cluster: Cluster
) -> None:
    kube = make(tmp_path, url, containers, allowed=False)
    kube.ensure_up()  # reading is allowed

    with pytest.raises(ConfigError) as refused:
        kube.inject("node_hang", "primary")
    message = str(refused.value)
    assert "\n" not in message
    assert "refusing node_hang on context 'fake-ctx'" in message
    with pytest.raises(ConfigError, match="allowed only on: none"):
        kube.acquire()
    assert cluster.writes() == [] and containers.calls == []


def test_one_run_per_target_by_a_lease(
    tmp_path: Path, url: str, containers: Containers, cluster: Cluster
) -> None:
    first = make(tmp_path, url, containers)
    second = make(tmp_path, url, containers)

    first.acquire()
    lease = cluster.leases[("odoo", LEASE_NAME)]
    assert lease["spec"]["holderIdentity"] == first._holder
    assert lease["spec"]["leaseDurationSeconds"] == 60
    second._holder = "other-host/1"
    with pytest.raises(ChaoscertError, match="another run holds it"):
        second.acquire()

    first.release()
    assert ("odoo", LEASE_NAME) not in cluster.leases
    second.acquire()
    second.release()


def test_a_lease_left_by_a_killed_run_is_taken_over_once_expired(
    tmp_path: Path, url: str, containers: Containers, cluster: Cluster
) -> None:
    dead = make(tmp_path, url, containers)
    dead.acquire()
    dead._lease_stop.set()  # killed: never renews, never releases
    cluster.leases[("odoo", LEASE_NAME)]["spec"]["renewTime"] = (
        "2026-01-01T00:00:00.000000Z"
    )
    heir = make(tmp_path, url, containers)
    heir._holder = "heir/2"

    heir.acquire()

    [put] = cluster.seen("PUT", "/apis/coordination.k8s.io")
    assert put.body["spec"]["holderIdentity"] == "heir/2"
    assert put.body["metadata"]["resourceVersion"]
    heir.release()


def test_a_killed_runs_faults_are_healed_by_the_next_run(
    tmp_path: Path, url: str, containers: Containers, cluster: Cluster
) -> None:
    killed = make(tmp_path, url, containers, mode="taint")
    killed.inject("node_crash", "replica")
    killed.inject("zone_hang", "zone-c")
    assert cluster.nodes["b1"]["spec"]["unschedulable"] is True

    # SIGKILL: no heal ran. The next run reads the record on disk.
    heir = make(tmp_path, url, containers, mode="taint")
    healed = heir.heal_leftovers()

    assert len(healed) == 2
    assert healed[0].startswith("node_crash on node b1")
    for node in ("b1", "c1", "c2"):
        assert cluster.nodes[node]["spec"]["unschedulable"] is False
        assert cluster.nodes[node]["spec"]["taints"] == []
    assert record(heir) == []
    assert heir.heal_leftovers() == []


def test_sigterm_during_a_fault_heals_it_before_the_run_stops(
    kube: KubernetesPlatform, containers: Containers
) -> None:
    assert threading.current_thread() is threading.main_thread()
    kube.registry.install()
    try:
        kube.inject("zone_hang", "primary")
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
        assert containers.calls[-2:] == [("unpause", "a2"), ("unpause", "a1")]
        assert FaultRegistry.received_signal == signal.SIGTERM
        assert record(kube) == []
    finally:
        kube.registry.uninstall()
        FaultRegistry.received_signal = None


def test_a_heal_that_fails_stays_on_record_for_the_next_run(
    kube: KubernetesPlatform, containers: Containers
) -> None:
    kube.inject("node_hang", "replica")
    containers.fail = {"unpause"}

    errors = kube.heal_all()

    assert errors and "could not heal node_hang on node b1" in errors[0]
    assert record(kube)[0]["details"]["undo"] == [{"op": "unpause", "node": "b1"}]
    containers.fail = set()
    assert kube.heal_all() == []


# -- steady state, plan, observation ----------------------------------------------
def test_steady_state_names_what_is_wrong_within_its_bound(
    kube: KubernetesPlatform, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kube_platform, "STEADY_POLL_S", 0.05)
    assert kube.wait_steady(5) < 5

    cluster.nodes["b2"]["status"]["conditions"][0]["status"] = "Unknown"
    cluster.pods[("odoo", "odoo-c")]["status"]["conditions"][0]["status"] = "False"
    with pytest.raises(ChaoscertError) as caught:
        kube.wait_steady(0.2)
    assert "node b2 is not Ready" in str(caught.value)
    assert "app: 2 of 3 pods ready" in str(caught.value)


def test_the_plan_names_nodes_and_pods_and_writes_nothing(
    kube: KubernetesPlatform, cluster: Cluster, containers: Containers
) -> None:
    plan = kube.plan("zone_crash", "primary")

    assert plan.startswith("zone zone-a (a1, a2); nodes: a1 [pods: odoo/odoo-db-1]")
    assert "a2 [pods: odoo/odoo-a, traefik/traefik-a]" in plan
    assert "odoo/odoo-db-1" in kube.plan("database_primary_crash", "")
    with pytest.raises(FaultNotApplicable):
        kube.plan("dcs_quorum_loss", "")
    assert cluster.writes() == [] and containers.calls == []


def test_observation_records_what_kubernetes_did(
    kube: KubernetesPlatform, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kube_platform, "OBSERVE_EVERY_S", 0.0)
    kube.observe()  # the baseline: nothing to report
    assert kube.events == []
    kube.inject("database_primary_crash", "")

    cluster.nodes["a1"]["status"]["conditions"][0].update(
        status="Unknown", reason="NodeStatusUnknown"
    )
    cluster.set_role("odoo", "odoo-db-2", "cnpg.io/instanceRole", "primary")
    cluster.add_slice("odoo", "odoo", [True, False, True])
    cluster.add_event("odoo", "e1", "Killing", "Stopping container postgres")
    kube.observe()

    texts = [e.text for e in kube.events]
    assert "node a1: Ready=Unknown (NodeStatusUnknown)" in texts
    assert "pod odoo/odoo-db-1: gone" in texts
    assert any(
        t.startswith("new primary odoo/odoo-db-2 ready (was odoo/odoo-db-1)")
        for t in texts
    )
    assert "service odoo/odoo: 2 ready endpoints" in texts
    assert "event Pod/odoo-a: Killing Stopping container postgres" in texts
    kube.observe()
    assert len(kube.events) == len(texts)  # nothing new, the same event not twice


def test_component_logs_are_read_from_the_pods_since_the_mark(
    kube: KubernetesPlatform, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kube_platform.time, "time", lambda: 1_000_000.0)
    marks = kube.log_marks()
    cluster.pod_logs[("odoo", "odoo-db-1")] = (
        "2026-12-04T05:00:01Z LOG:  database system is shut down\n"
        "2026-12-04T05:00:02Z LOG:  promoted\n"
    )
    cluster.pod_logs[("traefik", "traefik-b")] = "x\n"
    cluster.throttled = 0
    monkeypatch.setattr(kube_platform.time, "time", lambda: 1_000_042.0)

    texts = kube.component_logs(marks)

    by_source = {t.source: t for t in texts}
    assert set(by_source) == {"pod odoo/odoo-db-1", "pod traefik/traefik-b"}
    assert by_source["pod odoo/odoo-db-1"].component == "database pod odoo-db-1"
    assert by_source["pod odoo/odoo-db-1"].lines[-1].endswith("LOG:  promoted")
    reads = [r for r in cluster.seen("GET") if r.path.endswith("/log")]
    assert reads, "no pod log was read"
    for read in reads:
        assert read.query["sinceSeconds"] == ["43"]
        assert read.query["tailLines"] == [str(kube_platform.POD_LOG_LINES)]
        assert read.query["timestamps"] == ["true"]


def test_a_pod_whose_log_cannot_be_read_is_left_out(
    kube: KubernetesPlatform, cluster: Cluster
) -> None:
    marks = kube.log_marks()
    cluster.pod_logs[("odoo", "odoo-a")] = "an app line\n"
    cluster.throttled = 100  # every call answers 429 now

    assert kube.component_logs(marks) == []
    assert kube.component_logs({}) == []


def test_the_description_and_secrets(
    kube: KubernetesPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAOSCERT_ODOO_PASSWORD", "pw-9f8e7d6c5b4a")
    described = json.dumps(kube.describe())

    assert "zone-a" in described and "fake-ctx" in described
    assert TOKEN not in described and "pw-9f8e7d6c5b4a" not in described
    assert set(kube.secrets()) == {TOKEN, "pw-9f8e7d6c5b4a"}


# -- kubeconfig --------------------------------------------------------------------
def write_kubeconfig(path: Path, server: str, context: str = "fake-ctx") -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": TOKEN}}],
                "contexts": [
                    {"name": context, "context": {"cluster": "c", "user": "u"}}
                ],
                "current-context": context,
            }
        )
    )
    return path


def test_kubeconfig_context_is_found_or_named_without_credentials(
    tmp_path: Path, url: str
) -> None:
    from chaoscert.targets import load_target

    target = profile(tmp_path, url)
    good = write_kubeconfig(tmp_path / "good", url)
    configuration = kube_configuration(load_target(target), good, target)
    assert configuration.host == url

    other = write_kubeconfig(tmp_path / "other", url, context="prod")
    with pytest.raises(ConfigError) as missing:
        kube_configuration(load_target(target), other, target)
    assert "context 'fake-ctx' is not in kubeconfig" in str(missing.value)
    assert "(contexts: prod)" in str(missing.value)

    broken = tmp_path / "broken"
    broken.write_text(f"users: [{{name: u, user: {{token: {TOKEN}}}}}]\ncontexts: 7\n")
    for path in (broken, tmp_path / "absent"):
        with pytest.raises(ConfigError) as bad:
            kube_configuration(load_target(target), path, target)
        assert TOKEN not in str(bad.value) and "\n" not in str(bad.value)


# -- found by review: records, leases, throttling, credentials ----------------------
def test_each_undo_step_is_on_disk_before_the_act_it_undoes(
    kube: KubernetesPlatform, containers: Containers
) -> None:
    on_disk: list[Any] = []
    pause = containers.pause

    def pause_and_look(node: str) -> None:
        on_disk.append([s["node"] for s in record(kube)[0]["details"]["undo"]])
        pause(node)

    containers.pause = pause_and_look  # type: ignore[method-assign]
    kube.inject("zone_hang", "zone-b")

    # A run killed while the second node is being paused leaves both on record.
    assert on_disk == [["b1"], ["b1", "b2"]]
    kube.heal_all()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('[{"kind": "node_hang", "target": "node b1", "details": {"un', "JSONDecode"),
        ("[1]", "TypeError"),
        ('{"kind": "node_hang"}', "not a list of faults"),
        ('[{"kind": "x", "target": "y", "details": {"undo": [1]}}]', "valid dict"),
    ],
)
def test_an_unreadable_record_is_refused_and_kept(
    tmp_path: Path, url: str, containers: Containers, text: str, reason: str
) -> None:
    kube = make(tmp_path, url, containers)
    assert kube.registry.record is not None
    kube.registry.record.parent.mkdir(parents=True)
    kube.registry.record.write_text(text)

    with pytest.raises(ConfigError) as refused:
        kube.heal_leftovers()

    assert reason in str(refused.value) and "it is kept" in str(refused.value)
    assert kube.registry.record.read_text() == text


def test_one_leftover_that_cannot_be_healed_does_not_stop_the_others(
    tmp_path: Path, url: str, containers: Containers, cluster: Cluster
) -> None:
    killed = make(tmp_path, url, containers, mode="taint")
    killed.inject("node_crash", "replica")
    killed.inject("zone_hang", "zone-c")
    assert killed.registry.record is not None
    entries = json.loads(killed.registry.record.read_text())
    entries[0]["details"]["undo"].append({"op": "unpause", "node": "b1"})
    killed.registry.record.write_text(json.dumps(entries))

    heir = make(tmp_path, url, containers, mode="taint")
    with pytest.raises(FaultError) as caught:
        heir.heal_leftovers()

    assert "node_crash on node b1" in str(caught.value)
    assert "healed: zone_hang on zone zone-c" in str(caught.value)
    assert cluster.nodes["c1"]["spec"]["unschedulable"] is False
    assert [e["kind"] for e in record(heir)] == ["node_crash"]


def test_api_throttling_is_not_read_as_a_budget_and_steady_state_waits_it_out(
    kube: KubernetesPlatform, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chaoscert.platforms.kubernetes.api import EvictionBlocked, KubeError

    monkeypatch.setattr(kube_platform, "STEADY_POLL_S", 0.05)
    cluster.throttled = 1
    with pytest.raises(KubeError, match="too many requests") as caught:
        kube.api.nodes()
    assert not isinstance(caught.value, EvictionBlocked)
    cluster.throttled = 3
    assert kube.wait_steady(10) < 10


def test_the_switchover_event_names_the_primary_patroni_chose(
    spilo: tuple[Cluster, KubernetesPlatform],
) -> None:
    fake, kube = spilo
    fake.operator_follows = False

    def elsewhere() -> None:  # Patroni switched over to the other replica
        fake.set_role("odoo", "odoo-db-0", "spilo-role", "replica")
        fake.set_role("odoo", "odoo-db-2", "spilo-role", "master")

    threading.Timer(0.3, elsewhere).start()
    kube.inject("database_switchover", "")

    [event] = [e for e in kube.events if e.source == "database"]
    assert event.text.startswith("switchover from odoo-db-0 to odoo-db-2: ")


def test_a_run_never_deletes_a_lease_it_lost_and_stops_injecting(
    tmp_path: Path, url: str, containers: Containers, cluster: Cluster
) -> None:
    first = make(tmp_path, url, containers)
    first.acquire()
    first._lease_stop.set()
    cluster.leases[("odoo", LEASE_NAME)]["spec"]["holderIdentity"] = "heir/9"

    first.lease_lost = True  # what the renew loop concludes on its next round
    with pytest.raises(FaultError, match="lost its lease"):
        first.inject("node_hang", "primary")
    first.release()

    assert cluster.leases[("odoo", LEASE_NAME)]["spec"]["holderIdentity"] == "heir/9"
    assert containers.calls == []


def test_lease_times_always_carry_microseconds(
    tmp_path: Path,
    url: str,
    containers: Containers,
    cluster: Cluster,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import datetime as dt

    whole = dt.datetime(2026, 12, 3, 18, 0, 0, tzinfo=dt.UTC)

    class Clock(dt.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return whole

    monkeypatch.setattr(kube_platform.dt, "datetime", Clock)
    kube = make(tmp_path, url, containers)
    kube.acquire()
    try:
        spec = cluster.leases[("odoo", LEASE_NAME)]["spec"]
        assert spec["renewTime"].startswith("2026-12-03T18:00:00.000001")
    finally:
        kube.release()


def test_other_taints_keep_their_time_added(
    kube: KubernetesPlatform, cluster: Cluster
) -> None:
    unreachable = {
        "key": "node.kubernetes.io/unreachable",
        "effect": "NoExecute",
        "timeAdded": "2026-12-03T18:00:00Z",
    }
    cluster.nodes["b1"]["spec"]["taints"] = [unreachable]

    kube.api.set_fault_taint("b1", present=True)
    kube.api.set_fault_taint("b1", present=False)

    [kept] = cluster.nodes["b1"]["spec"]["taints"]
    assert kept["key"] == unreachable["key"]
    assert kept["timeAdded"].startswith("2026-12-03T18:00:00")


def test_a_role_target_on_a_node_outside_the_zones_is_refused(
    kube: KubernetesPlatform, cluster: Cluster, containers: Containers
) -> None:
    cluster.pods[("odoo", "odoo-db-1")]["spec"]["nodeName"] = "control-plane"

    with pytest.raises(FaultError, match=r"node control-plane .* carries no"):
        kube.inject("node_hang", "primary")
    assert containers.calls == []


def test_kubeconfig_that_is_not_yaml_or_whose_plugin_fails_is_one_line(
    tmp_path: Path, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from chaoscert.targets import load_target

    target = profile(tmp_path, url)
    not_yaml = tmp_path / "not-yaml"
    not_yaml.write_text("a: [\n")
    plugin = tmp_path / "plugin.sh"
    plugin.write_text(f"#!/bin/sh\necho 'leaked {TOKEN}' >&2\nexit 3\n")
    plugin.chmod(0o755)
    exec_config = write_kubeconfig(tmp_path / "exec", url)
    data = yaml.safe_load(exec_config.read_text())
    data["users"][0]["user"] = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(plugin),
            "interactiveMode": "Never",
        }
    }
    exec_config.write_text(yaml.safe_dump(data))

    with pytest.raises(ConfigError, match="unreadable"):
        kube_configuration(load_target(target), not_yaml, target)
    with pytest.raises(ConfigError, match="credential plugin of context 'fake-ctx'"):
        kube_configuration(load_target(target), exec_config, target)
    assert TOKEN not in caplog.text
