"""Validation of the kind config and the reference stack's manifests.

`chaoscert kind up` runs it before touching any cluster, and the tests run it
on every shipped file, so a misspelt field fails here, naming file, document
and field, rather than minutes into a cluster's creation.

Built-in Kubernetes kinds are checked against the JSON schemas derived from
Kubernetes' OpenAPI that the kubernetes-validate package ships, in strict mode
(an unknown field is an error), for KUBERNETES_VERSION: the version of the
node image fixtures/kind/cluster.yaml pins.

The CloudNativePG `Cluster` and kind's cluster config have no schema there.
They are checked with pydantic models written from the CloudNativePG 1.30 API
reference and kind's v1alpha4 configuration docs. These model the subset of
fields the shipped files use, not the upstream CRD or config type: a field
upstream accepts but the models lack is refused until it is added here.

Every error is one ConfigError line: file, document (kind/name), field path.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import kubernetes_validate  # type: ignore[import-untyped]
import yaml
from pydantic import (
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from chaoscert.config import Strict
from chaoscert.errors import ConfigError

# The Kubernetes release of the node image fixtures/kind/cluster.yaml pins.
KUBERNETES_VERSION = "1.36"
ZONE_LABEL = "topology.kubernetes.io/zone"
MANIFEST_NAME = re.compile(r"^\d\d-[a-z0-9-]+\.ya?ml$")
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


# -- documents -------------------------------------------------------------------
@dataclass(frozen=True)
class Document:
    """One YAML document of a manifest file; `index` counts from 1."""

    path: Path
    index: int
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.body.get("apiVersion", ""))

    @property
    def name(self) -> str:
        metadata = self.body.get("metadata")
        return str(metadata.get("name", "")) if isinstance(metadata, dict) else ""

    @property
    def namespace(self) -> str:
        metadata = self.body.get("metadata")
        if not isinstance(metadata, dict):
            return ""
        return str(metadata.get("namespace", ""))

    @property
    def label(self) -> str:
        """`Kind/name`, or the document's position when it has neither."""
        if self.kind and self.name:
            return f"{self.kind}/{self.name}"
        return f"document {self.index}"


def _error(path: Path, label: str, loc: list[str | int], message: str) -> ConfigError:
    field = ".".join(str(part) for part in loc) or "(top level)"
    return ConfigError(f"{path}: {label}: field {field}: {message}")


def load_documents(path: Path) -> list[Document]:
    """The non-empty YAML documents of `path`, each a mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        bodies = [body for body in yaml.safe_load_all(text) if body is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} not valid YAML") from None
    documents = []
    for index, body in enumerate(bodies, start=1):
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: document {index} is not a mapping")
        documents.append(Document(path, index, body))
    return documents


# -- CloudNativePG: the used subset of the Cluster resource -----------------------
class _Exact(Strict):
    """No type coercion: the API server would not turn "3" into 3 either."""

    model_config = ConfigDict(strict=True)


class ObjectMeta(_Exact):
    name: str = Field(pattern=DNS_LABEL, max_length=63)
    namespace: str = Field(pattern=DNS_LABEL, max_length=63)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class SynchronousReplication(_Exact):
    method: Literal["any", "first"]
    number: int = Field(ge=1)
    dataDurability: Literal["required", "preferred"] | None = None
    failoverQuorum: bool | None = None


class PostgresConfiguration(_Exact):
    parameters: dict[str, str] = Field(default_factory=dict)
    synchronous: SynchronousReplication | None = None


class BootstrapInitDB(_Exact):
    database: str = Field(min_length=1)
    owner: str = Field(min_length=1)


class BootstrapConfiguration(_Exact):
    initdb: BootstrapInitDB


class AffinityConfiguration(_Exact):
    enablePodAntiAffinity: bool | None = None
    topologyKey: str | None = None
    podAntiAffinityType: Literal["preferred", "required"] | None = None


class StorageConfiguration(_Exact):
    size: str = Field(pattern=QUANTITY)
    storageClass: str | None = None


class ResourceRequirements(_Exact):
    requests: dict[str, str | int] = Field(default_factory=dict)
    limits: dict[str, str | int] = Field(default_factory=dict)


class ClusterSpec(_Exact):
    instances: int = Field(ge=1)
    imageName: str | None = Field(default=None, min_length=1)
    bootstrap: BootstrapConfiguration | None = None
    postgresql: PostgresConfiguration | None = None
    affinity: AffinityConfiguration | None = None
    storage: StorageConfiguration
    resources: ResourceRequirements | None = None


class CnpgCluster(_Exact):
    """A CloudNativePG Cluster (postgresql.cnpg.io/v1), the fields chaoscert uses."""

    apiVersion: Literal["postgresql.cnpg.io/v1"]
    kind: Literal["Cluster"]
    metadata: ObjectMeta
    spec: ClusterSpec


CUSTOM_RESOURCES: dict[tuple[str, str], type[Strict]] = {
    ("postgresql.cnpg.io/v1", "Cluster"): CnpgCluster,
}


# -- kind: the used subset of the v1alpha4 cluster config ------------------------
class PortMapping(_Exact):
    containerPort: int = Field(ge=1, le=65535)
    hostPort: int = Field(ge=1, le=65535)
    listenAddress: str | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] | None = None

    @field_validator("listenAddress")
    @classmethod
    def _an_address(cls, value: str | None) -> str | None:
        if value is not None:
            ipaddress.ip_address(value)
        return value


class KindNode(_Exact):
    role: Literal["control-plane", "worker"]
    image: str | None = Field(default=None, min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)
    extraPortMappings: list[PortMapping] = Field(default_factory=list)

    @model_validator(mode="after")
    def _workers_have_a_zone(self) -> KindNode:
        # chaoscert's rule, not kind's: zone faults and spreading need it.
        if self.role == "worker" and not self.labels.get(ZONE_LABEL):
            raise ValueError(f"a worker needs the label {ZONE_LABEL}")
        return self


class KindCluster(_Exact):
    """kind's cluster config (kind.x-k8s.io/v1alpha4), the fields chaoscert uses.

    chaoscert's own rule on top: every worker carries a zone label."""

    kind: Literal["Cluster"]
    apiVersion: Literal["kind.x-k8s.io/v1alpha4"]
    nodes: list[KindNode] = Field(min_length=1)

    @model_validator(mode="after")
    def _has_a_control_plane(self) -> KindCluster:
        if not any(node.role == "control-plane" for node in self.nodes):
            raise ValueError("no node has role control-plane")
        return self

    def zones(self) -> dict[str, int]:
        """Workers per zone."""
        counts: dict[str, int] = {}
        for node in self.nodes:
            zone = node.labels.get(ZONE_LABEL)
            if node.role == "worker" and zone:
                counts[zone] = counts.get(zone, 0) + 1
        return counts


# -- validation ------------------------------------------------------------------
def _pydantic_error(path: Path, label: str, exc: ValidationError) -> ConfigError:
    errors = exc.errors()
    # A misspelt field is both unknown and, often, a required one missing:
    # naming the misspelling says what to fix.
    unknown = [error for error in errors if error["type"] == "extra_forbidden"]
    first = (unknown or errors)[0]
    message = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
    more = exc.error_count() - 1
    if more:
        message += f" (and {more} more)"
    return _error(path, label, list(first["loc"]), message)


def _schema_error(document: Document, exc: Any) -> ConfigError:
    loc: list[str | int] = list(exc.path)
    message = str(exc.message)
    if exc.validator == "additionalProperties" and isinstance(exc.instance, dict):
        known = set(exc.schema.get("properties", {}))
        unknown = sorted(str(key) for key in exc.instance if key not in known)
        if unknown:
            loc.append(unknown[0])
            message = "unknown field"
    return _error(document.path, document.label, loc, message)


def validate_document(
    document: Document, kubernetes_version: str = KUBERNETES_VERSION
) -> None:
    """Check one document against its schema or model; ConfigError if it fails."""
    for key in ("apiVersion", "kind"):
        if not isinstance(document.body.get(key), str):
            raise _error(document.path, document.label, [key], "missing")
    model = CUSTOM_RESOURCES.get((document.api_version, document.kind))
    if model is not None:
        try:
            model.model_validate(document.body)
        except ValidationError as exc:
            raise _pydantic_error(document.path, document.label, exc) from None
        return
    try:
        kubernetes_validate.validate(document.body, kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        raise _schema_error(document, exc) from None
    except kubernetes_validate.SchemaNotFoundError:
        raise ConfigError(
            f"{document.path}: {document.label}: no schema for {document.kind}"
            f" ({document.api_version}) in Kubernetes {kubernetes_version}, and no"
            " chaoscert model of it"
        ) from None


def manifest_files(directory: Path) -> list[Path]:
    """The manifest files of `directory` in the order they are applied."""
    if not directory.is_dir():
        raise ConfigError(f"{directory}: not a directory of manifests")
    files = sorted(
        path for path in directory.iterdir() if path.suffix in {".yaml", ".yml"}
    )
    if not files:
        raise ConfigError(f"{directory}: no .yaml manifests")
    for path in files:
        if not MANIFEST_NAME.match(path.name):
            raise ConfigError(
                f"{path}: manifest names start with two digits and a dash"
                " (00-, 10-, ...), which set the order they are applied in"
            )
    return files


def validate_manifests(
    directory: Path, kubernetes_version: str = KUBERNETES_VERSION
) -> list[Document]:
    """Every document of every manifest in `directory`, validated, in apply order."""
    documents = []
    for path in manifest_files(directory):
        for document in load_documents(path):
            validate_document(document, kubernetes_version)
            documents.append(document)
    return documents


def validate_kind_config(path: Path) -> KindCluster:
    """Load and check a kind cluster config."""
    documents = load_documents(path)
    if len(documents) != 1:
        raise ConfigError(f"{path}: a kind config is one YAML document")
    try:
        return KindCluster.model_validate(documents[0].body)
    except ValidationError as exc:
        raise _pydantic_error(path, "Cluster (kind config)", exc) from None
