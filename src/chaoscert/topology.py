"""The shape of the embedded local stack: zones, nodes, what runs where, tuning."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from chaoscert.config import Strict, load_model

Service = Literal["etcd", "postgres", "app", "ingress"]
SyncMode = Literal["off", "on", "quorum"]
ALL_SERVICES: tuple[Service, ...] = ("etcd", "postgres", "app", "ingress")


class NodeSpec(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9]{0,15}$")
    services: tuple[Service, ...] = ALL_SERVICES


class ZoneSpec(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")
    nodes: tuple[NodeSpec, ...] = Field(min_length=1)


class Ports(Strict):
    etcd_client: int = Field(default=23790, ge=1024, le=65535)
    etcd_peer: int = Field(default=23800, ge=1024, le=65535)
    postgres: int = Field(default=25432, ge=1024, le=65535)
    patroni: int = Field(default=28008, ge=1024, le=65535)
    app: int = Field(default=28069, ge=1024, le=65535)
    ingress: int = Field(default=28080, ge=1024, le=65535)
    edge: int = Field(default=28000, ge=1024, le=65535)

    @model_validator(mode="after")
    def _distinct(self) -> Ports:
        # Several services share a node's address, so their ports must differ.
        values = self.model_dump()
        seen: dict[int, str] = {}
        for name, port in values.items():
            if port in seen:
                raise ValueError(f"{name} and {seen[port]} both use port {port}")
            seen[port] = name
        return self


class PatroniSettings(Strict):
    """Patroni's DCS timing; Patroni requires loop_wait + 2 x retry_timeout <= ttl."""

    ttl: int = Field(default=20, ge=20)
    loop_wait: int = Field(default=1, ge=1)
    retry_timeout: int = Field(default=4, ge=3)
    # off: asynchronous; on: one synchronous standby; quorum: a commit waits
    # for any one replica, so losing one replica does not stall writes.
    synchronous_mode: SyncMode = "quorum"
    # Keep the primary when the DCS is unreachable but every member answers.
    failsafe_mode: bool = True
    maximum_lag_on_failover: int = Field(default=1048576, ge=0)
    wal_sender_timeout_s: int = Field(default=5, ge=1)

    @field_validator("synchronous_mode", mode="before")
    @classmethod
    def _yaml_booleans(cls, value: object) -> object:
        # YAML 1.1 reads on/off/true/false as booleans.
        if isinstance(value, bool):
            return "on" if value else "off"
        return value

    @property
    def synchronous(self) -> bool:
        return self.synchronous_mode != "off"

    @model_validator(mode="after")
    def _timing_rule(self) -> PatroniSettings:
        if self.loop_wait + 2 * self.retry_timeout > self.ttl:
            raise ValueError(
                f"loop_wait ({self.loop_wait}) + 2 x retry_timeout"
                f" ({self.retry_timeout}) must not exceed ttl ({self.ttl})"
            )
        return self


class AppSettings(Strict):
    workers: int = Field(default=2, ge=1, le=16)
    statement_timeout_s: float = Field(default=5.0, gt=0)
    worker_timeout_s: int = Field(default=30, ge=2)
    connect_timeout_s: int = Field(default=2, ge=1)


class IngressSettings(Strict):
    check_interval_ms: int = Field(default=1000, ge=100)
    fall: int = Field(default=2, ge=1)
    rise: int = Field(default=2, ge=1)
    server_timeout_s: int = Field(default=15, ge=1)


class Topology(Strict):
    """A local stack layout; fixtures/topologies/*.yaml."""

    name: str
    description: str = ""
    zones: tuple[ZoneSpec, ...] = Field(min_length=1)
    edge_address: str = Field(default="127.0.0.10", pattern=r"^127\.\d+\.\d+\.\d+$")
    ports: Ports = Ports()
    patroni: PatroniSettings = PatroniSettings()
    app: AppSettings = AppSettings()
    ingress: IngressSettings = IngressSettings()
    database: str = Field(default="logistics", pattern=r"^[a-z][a-z0-9_]{0,30}$")

    @model_validator(mode="after")
    def _sound(self) -> Topology:
        names = [node.name for zone in self.zones for node in zone.nodes]
        if len(set(names)) != len(names):
            raise ValueError("node names must be unique across zones")
        if len({zone.name for zone in self.zones}) != len(self.zones):
            raise ValueError("zone names must be unique")
        for service in ("postgres", "app", "ingress", "etcd"):
            if not any(service in node.services for node in self.nodes()):
                raise ValueError(f"no node runs {service}")
        etcd = sum("etcd" in node.services for node in self.nodes())
        if etcd % 2 == 0:
            raise ValueError(f"etcd needs an odd number of members, not {etcd}")
        return self

    def nodes(self) -> list[NodeSpec]:
        return [node for zone in self.zones for node in zone.nodes]

    def zone_of(self, node: str) -> str:
        for zone in self.zones:
            if any(spec.name == node for spec in zone.nodes):
                return zone.name
        raise KeyError(node)

    def address_of(self, node: str) -> str:
        """Loopback address 127.0.Z.N: zone Z and node N, both counted from 1."""
        for z, zone in enumerate(self.zones, start=1):
            for n, spec in enumerate(zone.nodes, start=1):
                if spec.name == node:
                    return f"127.0.{z}.{n}"
        raise KeyError(node)

    def running(self, service: Service) -> list[str]:
        return [node.name for node in self.nodes() if service in node.services]


def load_topology(path: Path) -> Topology:
    """Load and validate a topology file; errors name the file and field."""
    return load_model(path, Topology)
