"""Where every node of the local stack keeps its files, and what it runs.

The layout is derived from a Topology and a state directory; rendering writes
each node's configuration files and a plan (JSON) that its node agent runs.
Nothing here starts a process.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from chaoscert.topology import Service, Topology

EDGE_NODE = "edge"
DB_USER = "chaoscert"
CLUSTER_SCOPE = "chaoscert"
APP_ROLE = "odoo"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PING_PATH = "/ping"
PATRONI_SYNC_MODE: dict[str, bool | str] = {
    "off": False,
    "on": True,
    "quorum": "quorum",
}


def default_state_dir() -> Path:
    """As root, under /var/tmp: the unprivileged database user must reach it."""
    override = os.environ.get("CHAOSCERT_HOME")
    if override:
        return Path(override)
    if os.geteuid() == 0:
        return Path("/var/tmp/chaoscert")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "chaoscert"


def dbtier_venv() -> Path:
    """Where `chaoscert setup` puts an interpreter with Patroni for the database
    user, when that user cannot run the project's own (one under /root, say)."""
    return default_state_dir() / "dbtier-venv"


@dataclass
class ServicePlan:
    """One program a node runs; the agent restarts it when it dies alone."""

    name: str
    argv: list[str]
    log: str
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    cwd: str | None = None
    stop_timeout_s: float = 10.0


@dataclass
class NodePlan:
    node: str
    zone: str
    address: str
    services: list[ServicePlan]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> NodePlan:
        data = json.loads(text)
        data["services"] = [ServicePlan(**service) for service in data["services"]]
        return cls(**data)


@dataclass(frozen=True)
class Credentials:
    """Passwords generated once per state directory; kept in 0600 files only."""

    superuser: str
    replication: str
    rewind: str
    app: str
    odoo_admin: str

    @classmethod
    def load_or_create(cls, directory: Path) -> Credentials:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        values = {}
        for name in ("superuser", "replication", "rewind", "app", "odoo_admin"):
            path = directory / name
            if not path.exists():
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_urlsafe(24))
            values[name] = path.read_text().strip()
        return cls(**values)

    def values(self) -> list[str]:
        return list(asdict(self).values())


class Layout:
    """Paths, addresses and ports of one local stack."""

    def __init__(self, topology: Topology, state_dir: Path):
        self.topology = topology
        self.state_dir = state_dir

    # paths -----------------------------------------------------------------
    @property
    def secrets_dir(self) -> Path:
        return self.state_dir / "secrets"

    @property
    def shared_dir(self) -> Path:
        """Stands for a ReadWriteMany volume: Odoo's sessions live here."""
        return self.state_dir / "shared"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "stack.lock"

    @property
    def run_lock_file(self) -> Path:
        return self.state_dir / "run.lock"

    @property
    def live_faults_file(self) -> Path:
        return self.state_dir / "live-faults.json"

    @property
    def topology_file(self) -> Path:
        return self.state_dir / "topology.json"

    def node_dir(self, node: str) -> Path:
        return self.state_dir / "nodes" / node

    def log_dir(self, node: str) -> Path:
        return self.node_dir(node) / "logs"

    def run_dir(self, node: str) -> Path:
        return self.node_dir(node) / "run"

    def log_of(self, node: str, service: str) -> Path:
        return self.log_dir(node) / f"{service}.log"

    def plan_file(self, node: str) -> Path:
        return self.node_dir(node) / "plan.json"

    def agent_pid_file(self, node: str) -> Path:
        return self.run_dir(node) / "agent.pid"

    def agent_status_file(self, node: str) -> Path:
        return self.run_dir(node) / "agent-status.json"

    def haproxy_socket(self, node: str) -> Path:
        return self.run_dir(node) / "haproxy.sock"

    # addresses ---------------------------------------------------------------
    def nodes(self) -> list[str]:
        """Every node, the edge included."""
        return [spec.name for spec in self.topology.nodes()] + [EDGE_NODE]

    def address_of(self, node: str) -> str:
        if node == EDGE_NODE:
            return self.topology.edge_address
        return self.topology.address_of(node)

    def zone_of(self, node: str) -> str:
        return "" if node == EDGE_NODE else self.topology.zone_of(node)

    @property
    def base_url(self) -> str:
        return f"http://{self.topology.edge_address}:{self.topology.ports.edge}"

    def patroni_url(self, node: str) -> str:
        return f"http://{self.address_of(node)}:{self.topology.ports.patroni}"

    def etcd_url(self, node: str) -> str:
        return f"http://{self.address_of(node)}:{self.topology.ports.etcd_client}"

    def postgres_hosts(self) -> list[str]:
        return [self.address_of(node) for node in self.topology.running("postgres")]

    def app_conninfo(self) -> str:
        """The libpq multi-host string the app uses; the password is in a passfile."""
        hosts = self.postgres_hosts()
        port = str(self.topology.ports.postgres)
        return " ".join(
            [
                f"host={','.join(hosts)}",
                f"port={','.join([port] * len(hosts))}",
                f"dbname={self.topology.database}",
                f"user={APP_ROLE}",
                f"passfile={self.secrets_dir / 'app.pgpass'}",
                "target_session_attrs=read-write",
                f"connect_timeout={self.topology.app.connect_timeout_s}",
                "application_name=odoo-standin",
            ]
        )

    def superuser_conninfo(self, node: str, password: str) -> dict[str, Any]:
        return {
            "host": self.address_of(node),
            "port": self.topology.ports.postgres,
            "user": "postgres",
            "password": password,
            "dbname": "postgres",
            "connect_timeout": 3,
        }


def _write_private(path: Path, text: str, owner: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    if owner is not None:
        shutil.chown(tmp, owner, owner)
    tmp.replace(path)


def etcd_service(layout: Layout, node: str) -> ServicePlan:
    ports = layout.topology.ports
    members = layout.topology.running("etcd")
    cluster = ",".join(
        f"{member}=http://{layout.address_of(member)}:{ports.etcd_peer}"
        for member in members
    )
    address = layout.address_of(node)
    return ServicePlan(
        name="etcd",
        argv=[
            "etcd",
            f"--name={node}",
            f"--data-dir={layout.node_dir(node) / 'etcd'}",
            f"--listen-client-urls=http://{address}:{ports.etcd_client}",
            f"--advertise-client-urls=http://{address}:{ports.etcd_client}",
            f"--listen-peer-urls=http://{address}:{ports.etcd_peer}",
            f"--initial-advertise-peer-urls=http://{address}:{ports.etcd_peer}",
            f"--initial-cluster={cluster}",
            "--initial-cluster-state=new",
            "--initial-cluster-token=chaoscert",
            # Loopback round trips are sub-millisecond: a short election keeps a
            # lost etcd member's cost small next to Patroni's ttl.
            "--heartbeat-interval=100",
            "--election-timeout=1000",
            "--enable-v2=false",
        ],
        log=str(layout.log_of(node, "etcd")),
    )


def patroni_config(
    layout: Layout, node: str, creds: Credentials, db_user: str | None
) -> dict[str, Any]:
    ports = layout.topology.ports
    settings = layout.topology.patroni
    address = layout.address_of(node)
    hba = [
        "local all all trust",
        "host replication replicator 127.0.0.0/8 scram-sha-256",
        "host all all 127.0.0.0/8 scram-sha-256",
    ]
    return {
        "scope": CLUSTER_SCOPE,
        "name": node,
        "log": {"level": "INFO"},
        "restapi": {
            "listen": f"{address}:{ports.patroni}",
            "connect_address": f"{address}:{ports.patroni}",
        },
        "etcd3": {
            "hosts": [
                f"{layout.address_of(member)}:{ports.etcd_client}"
                for member in layout.topology.running("etcd")
            ],
            "protocol": "http",
        },
        "bootstrap": {
            "dcs": {
                "ttl": settings.ttl,
                "loop_wait": settings.loop_wait,
                "retry_timeout": settings.retry_timeout,
                "maximum_lag_on_failover": settings.maximum_lag_on_failover,
                "synchronous_mode": PATRONI_SYNC_MODE[settings.synchronous_mode],
                "failsafe_mode": settings.failsafe_mode,
                "postgresql": {
                    "use_pg_rewind": True,
                    "use_slots": True,
                    "parameters": {
                        "wal_level": "replica",
                        "hot_standby": "on",
                        "wal_log_hints": "on",
                        "max_connections": 100,
                        "max_wal_senders": 10,
                        "max_replication_slots": 10,
                        "wal_keep_size": "256MB",
                        # A replica that stops answering is dropped from the
                        # synchronous set after this, not after the 60 s default.
                        "wal_sender_timeout": f"{settings.wal_sender_timeout_s}s",
                    },
                },
            },
            "initdb": [{"encoding": "UTF8"}, "data-checksums"],
        },
        "postgresql": {
            "listen": f"{address}:{ports.postgres}",
            "connect_address": f"{address}:{ports.postgres}",
            "data_dir": str(layout.node_dir(node) / "pgdata"),
            "bin_dir": str(PG_BIN),
            "pgpass": str(layout.run_dir(node) / "patroni.pgpass"),
            "authentication": {
                "superuser": {"username": "postgres", "password": creds.superuser},
                "replication": {
                    "username": "replicator",
                    "password": creds.replication,
                },
                "rewind": {"username": "rewinder", "password": creds.rewind},
            },
            "parameters": {
                "unix_socket_directories": str(layout.run_dir(node)),
                "shared_buffers": "64MB",
            },
            "pg_hba": hba,
            # A replica cloned while another is being cloned would otherwise
            # wait for a spread checkpoint (100 s of an empty cold start).
            "basebackup": {"checkpoint": "fast"},
        },
        "tags": {"nofailover": False, "noloadbalance": False},
    }


def patroni_service(
    layout: Layout, node: str, python: str, db_user: str | None
) -> ServicePlan:
    return ServicePlan(
        name="patroni",
        argv=[python, "-m", "patroni", str(layout.node_dir(node) / "patroni.yml")],
        log=str(layout.log_of(node, "patroni")),
        user=db_user,
        cwd=str(layout.node_dir(node)),
        stop_timeout_s=30.0,
    )


def app_service(layout: Layout, node: str) -> ServicePlan:
    app = layout.topology.app
    address = layout.address_of(node)
    return ServicePlan(
        name="app",
        argv=[
            sys.executable,
            "-m",
            "gunicorn",
            f"--workers={app.workers}",
            f"--bind={address}:{layout.topology.ports.app}",
            # gunicorn's worker timeout plays Odoo's limit_time_real.
            f"--timeout={app.worker_timeout_s}",
            "--graceful-timeout=5",
            # gunicorn keeps one control socket per user: replicas would share it.
            "--no-control-socket",
            f"--pid={layout.run_dir(node) / 'gunicorn.pid'}",
            "chaoscert.standin.app:application",
        ],
        log=str(layout.log_of(node, "app")),
        env={
            "CHAOSCERT_STANDIN_DSN": layout.app_conninfo(),
            "CHAOSCERT_STANDIN_DB": layout.topology.database,
            "CHAOSCERT_STANDIN_ADMIN_LOGIN": "admin",
            "CHAOSCERT_STANDIN_ADMIN_PASSWORD_FILE": str(
                layout.secrets_dir / "odoo_admin"
            ),
            "CHAOSCERT_STANDIN_SESSIONS_DIR": str(layout.shared_dir / "sessions"),
            "CHAOSCERT_STANDIN_STATEMENT_TIMEOUT_S": str(app.statement_timeout_s),
        },
        stop_timeout_s=10.0,
    )


def ingress_config(layout: Layout, node: str) -> str:
    """An ingress replica: balances over every app replica."""
    bind = f"{layout.address_of(node)}:{layout.topology.ports.ingress}"
    return _balancer_config(layout, node, bind, "app", layout.topology.ports.app)


def edge_config(layout: Layout) -> str:
    """The edge load balancer: balances over every ingress replica."""
    bind = f"{layout.topology.edge_address}:{layout.topology.ports.edge}"
    port = layout.topology.ports.ingress
    return _balancer_config(layout, EDGE_NODE, bind, "ingress", port)


def _balancer_config(
    layout: Layout, node: str, bind: str, backend: Service, port: int
) -> str:
    settings = layout.topology.ingress
    servers = "\n".join(
        f"    server {target} {layout.address_of(target)}:{port} check"
        for target in layout.topology.running(backend)
    )
    return _haproxy_config(
        socket=layout.haproxy_socket(node),
        bind=bind,
        backend=backend,
        servers=servers,
        check_path=PING_PATH if backend == "ingress" else "/web/health",
        inter_ms=settings.check_interval_ms,
        fall=settings.fall,
        rise=settings.rise,
        server_timeout_s=settings.server_timeout_s,
    )


def _haproxy_config(
    socket: Path,
    bind: str,
    backend: str,
    servers: str,
    check_path: str,
    inter_ms: int,
    fall: int,
    rise: int,
    server_timeout_s: int,
) -> str:
    return f"""# rendered by chaoscert; edits are overwritten by `chaoscert local up`
global
    stats socket {socket} mode 600 level admin
    maxconn 4096

defaults
    mode http
    option httplog
    log stdout format raw local0
    timeout connect 1s
    timeout client 60s
    timeout server {server_timeout_s}s
    timeout check 1s
    retries 2
    option redispatch

frontend web
    bind {bind}
    # The balancer's own liveness, as Traefik's /ping: the edge checks this,
    # not the apps behind it, as a cloud load balancer checks its targets.
    monitor-uri {PING_PATH}
    default_backend {backend}

backend {backend}
    balance roundrobin
    option httpchk GET {check_path}
    http-check expect status 200
    # Checks speed up while a server changes state, so a recovered one
    # takes traffic again within about a second.
    default-server inter {inter_ms} fastinter 250 downinter 500 fall {fall} rise {rise}
{servers}
"""


def haproxy_service(layout: Layout, node: str, config: Path) -> ServicePlan:
    return ServicePlan(
        name="ingress" if node != EDGE_NODE else "edge",
        argv=["haproxy", "-db", "-f", str(config)],
        log=str(layout.log_of(node, "haproxy")),
        stop_timeout_s=5.0,
    )


def render(
    layout: Layout, creds: Credentials, db_python: str, db_user: str | None
) -> dict[str, NodePlan]:
    """Write every node's configuration and plan; return the plans by node."""
    layout.shared_dir.joinpath("sessions").mkdir(parents=True, exist_ok=True)
    _write_private(
        layout.secrets_dir / "app.pgpass",
        "".join(
            f"{host}:{layout.topology.ports.postgres}:*:{APP_ROLE}:{creds.app}\n"
            for host in layout.postgres_hosts()
        ),
    )
    layout.topology_file.write_text(layout.topology.model_dump_json(indent=2))
    plans: dict[str, NodePlan] = {}
    for spec in layout.topology.nodes():
        node = spec.name
        for directory in (layout.log_dir(node), layout.run_dir(node)):
            directory.mkdir(parents=True, exist_ok=True)
        services: list[ServicePlan] = []
        if "etcd" in spec.services:
            services.append(etcd_service(layout, node))
        if "postgres" in spec.services:
            _write_private(
                layout.node_dir(node) / "patroni.yml",
                yaml.safe_dump(patroni_config(layout, node, creds, db_user)),
                owner=db_user,
            )
            services.append(patroni_service(layout, node, db_python, db_user))
        if "app" in spec.services:
            services.append(app_service(layout, node))
        if "ingress" in spec.services:
            config = layout.node_dir(node) / "haproxy.cfg"
            config.write_text(ingress_config(layout, node))
            services.append(haproxy_service(layout, node, config))
        plans[node] = NodePlan(
            node, layout.zone_of(node), layout.address_of(node), services
        )

    for directory in (layout.log_dir(EDGE_NODE), layout.run_dir(EDGE_NODE)):
        directory.mkdir(parents=True, exist_ok=True)
    edge_cfg = layout.node_dir(EDGE_NODE) / "haproxy.cfg"
    edge_cfg.write_text(edge_config(layout))
    plans[EDGE_NODE] = NodePlan(
        EDGE_NODE,
        "",
        layout.address_of(EDGE_NODE),
        [haproxy_service(layout, EDGE_NODE, edge_cfg)],
    )
    for node, plan in plans.items():
        layout.plan_file(node).write_text(plan.to_json())
    return plans
