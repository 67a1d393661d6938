"""`chaoscert run --platform kubernetes`: the same features, refused or planned.

No cluster runs here. The kind profile is taken as far as a cluster is needed
(the kube context); a dry run of the whole catalogue goes against the fake API
server, through the real command, the real feature files and steps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.fake_kube import Cluster, serve
from tests.unit.test_kube_platform import TOKEN, profile, reference, write_kubeconfig

ROOT = Path(__file__).resolve().parents[2]


def chaoscert(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chaoscert.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def fake() -> Iterator[tuple[Cluster, str]]:
    cluster = Cluster()
    reference(cluster)
    server, url = serve(cluster)
    yield cluster, url
    server.shutdown()


def test_the_kind_profile_runs_until_the_cluster_is_needed(tmp_path: Path) -> None:
    empty = write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:6443", "other")
    done = chaoscert(
        "run",
        "--platform=kubernetes",
        "--target=fixtures/targets/kind.yaml",
        f"--reports-dir={tmp_path / 'reports'}",
        env={
            "KUBECONFIG": str(empty),
            "CHAOSCERT_ODOO_LOGIN": "admin",
            "CHAOSCERT_ODOO_PASSWORD": "pw-0a1b2c3d4e5f",
        },
    )

    assert done.returncode == 2
    [line] = [x for x in done.stderr.splitlines() if "chaoscert:" in x]
    assert "context 'kind-chaoscert' is not in kubeconfig" in line
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "reports").exists()


def test_missing_credentials_and_a_protected_context_are_refused(
    tmp_path: Path, fake: tuple[Cluster, str]
) -> None:
    cluster, url = fake
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url)
    env = {"CHAOSCERT_ODOO_LOGIN": "", "CHAOSCERT_ODOO_PASSWORD": ""}
    common = ["run", "--platform=kubernetes", f"--kubeconfig={kubeconfig}"]

    unset = chaoscert(*common, f"--target={profile(tmp_path, url)}", env=env)
    protected = chaoscert(
        *common, f"--target={profile(tmp_path, url, allowed=False)}", env=env
    )

    assert unset.returncode == 2
    assert "environment variable CHAOSCERT_ODOO_LOGIN is not set" in unset.stderr
    assert protected.returncode == 2
    assert "refusing faults on context 'fake-ctx'" in protected.stderr
    assert cluster.writes() == []


def test_a_dry_run_of_the_catalogue_names_what_each_fault_would_hit(
    tmp_path: Path, fake: tuple[Cluster, str]
) -> None:
    cluster, url = fake
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url)
    target = profile(tmp_path, url, allowed=False)  # a dry run needs no permission

    done = chaoscert(
        "run",
        "--platform=kubernetes",
        f"--target={target}",
        f"--kubeconfig={kubeconfig}",
        f"--reports-dir={tmp_path / 'reports'}",
        "--dry-run",
        "--",
        "-p",
        "no:cacheprovider",
    )

    out = done.stdout
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "chaoscert dry run: nothing was injected" in out
    assert "12 passed, 3 skipped" in out  # no etcd or WAL senders to stop there
    assert (
        "inject node hang: node a1 (database primary); nodes: a1 [pods: odoo/odoo-db-1]"
        in out
    )
    assert "inject zone crash: zone zone-a (a1, a2)" in out
    assert "inject database switchover: primary odoo-db-1 to odoo-db-2" in out
    assert "inject ingress replica kill: ingress pod traefik/traefik-a" in out
    assert "SKIPPED on this platform: dcs quorum loss" in out
    assert cluster.writes() == []
    assert TOKEN not in out + done.stderr
    assert not (tmp_path / "reports").exists()


def test_a_scenario_runs_for_real_against_the_api_contract_and_a_served_odoo(
    tmp_path: Path, fake: tuple[Cluster, str], standin_url: str, admin_password: str
) -> None:
    """The whole path with --platform kubernetes: lease, steady state, probes
    against a served Odoo stand-in, a pod killed through the API and replaced
    by its controller, what Kubernetes did recorded, the report written."""
    cluster, url = fake
    cluster.controllers_replace = True
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url)
    target = profile(tmp_path, standin_url)
    reports = tmp_path / "reports"

    done = chaoscert(
        "run",
        "--platform=kubernetes",
        f"--target={target}",
        f"--kubeconfig={kubeconfig}",
        f"--reports-dir={reports}",
        f"--state-dir={tmp_path / 'state'}",
        "--",
        "-k",
        "Killing and ingress",
        "-p",
        "no:cacheprovider",
        env={
            "CHAOSCERT_ODOO_LOGIN": "admin",
            "CHAOSCERT_ODOO_PASSWORD": admin_password,
        },
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((reports / "latest" / "results.json").read_text())
    [scenario] = results["scenarios"]
    assert results["platform"] == "kubernetes"
    assert scenario["status"] == "passed"
    assert scenario["fault"]["target"] == "ingress pod traefik/traefik-a"
    texts = [event["text"] for event in scenario["events"]]
    assert "pod traefik/traefik-a: gone" in texts
    assert any(
        t.startswith("pod traefik/traefik-a-r1: ingress: Running") for t in texts
    )
    assert [r.path for r in cluster.seen("DELETE", "/api/v1")] == [
        "/api/v1/namespaces/traefik/pods/traefik-a"
    ]
    assert cluster.leases == {}  # released
    for path in reports.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert admin_password not in text and TOKEN not in text, path
    assert (reports / "latest" / "report.html").exists()


def test_chaoscert_heal_undoes_what_a_killed_run_left_on_a_target(
    tmp_path: Path, fake: tuple[Cluster, str]
) -> None:
    cluster, url = fake
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url)
    target = profile(tmp_path, url, mode="taint")
    cluster.nodes["b1"]["spec"]["unschedulable"] = True
    record = tmp_path / "state" / "targets" / "fake" / "live-faults.json"
    record.parent.mkdir(parents=True)
    record.write_text(
        json.dumps(
            [
                {
                    "kind": "node_crash",
                    "target": "node b1",
                    "injected_at": "2026-12-03T01:00:00.000+00:00",
                    "details": {"undo": [{"op": "uncordon", "node": "b1"}]},
                }
            ]
        )
    )
    args = [
        "heal",
        "--platform=kubernetes",
        f"--target={target}",
        f"--kubeconfig={kubeconfig}",
        f"--state-dir={tmp_path / 'state'}",
    ]

    first = chaoscert(*args)
    second = chaoscert(*args)

    assert first.returncode == 0, first.stderr
    assert "healed a fault a killed run left behind: node_crash on node b1" in (
        first.stderr
    )
    assert cluster.nodes["b1"]["spec"]["unschedulable"] is False
    assert not record.exists()
    assert cluster.leases == {}
    assert "nothing to heal" in second.stderr
