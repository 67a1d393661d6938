"""Target profiles: how chaoscert reaches a Kubernetes cluster and what it may do.

A profile (fixtures/targets/*.yaml) names the kube context, the contexts where
destructive faults are allowed, namespaces, the URL users reach, where the
Odoo credentials come from (environment variables, never the file), label
selectors, the database flavour and the way node faults are made.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from chaoscert.config import Strict, load_model
from chaoscert.errors import ConfigError

LABEL_SELECTOR = (
    r"^[A-Za-z0-9./_-]+(=[A-Za-z0-9._-]*)?(,[A-Za-z0-9./_-]+(=[A-Za-z0-9._-]*)?)*$"
)


class Namespaces(Strict):
    app: str = Field(pattern=r"^[a-z0-9-]{1,63}$")
    database: str = Field(pattern=r"^[a-z0-9-]{1,63}$")
    ingress: str = Field(pattern=r"^[a-z0-9-]{1,63}$")


class OdooAccess(Strict):
    """The Odoo database and the environment variables holding the login."""

    database: str = Field(min_length=1)
    login_env: str = Field(
        default="CHAOSCERT_ODOO_LOGIN", pattern=r"^[A-Z_][A-Z0-9_]*$"
    )
    password_env: str = Field(
        default="CHAOSCERT_ODOO_PASSWORD", pattern=r"^[A-Z_][A-Z0-9_]*$"
    )

    def credentials(self, source: Path) -> tuple[str, SecretStr]:
        """Login and password from the environment; ConfigError names what is unset."""
        values = {}
        for env in (self.login_env, self.password_env):
            value = os.environ.get(env)
            if not value:
                raise ConfigError(
                    f"{source}: odoo credentials: environment variable {env} is not set"
                )
            values[env] = value
        return values[self.login_env], SecretStr(values[self.password_env])


class Selectors(Strict):
    app: str = Field(pattern=LABEL_SELECTOR)
    ingress: str = Field(pattern=LABEL_SELECTOR)


class Database(Strict):
    """Which operator runs Postgres, and so which labels mark the primary."""

    flavour: Literal["cloudnativepg", "patroni"]
    cluster: str = Field(pattern=r"^[a-z0-9-]{1,63}$")
    # Spilo labels the primary spilo-role=master; Patroni 4 defaults to primary.
    patroni_primary_role: Literal["master", "primary"] = "master"

    def primary_selector(self) -> str:
        if self.flavour == "cloudnativepg":
            return f"cnpg.io/cluster={self.cluster},cnpg.io/instanceRole=primary"
        return f"cluster-name={self.cluster},spilo-role={self.patroni_primary_role}"

    def members_selector(self) -> str:
        if self.flavour == "cloudnativepg":
            return f"cnpg.io/cluster={self.cluster}"
        return f"cluster-name={self.cluster}"


class NodeFaults(Strict):
    """How a node hang or crash is made on this cluster.

    kind: pause (hang) or stop (crash) the node's container;
    taint: a NoExecute taint plus force-deleting the node's pods;
    drain: evict the node's pods through the Eviction API, respecting PDBs.
    """

    mode: Literal["kind", "taint", "drain"]
    kind_cluster: str | None = Field(default=None, pattern=r"^[a-z0-9-]{1,63}$")

    @model_validator(mode="after")
    def _kind_needs_cluster(self) -> NodeFaults:
        if self.mode == "kind" and not self.kind_cluster:
            raise ValueError("mode kind needs kind_cluster (the kind cluster's name)")
        return self


class TargetProfile(Strict):
    """A Kubernetes target for --platform kubernetes."""

    name: str = Field(pattern=r"^[a-z0-9-]{1,63}$")
    context: str = Field(min_length=1)
    destructive_contexts: tuple[str, ...] = ()
    namespaces: Namespaces
    base_url: str = Field(pattern=r"^https?://[^\s/]+(/.*)?$")
    odoo: OdooAccess
    selectors: Selectors
    database: Database
    zone_label: str = "topology.kubernetes.io/zone"
    node_faults: NodeFaults

    def allows_destruction(self, context: str) -> bool:
        return context in self.destructive_contexts

    def refuse_unless_allowed(self, context: str, fault: str) -> None:
        """One clear line when `fault` would hit a context the profile protects."""
        if not self.allows_destruction(context):
            allowed = ", ".join(self.destructive_contexts) or "none"
            raise ConfigError(
                f"target {self.name}: refusing {fault} on context {context!r};"
                f" destructive faults are allowed only on: {allowed}"
            )


def load_target(path: Path) -> TargetProfile:
    """Load and validate a target profile; errors name the file and field."""
    return load_model(path, TargetProfile)
