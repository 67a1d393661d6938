"""`chaoscert kind up | down`: the reference stack on a local kind cluster.

`up` checks the programs and the shipped files, creates the cluster (or
reuses it), installs the CloudNativePG operator, creates the Odoo admin
password and applies fixtures/k8s/ in file-name order, waiting for a file's
database cluster or Job before the next file, then for every Deployment; each
wait is bounded. Running it again repeats nothing that is done. `down`
deletes the cluster.

The admin password goes to kubectl on stdin and to
~/.config/chaoscert/kind.env (mode 0600), never on a command line or a log.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import time
from pathlib import Path

from rich.console import Console

from chaoscert.errors import ChaoscertError, ConfigError, MissingProgramError
from chaoscert.platforms.kubernetes import kind
from chaoscert.platforms.kubernetes.manifests import (
    Document,
    KindCluster,
    manifest_files,
    validate_kind_config,
    validate_manifests,
)

DEFAULT_NAME = "chaoscert"
DEFAULT_CONFIG = Path("fixtures/kind/cluster.yaml")
DEFAULT_MANIFESTS = Path("fixtures/k8s")
TARGET_PROFILE = "fixtures/targets/kind.yaml"

APP_NAMESPACE = "odoo"
# The Secret holding the password of Odoo's admin user, and its key.
ODOO_ADMIN = "odoo-admin"
ODOO_ADMIN_KEY = "password"
ADMIN_LOGIN = "admin"

CREATE_TIMEOUT_S = 600.0
OPERATOR_TIMEOUT_S = 300.0
# The operator's admission webhook answers a little after its rollout.
WEBHOOK_RETRY_S = 90.0
RETRY_PAUSE_S = 5.0
DATABASE_TIMEOUT_S = 900.0
# Installing stock, purchase and account takes minutes on a laptop.
INIT_TIMEOUT_S = 1200.0
JOB_POLL_S = 10.0
ROLLOUT_TIMEOUT_S = 600.0


def env_file() -> Path:
    """Where `up` writes the Odoo login for `chaoscert run`."""
    return Path.home() / ".config" / "chaoscert" / "kind.env"


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], console: Console
) -> None:
    """Add `kind up` and `kind down` to the `chaoscert` command's subcommands."""
    parser = commands.add_parser(
        "kind", help="the reference stack on a local kind cluster (needs Docker)"
    )
    actions = parser.add_subparsers(dest="action", required=True)

    up = actions.add_parser(
        "up", help="create the cluster, install the reference stack, wait for it"
    )
    up.add_argument("--name", default=DEFAULT_NAME, help="kind cluster name")
    up.add_argument("--config", default=str(DEFAULT_CONFIG), help="kind config")
    up.add_argument(
        "--manifests", default=str(DEFAULT_MANIFESTS), help="folder of manifests"
    )
    up.set_defaults(func=lambda args: cmd_up(args, console))

    down = actions.add_parser("down", help="delete the kind cluster")
    down.add_argument("--name", default=DEFAULT_NAME, help="kind cluster name")
    down.set_defaults(func=lambda args: cmd_down(args, console))


# -- up --------------------------------------------------------------------------
def check_programs() -> None:
    """One line naming whatever of docker, kind and kubectl is missing."""
    missing = kind.missing_programs()
    if missing:
        overrides = ", ".join(kind.PROGRAMS[name][0] for name in missing)
        raise MissingProgramError(
            f"chaoscert kind up needs {', '.join(missing)}, not found on PATH"
            f" (or set {overrides}); kind also needs a running Docker engine and"
            " pulls node and application images from the internet"
        )


def check_engine_and_kind() -> None:
    """A Docker engine answers, and kind is recent enough for the node image."""
    try:
        kind.run("docker", ["info", "--format", "{{.ServerVersion}}"], 30.0)
    except kind.CommandError as exc:
        raise ChaoscertError(
            f"kind needs a running Docker engine, and docker cannot reach one: {exc}"
        ) from None
    version = kind.kind_version()
    if version is not None and version < kind.KIND_MIN_VERSION:
        wanted = ".".join(str(part) for part in kind.KIND_MIN_VERSION)
        found = ".".join(str(part) for part in version)
        raise ChaoscertError(
            f"kind v{found} is older than v{wanted}, the release the node image"
            f" pinned in {DEFAULT_CONFIG} is built for; upgrade kind"
        )


def check_files(config: Path, manifests: Path) -> tuple[KindCluster, list[Document]]:
    """The validated kind config and manifests, or ConfigError naming the field."""
    cluster = validate_kind_config(config)
    documents = validate_manifests(manifests)
    for doc in documents:
        if doc.kind in {"Deployment", "Job"} and not doc.namespace:
            raise ConfigError(
                f"{doc.path}: {doc.label}: field metadata.namespace: `kind up`"
                " waits for it and needs its namespace"
            )
    if not any(
        doc.kind == "Namespace" and doc.name == APP_NAMESPACE for doc in documents
    ):
        raise ConfigError(
            f"{manifests}: no manifest creates namespace {APP_NAMESPACE},"
            f" where the Secret {ODOO_ADMIN} goes"
        )
    return cluster, documents


def _shown(path: Path) -> str:
    home = Path.home()
    return f"~/{path.relative_to(home)}" if path.is_relative_to(home) else str(path)


def write_env_file(path: Path, login: str, password: str) -> None:
    """Write the login for `chaoscert run`, readable by this user only."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(f"CHAOSCERT_ODOO_LOGIN={shlex.quote(login)}\n")
        handle.write(f"CHAOSCERT_ODOO_PASSWORD={shlex.quote(password)}\n")


def ensure_admin_password(context: str) -> str:
    """The Odoo admin password: the Secret's if it exists, else a new one."""
    password = kind.secret_value(context, APP_NAMESPACE, ODOO_ADMIN, ODOO_ADMIN_KEY)
    if password is None:
        password = secrets.token_urlsafe(24)
        kind.create_secret(context, APP_NAMESPACE, ODOO_ADMIN, ODOO_ADMIN_KEY, password)
    return password


def _apply_retrying_webhook(context: str, path: Path) -> None:
    deadline = time.monotonic() + WEBHOOK_RETRY_S
    while True:
        try:
            kind.kubectl_apply(context, path)
            return
        except kind.CommandError as exc:
            if "webhook" not in exc.stderr or time.monotonic() > deadline:
                raise
        time.sleep(RETRY_PAUSE_S)


def wait_for_job(context: str, namespace: str, name: str, timeout_s: float) -> None:
    """Wait until Job `name` completes; fail as soon as it has failed for good."""
    deadline = time.monotonic() + timeout_s
    while True:
        conditions = kind.job_conditions(context, namespace, name)
        if "Complete" in conditions:
            return
        if "Failed" in conditions:
            raise ChaoscertError(
                f"Job {namespace}/{name} failed; see `kubectl --context {context}"
                f" --namespace {namespace} logs job/{name}`"
            )
        if time.monotonic() + JOB_POLL_S > deadline:
            raise ChaoscertError(
                f"Job {namespace}/{name} did not complete within {timeout_s:g} s"
            )
        time.sleep(JOB_POLL_S)


def wait_for_prerequisites(
    context: str, documents: list[Document], console: Console
) -> None:
    """Wait for the database clusters and Jobs among `documents`, in order."""
    for doc in documents:
        if doc.kind == "Cluster":
            console.print(f"  waiting for database cluster {doc.namespace}/{doc.name}")
            kind.kubectl_wait(
                context,
                doc.namespace,
                f"cluster.postgresql.cnpg.io/{doc.name}",
                "Ready",
                DATABASE_TIMEOUT_S,
            )
        elif doc.kind == "Job":
            console.print(f"  waiting for job {doc.namespace}/{doc.name}")
            wait_for_job(context, doc.namespace, doc.name, INIT_TIMEOUT_S)


def install(
    context: str, manifests: Path, documents: list[Document], console: Console
) -> None:
    """The operator, then each manifest file in order, then the rollouts.

    A file's database clusters and Jobs are waited for before the next file is
    applied, so no Odoo server meets the database half-initialised."""
    console.print(f"  installing CloudNativePG {kind.CNPG_VERSION}")
    kind.kubectl_apply(context, kind.CNPG_MANIFEST_URL, server_side=True)
    kind.kubectl_rollout_status(
        context,
        kind.CNPG_NAMESPACE,
        f"deployment/{kind.CNPG_DEPLOYMENT}",
        OPERATOR_TIMEOUT_S,
    )

    for path in manifest_files(manifests):
        console.print(f"  applying {path}")
        _apply_retrying_webhook(context, path)
        in_file = [doc for doc in documents if doc.path == path]
        if any(
            doc.kind == "Namespace" and doc.name == APP_NAMESPACE for doc in in_file
        ):
            password = ensure_admin_password(context)
            write_env_file(env_file(), ADMIN_LOGIN, password)
            console.print(f"  Odoo login written to {_shown(env_file())}")
        wait_for_prerequisites(context, in_file, console)

    for doc in documents:
        if doc.kind == "Deployment":
            console.print(f"  waiting for deployment {doc.namespace}/{doc.name}")
            kind.kubectl_rollout_status(
                context, doc.namespace, f"deployment/{doc.name}", ROLLOUT_TIMEOUT_S
            )


def _base_url(cluster: KindCluster) -> str:
    for node in cluster.nodes:
        for mapping in node.extraPortMappings:
            return f"http://{mapping.listenAddress or '127.0.0.1'}:{mapping.hostPort}"
    return "(no port mapped to the host)"


def cmd_up(args: argparse.Namespace, console: Console) -> int:
    name = str(args.name)
    config = Path(args.config)
    manifests = Path(args.manifests)
    check_programs()
    cluster, documents = check_files(config, manifests)
    check_engine_and_kind()

    context = f"kind-{name}"
    if kind.cluster_exists(name):
        console.print(f"reusing kind cluster {name}")
        kind.export_kubeconfig(name)
    else:
        console.print(f"creating kind cluster {name} from {config}")
        kind.create_cluster(name, config, CREATE_TIMEOUT_S)
    try:
        install(context, manifests, documents, console)
    except ChaoscertError as exc:
        raise ChaoscertError(
            f"{exc}. The kind cluster {name} is left as it is: look with"
            f" `kubectl --context {context} get pods -A`, or remove it with"
            f" `chaoscert kind down --name {name}`"
        ) from None

    shown = _shown(env_file())
    console.print(
        f"[green]ready[/green]: Odoo through Traefik at {_base_url(cluster)},"
        f" login {ADMIN_LOGIN}, password in {shown}"
    )
    console.print(
        f"next: set -a; . {shown}; set +a;"
        f" chaoscert run --platform kubernetes --target {TARGET_PROFILE}",
        markup=False,
    )
    if name != "chaoscert":
        console.print(
            f"{TARGET_PROFILE} names the cluster chaoscert: copy it and set"
            f" context kind-{name}, destructive_contexts and kind_cluster {name}",
            markup=False,
        )
    return 0


# -- down ------------------------------------------------------------------------
def cmd_down(args: argparse.Namespace, console: Console) -> int:
    name = str(args.name)
    if not kind.cluster_exists(name):
        console.print(f"no kind cluster {name}; nothing to delete")
        return 0
    kind.delete_cluster(name)
    console.print(f"deleted kind cluster {name}")
    return 0
