"""The shipped kind config and manifests validate; broken copies are refused by name."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from chaoscert.errors import ConfigError
from chaoscert.platforms.kubernetes.manifests import (
    ZONE_LABEL,
    Document,
    manifest_files,
    validate_kind_config,
    validate_manifests,
)
from chaoscert.targets import load_target

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "fixtures/kind/cluster.yaml"
MANIFESTS = ROOT / "fixtures/k8s"
TARGET = ROOT / "fixtures/targets/kind.yaml"


def by_label(documents: list[Document]) -> dict[str, Document]:
    return {doc.label: doc for doc in documents}


def test_the_kind_config_validates_with_two_workers_per_zone() -> None:
    cluster = validate_kind_config(CONFIG)

    roles = [node.role for node in cluster.nodes]
    assert roles == ["control-plane"] + ["worker"] * 6
    assert cluster.zones() == {"zone-a": 2, "zone-b": 2, "zone-c": 2}
    (mapping,) = cluster.nodes[0].extraPortMappings
    target = load_target(TARGET)
    assert target.base_url == f"http://{mapping.listenAddress}:{mapping.hostPort}"
    assert mapping.containerPort == 30080


def test_every_shipped_manifest_validates() -> None:
    documents = validate_manifests(MANIFESTS)

    assert [path.name for path in manifest_files(MANIFESTS)] == sorted(
        path.name for path in MANIFESTS.glob("*.yaml")
    )
    assert {
        "Namespace/odoo",
        "Namespace/traefik",
        "Cluster/odoo-db",
        "Job/odoo-init",
        "Deployment/odoo",
        "Service/odoo",
        "PodDisruptionBudget/odoo",
        "Deployment/traefik",
        "Service/traefik",
        "PodDisruptionBudget/traefik",
        "ServiceAccount/traefik",
        "ClusterRole/chaoscert-traefik",
        "ClusterRoleBinding/chaoscert-traefik",
        "IngressClass/traefik",
        "Ingress/odoo",
    } <= set(by_label(documents))


def test_the_stack_matches_the_kind_target_profile() -> None:
    target = load_target(TARGET)
    documents = by_label(validate_manifests(MANIFESTS))

    database = documents[f"Cluster/{target.database.cluster}"]
    assert database.namespace == target.namespaces.database
    assert database.body["spec"]["instances"] == 3
    for tier, namespace in (
        (target.selectors.app, target.namespaces.app),
        (target.selectors.ingress, target.namespaces.ingress),
    ):
        key, value = tier.split("=")
        deployment = documents[f"Deployment/{value}"]
        template = deployment.body["spec"]["template"]
        assert deployment.namespace == namespace
        assert template["metadata"]["labels"][key] == value
        assert deployment.body["spec"]["replicas"] == 3
        (spread,) = template["spec"]["topologySpreadConstraints"]
        assert spread["topologyKey"] == ZONE_LABEL == target.zone_label
    service = documents["Service/traefik"].body["spec"]
    assert service["type"] == "NodePort"
    assert service["ports"][0]["nodePort"] == 30080


def _walk(value: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(value, dict):
        found.append(value)
        for item in value.values():
            found += _walk(item)
    elif isinstance(value, list):
        for item in value:
            found += _walk(item)
    return found


def test_no_password_is_written_in_the_manifests() -> None:
    documents = validate_manifests(MANIFESTS)

    assert not [doc.label for doc in documents if doc.kind == "Secret"]
    for doc in documents:
        for mapping in _walk(doc.body):
            name = str(mapping.get("name", ""))
            if "PASSWORD" in name.upper() and "value" in mapping:
                pytest.fail(f"{doc.label}: {name} has a literal value")


# -- broken copies ---------------------------------------------------------------
@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "k8s"
    shutil.copytree(MANIFESTS, target)
    return target


def replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        pytest.param(
            "30-odoo.yaml",
            "readinessProbe:",
            "readinesProbe:",
            "Deployment/odoo: field spec.template.spec.containers.0.readinesProbe:"
            " unknown field",
            id="misspelt-deployment-field",
        ),
        pytest.param(
            "50-traefik.yaml",
            "replicas: 3",
            "replicas: three",
            "Deployment/traefik: field spec.replicas: 'three' is not of type",
            id="wrong-type",
        ),
        pytest.param(
            "10-database.yaml",
            "podAntiAffinityType: required",
            "podAntiAfinityType: required",
            "Cluster/odoo-db: field spec.affinity.podAntiAfinityType: unknown field",
            id="unknown-cluster-field",
        ),
        pytest.param(
            "10-database.yaml",
            "instances: 3",
            'instances: "3"',
            "Cluster/odoo-db: field spec.instances: Input should be a valid integer",
            id="cluster-wrong-type",
        ),
        pytest.param(
            "10-database.yaml",
            "method: any",
            "method: all",
            "Cluster/odoo-db: field spec.postgresql.synchronous.method:",
            id="cluster-bad-enum",
        ),
        pytest.param(
            "60-ingress.yaml",
            "kind: Ingress",
            "kind: Ingres",
            "Ingres/odoo: no schema for Ingres (networking.k8s.io/v1)",
            id="unknown-kind",
        ),
    ],
)
def test_a_broken_manifest_is_refused_naming_file_document_and_field(
    copy: Path, file: str, old: str, new: str, expected: str
) -> None:
    replace(copy / file, old, new)

    with pytest.raises(ConfigError) as raised:
        validate_manifests(copy)

    message = str(raised.value)
    assert message.startswith(f"{copy / file}: ")
    assert expected in message
    assert "\n" not in message


def test_a_manifest_without_an_order_prefix_is_refused(copy: Path) -> None:
    (copy / "60-ingress.yaml").rename(copy / "ingress.yaml")

    with pytest.raises(ConfigError, match=r"ingress\.yaml: manifest names start with"):
        validate_manifests(copy)


def test_invalid_yaml_names_the_line(copy: Path) -> None:
    (copy / "70-broken.yaml").write_text("kind: Service\nmetadata: [oops\n")

    with pytest.raises(ConfigError, match=r"70-broken\.yaml: line \d+ not valid YAML"):
        validate_manifests(copy)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "      topology.kubernetes.io/zone: zone-b\n",
            "      - topology.kubernetes.io/zone=zone-b\n",
            "field nodes.3.labels: Input should be a valid dictionary",
            id="zone-labels-as-a-list",
        ),
        pytest.param(
            "    labels:\n      topology.kubernetes.io/zone: zone-c\n",
            "    labels:\n      zone: zone-c\n",
            f"field nodes.5: Value error, a worker needs the label {ZONE_LABEL}",
            id="worker-without-zone",
        ),
        pytest.param(
            "hostPort: 30080",
            "hostport: 30080",
            "field nodes.0.extraPortMappings.0.hostport: unknown field",
            id="misspelt-port-mapping-field",
        ),
        pytest.param(
            "containerPort: 30080",
            'containerPort: "30080"',
            "field nodes.0.extraPortMappings.0.containerPort:",
            id="port-as-a-string",
        ),
        pytest.param(
            "apiVersion: kind.x-k8s.io/v1alpha4",
            "apiVersion: kind.x-k8s.io/v1alpha3",
            "field apiVersion: Input should be 'kind.x-k8s.io/v1alpha4'",
            id="old-api-version",
        ),
    ],
)
def test_a_broken_kind_config_is_refused_naming_file_and_field(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    broken = tmp_path / "cluster.yaml"
    shutil.copy(CONFIG, broken)
    replace(broken, old, new)

    with pytest.raises(ConfigError) as raised:
        validate_kind_config(broken)

    message = str(raised.value)
    assert message.startswith(f"{broken}: Cluster (kind config): ")
    assert expected in message
