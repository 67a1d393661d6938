"""Kubernetes faults against the API's contract: the exact requests and answers."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from chaoscert.errors import FaultError
from chaoscert.platforms.kubernetes import faults
from chaoscert.platforms.kubernetes.api import (
    FAULT_TAINT_KEY,
    Conflict,
    EvictionBlocked,
    KubeApi,
    KubeError,
)
from tests.unit.fake_kube import Cluster, serve

APP = {"app.kubernetes.io/name": "odoo"}
SELECTOR = "app.kubernetes.io/name=odoo"


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    yield Cluster()


@pytest.fixture
def api(cluster: Cluster) -> Iterator[KubeApi]:
    server, url = serve(cluster)
    kube = KubeApi.connect(client.Configuration(host=url), timeout_s=2.0)
    yield kube
    kube.close()
    server.shutdown()


def test_pod_kill_deletes_one_running_pod_with_grace_zero(
    cluster: Cluster, api: KubeApi
) -> None:
    cluster.add_pod("odoo", "odoo-b", "w2", APP)
    cluster.add_pod("odoo", "odoo-a", "w1", APP)
    cluster.add_pod("odoo", "odoo-c", "w1", APP, phase="Pending")

    victim = faults.pick_pod(api, "odoo", "app.kubernetes.io/name=odoo")
    faults.kill_pod(api, *victim)

    [delete] = cluster.seen("DELETE")
    assert victim == ("odoo", "odoo-a")
    assert delete.path == "/api/v1/namespaces/odoo/pods/odoo-a"
    assert delete.query["gracePeriodSeconds"] == ["0"]
    assert delete.body["gracePeriodSeconds"] == 0
    assert ("odoo", "odoo-b") in cluster.pods


def test_pod_kill_on_a_node_picks_a_pod_there(cluster: Cluster, api: KubeApi) -> None:
    cluster.add_pod("odoo", "odoo-a", "w1", APP)
    cluster.add_pod("odoo", "odoo-b", "w2", APP)

    assert faults.pick_pod(api, "odoo", SELECTOR, node="w2") == ("odoo", "odoo-b")
    with pytest.raises(FaultError, match="on node w3"):
        faults.pick_pod(api, "odoo", SELECTOR, node="w3")


def test_pod_kill_with_nothing_running_says_so(cluster: Cluster, api: KubeApi) -> None:
    cluster.add_pod("odoo", "odoo-a", "w1", APP, phase="Pending")

    with pytest.raises(FaultError, match="no running pod matches"):
        faults.pick_pod(api, "odoo", SELECTOR)
    assert cluster.seen("DELETE") == []


def test_a_pod_already_gone_is_not_an_error_of_the_api(
    cluster: Cluster, api: KubeApi
) -> None:
    assert api.delete_pod("odoo", "ghost") is False
    assert api.evict_pod("odoo", "ghost") is False
    with pytest.raises(FaultError, match="already gone"):
        faults.kill_pod(api, "odoo", "ghost")


def test_taint_loses_a_node_and_undo_restores_only_what_it_changed(
    cluster: Cluster, api: KubeApi
) -> None:
    keep = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    cluster.add_node("w1", taints=[keep])
    cluster.add_pod("odoo", "odoo-a", "w1", APP)
    cluster.add_pod("kube-system", "proxy-x", "w1", {}, owner="DaemonSet")
    cluster.add_pod("odoo", "odoo-b", "w2", APP)
    undo: list[faults.Undo] = []

    faults.taint_node(api, "w1", undo)

    patches = cluster.seen("PATCH")
    assert {r.content_type for r in patches} == {"application/merge-patch+json"}
    assert patches[0].body == {"spec": {"unschedulable": True}}
    assert patches[1].body["spec"]["taints"] == [
        keep,
        {"key": FAULT_TAINT_KEY, "value": "node-lost", "effect": "NoExecute"},
    ]
    # The taint list is replaced whole, so the write is tied to what was read.
    assert patches[1].body["metadata"]["resourceVersion"]
    deleted = [r.path.rsplit("/", 1)[1] for r in cluster.seen("DELETE")]
    assert deleted == ["odoo-a"]
    assert all(r.query["gracePeriodSeconds"] == ["0"] for r in cluster.seen("DELETE"))
    assert undo == [{"op": "uncordon", "node": "w1"}, {"op": "untaint", "node": "w1"}]

    faults.undo_all(api, None, undo)

    assert cluster.nodes["w1"]["spec"]["taints"] == [keep]
    assert cluster.nodes["w1"]["spec"]["unschedulable"] is False


def test_a_taint_racing_the_node_controller_is_written_again(
    cluster: Cluster, api: KubeApi
) -> None:
    cluster.add_node("w1")
    cluster.patch_conflicts = 2

    api.set_fault_taint("w1", present=True)

    assert len(cluster.seen("PATCH")) == 3
    assert [t["key"] for t in cluster.nodes["w1"]["spec"]["taints"]] == [
        FAULT_TAINT_KEY
    ]
    cluster.patch_conflicts = 99
    with pytest.raises(Conflict, match="kept changing"):
        api.set_fault_taint("w1", present=False)


def test_drain_evicts_through_the_eviction_api_and_waits_out_a_pdb(
    cluster: Cluster, api: KubeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faults, "EVICTION_PAUSE_S", 0.05)
    cluster.add_node("w1")
    cluster.add_pod("odoo", "odoo-a", "w1", APP)
    cluster.evictions_refused = 2
    undo: list[faults.Undo] = []

    faults.drain_node(api, "w1", undo, retry_s=5.0)

    evictions = cluster.seen("POST")
    assert [r.path for r in evictions] == [
        "/api/v1/namespaces/odoo/pods/odoo-a/eviction"
    ] * 3
    assert evictions[-1].body["metadata"] == {"name": "odoo-a", "namespace": "odoo"}
    assert cluster.seen("DELETE") == []  # a drain never bypasses PDBs
    faults.undo_all(api, None, undo)
    assert cluster.nodes["w1"]["spec"]["unschedulable"] is False


def test_a_drain_a_pdb_keeps_blocking_fails_naming_the_pod_leaving_its_undo(
    cluster: Cluster, api: KubeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faults, "EVICTION_PAUSE_S", 0.05)
    cluster.add_node("w1")
    cluster.add_pod("db", "odoo-db-1", "w1", {"cnpg.io/cluster": "odoo-db"})
    cluster.evictions_refused = 10_000
    undo: list[faults.Undo] = []

    with pytest.raises(EvictionBlocked, match="pod db/odoo-db-1 still blocked"):
        faults.drain_node(api, "w1", undo, retry_s=0.3)

    assert cluster.nodes["w1"]["spec"]["unschedulable"] is True
    faults.undo_all(api, None, undo)
    assert cluster.nodes["w1"]["spec"]["unschedulable"] is False


def test_undo_tries_every_step_and_reports_each_failure(
    cluster: Cluster, api: KubeApi
) -> None:
    cluster.add_node("w1")
    steps = [
        {"op": "uncordon", "node": "w1"},
        {"op": "unpause", "node": "w1"},  # no kind cluster on this target
        {"op": "uncordon", "node": "gone"},  # a node deleted meanwhile: nothing to do
    ]
    cluster.nodes["w1"]["spec"]["unschedulable"] = True

    with pytest.raises(FaultError, match="unpause w1") as caught:
        faults.undo_all(api, None, steps)

    assert "gone" not in str(caught.value)
    assert cluster.nodes["w1"]["spec"]["unschedulable"] is False


def test_conflict_and_silence_become_chaoscert_errors(
    cluster: Cluster, api: KubeApi
) -> None:
    cluster.add_node("w1")
    cluster.patch_conflicts = 1
    with pytest.raises(Conflict):
        api.set_unschedulable("w1", True)

    cluster.hang_s = 5.0
    started = time.monotonic()
    with pytest.raises(KubeError):
        api.node("w1")
    # One bounded attempt, not urllib3's default of four.
    assert time.monotonic() - started < 4.0
