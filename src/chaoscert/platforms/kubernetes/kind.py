"""The `kind`, `docker` and `kubectl` programs, driven for a kind cluster.

Every call is bounded by a timeout and captures its output. A non-zero exit
becomes a CommandError naming the command and the last line of its stderr; a
timeout kills the command's whole process group and becomes a CommandTimeout.
Programs are found on PATH, or at the paths in CHAOSCERT_KIND,
CHAOSCERT_DOCKER and CHAOSCERT_KUBECTL.

Secrets never go on a command line: `run` takes them on stdin.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

from chaoscert.errors import ChaoscertError, FaultError, MissingProgramError

log = logging.getLogger("chaoscert.kind")

# The operator's release manifest, applied server-side by `chaoscert kind up`.
# CloudNativePG 1.30 supports Kubernetes 1.34-1.36 and brings the primary
# lease that bounds failover after a node is lost abruptly.
CNPG_VERSION = "1.30.0"
CNPG_MANIFEST_URL = (
    "https://raw.githubusercontent.com/cloudnative-pg/cloudnative-pg/"
    f"release-1.30/releases/cnpg-{CNPG_VERSION}.yaml"
)
CNPG_NAMESPACE = "cnpg-system"
CNPG_DEPLOYMENT = "cnpg-controller-manager"

# fixtures/kind/cluster.yaml pins a node image built for this kind release.
KIND_MIN_VERSION = (0, 33, 0)

PROGRAMS = {
    "kind": (
        "CHAOSCERT_KIND",
        "creating and deleting the kind cluster and listing its nodes",
    ),
    "docker": (
        "CHAOSCERT_DOCKER",
        "pausing, crashing and restarting kind nodes (each is a Docker container)",
    ),
    "kubectl": (
        "CHAOSCERT_KUBECTL",
        "applying the reference stack to the cluster and waiting for it",
    ),
}
DEFAULT_TIMEOUT_S = 60.0
# kubectl's own --timeout ends a wait; this margin lets it report first.
WAIT_MARGIN_S = 30.0


class CommandError(ChaoscertError):
    """A program exited non-zero; the message names the command and its stderr."""

    def __init__(self, message: str, command: str, stderr: str = ""):
        super().__init__(message)
        self.command = command
        self.stderr = stderr


class CommandTimeout(CommandError):
    """A program did not finish within its timeout and was killed."""


def program(name: str) -> str:
    """The path of `name` (kind, docker or kubectl), or MissingProgramError."""
    env, purpose = PROGRAMS[name]
    override = os.environ.get(env)
    if override:
        if os.path.isfile(override) and os.access(override, os.X_OK):
            return override
        raise MissingProgramError(
            f"{env}={override} is not an executable file; chaoscert needs {name}"
            f" for {purpose}"
        )
    found = shutil.which(name)
    if found is None:
        raise MissingProgramError(
            f"{name} is not on PATH (or set {env}); chaoscert needs it for {purpose}"
        )
    return found


def missing_programs() -> list[str]:
    """The programs among kind, docker and kubectl that cannot be found."""
    missing = []
    for name in PROGRAMS:
        try:
            program(name)
        except MissingProgramError:
            missing.append(name)
    return missing


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _kill_group(process: subprocess.Popen[str]) -> None:
    # kind and kubectl start children of their own, in the group we gave them.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    try:
        process.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        process.wait()


def run(
    name: str,
    args: list[str],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    stdin: str | None = None,
) -> str:
    """Run program `name` with `args`; its stdout, or a CommandError.

    `stdin` is handed to the program on its standard input and never logged."""
    command = " ".join([name, *(shlex.quote(arg) for arg in args)])
    log.debug("running %s", command)
    try:
        process = subprocess.Popen(
            [program(name), *args],
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    except OSError as exc:
        raise CommandError(
            f"`{command}` could not start: {exc.strerror}", command
        ) from None
    try:
        out, err = process.communicate(stdin, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raise CommandTimeout(
            f"`{command}` did not finish within {timeout_s:g} s and was stopped",
            command,
        ) from None
    except BaseException:
        _kill_group(process)
        raise
    if process.returncode != 0:
        last = _last_line(err) or _last_line(out) or "no output"
        raise CommandError(
            f"`{command}` failed (exit {process.returncode}): {last}", command, err
        )
    return out


# -- nodes -----------------------------------------------------------------------
class KindNodes:
    """Node faults on a kind cluster: each node is a Docker container of its name.

    Docker is only ever called on a name `kind get nodes` lists for this
    cluster, so a typo cannot pause or kill some other container.
    """

    def __init__(self, cluster: str, timeout_s: float = 60.0) -> None:
        self.cluster = cluster
        self.timeout_s = timeout_s

    def nodes(self) -> list[str]:
        """The cluster's node names, sorted (`kind get nodes --name CLUSTER`)."""
        out = run("kind", ["get", "nodes", "--name", self.cluster], self.timeout_s)
        return sorted(line.strip() for line in out.splitlines() if line.strip())

    def _docker(self, node: str, args: list[str]) -> str:
        known = self.nodes()
        if node not in known:
            raise FaultError(
                f"{node!r} is not a node of kind cluster {self.cluster}"
                f" (its nodes: {', '.join(known) or 'none'})"
            )
        return run("docker", [*args, node], self.timeout_s)

    def pause(self, node: str) -> None:
        """Hang `node`: its processes are frozen, its sockets stay open."""
        log.info("pausing kind node %s", node)
        self._docker(node, ["pause"])

    def unpause(self, node: str) -> None:
        """Resume a paused `node`; a node that is not paused is left as it is."""
        try:
            self._docker(node, ["unpause"])
        except CommandError as exc:
            if "is not paused" not in exc.stderr:
                raise
            log.info("kind node %s was not paused", node)
            return
        log.info("unpaused kind node %s", node)

    def stop(self, node: str) -> None:
        """Crash `node` with `docker kill` (SIGKILL to every process at once).

        Not `docker stop`: kind nodes stop on SIGRTMIN+3, systemd's orderly
        halt, which would shut the kubelet and containers down gracefully, and
        `--time 0` only races that halt against the kill."""
        log.info("crashing kind node %s (docker kill)", node)
        self._docker(node, ["kill"])

    def start(self, node: str) -> None:
        """Start a stopped `node`; docker leaves a running one as it is."""
        log.info("starting kind node %s", node)
        self._docker(node, ["start"])

    def state(self, node: str) -> str:
        """Docker's state of `node`: running, paused, exited, restarting, ..."""
        out = self._docker(node, ["inspect", "--format", "{{.State.Status}}"])
        return out.strip()


# -- the cluster -----------------------------------------------------------------
def kind_version(timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[int, int, int] | None:
    """kind's release as (major, minor, patch), or None when it does not say."""
    found = re.search(r"v(\d+)\.(\d+)\.(\d+)", run("kind", ["version"], timeout_s))
    if found is None:
        return None
    major, minor, patch = (int(part) for part in found.groups())
    return major, minor, patch


def cluster_exists(name: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """Whether `kind get clusters` lists `name`."""
    out = run("kind", ["get", "clusters"], timeout_s)
    return name in {line.strip() for line in out.splitlines()}


def create_cluster(name: str, config_path: Path, timeout_s: float = 600.0) -> None:
    """Create kind cluster `name` from `config_path`, waiting for its control plane."""
    wait_s = max(int(timeout_s - WAIT_MARGIN_S), 1)
    log.info("creating kind cluster %s from %s", name, config_path)
    run(
        "kind",
        [
            "create",
            "cluster",
            "--name",
            name,
            "--config",
            str(config_path),
            "--wait",
            f"{wait_s}s",
        ],
        timeout_s,
    )


def delete_cluster(name: str, timeout_s: float = 300.0) -> None:
    """Delete kind cluster `name`; kind treats an absent cluster as done."""
    log.info("deleting kind cluster %s", name)
    run("kind", ["delete", "cluster", "--name", name], timeout_s)


def export_kubeconfig(name: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """(Re)write the kube context kind-`name` of an existing cluster."""
    run("kind", ["export", "kubeconfig", "--name", name], timeout_s)


# -- kubectl ---------------------------------------------------------------------
def kubectl_apply(
    context: str,
    path_or_dir: str | Path,
    server_side: bool = False,
    timeout_s: float = 300.0,
) -> str:
    """`kubectl apply -f` a file, a directory or a URL on `context`.

    Server-side apply takes ownership of conflicting fields (`--force-conflicts`),
    as re-applying an operator's release manifest needs."""
    args = ["--context", context, "apply", "-f", str(path_or_dir)]
    if server_side:
        args += ["--server-side", "--force-conflicts"]
    return run("kubectl", args, timeout_s)


def kubectl_wait(
    context: str,
    namespace: str,
    target: str,
    condition: str,
    timeout_s: float,
) -> None:
    """Wait until `target` (kind/name) has `condition`, at most `timeout_s`."""
    run(
        "kubectl",
        [
            "--context",
            context,
            "--namespace",
            namespace,
            "wait",
            f"--for=condition={condition}",
            target,
            f"--timeout={int(timeout_s)}s",
        ],
        timeout_s + WAIT_MARGIN_S,
    )


def kubectl_rollout_status(
    context: str, namespace: str, target: str, timeout_s: float
) -> None:
    """Wait until the rollout of `target` (deployment/name) is complete."""
    run(
        "kubectl",
        [
            "--context",
            context,
            "--namespace",
            namespace,
            "rollout",
            "status",
            target,
            f"--timeout={int(timeout_s)}s",
        ],
        timeout_s + WAIT_MARGIN_S,
    )


def job_conditions(
    context: str, namespace: str, name: str, timeout_s: float = DEFAULT_TIMEOUT_S
) -> set[str]:
    """The condition types that are true for Job `name` (Complete, Failed, ...)."""
    out = run(
        "kubectl",
        [
            "--context",
            context,
            "--namespace",
            namespace,
            "get",
            f"job/{name}",
            '--output=jsonpath={range .status.conditions[?(@.status=="True")]}'
            "{.type} {end}",
        ],
        timeout_s,
    )
    return set(out.split())


def secret_value(
    context: str,
    namespace: str,
    name: str,
    key: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> str | None:
    """The decoded value of `key` in Secret `name`, or None if there is none."""
    out = run(
        "kubectl",
        [
            "--context",
            context,
            "--namespace",
            namespace,
            "get",
            "secret",
            name,
            "--ignore-not-found",
            f"--output=jsonpath={{.data.{key}}}",
        ],
        timeout_s,
    ).strip()
    if not out:
        return None
    try:
        return base64.b64decode(out, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ChaoscertError(
            f"secret {namespace}/{name}: key {key} is not base64-encoded UTF-8"
        ) from None


def create_secret(
    context: str,
    namespace: str,
    name: str,
    key: str,
    value: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> None:
    """Create Secret `name` holding `value` under `key`; the value goes on stdin."""
    run(
        "kubectl",
        [
            "--context",
            context,
            "--namespace",
            namespace,
            "create",
            "secret",
            "generic",
            name,
            f"--from-file={key}=/dev/stdin",
        ],
        timeout_s,
        stdin=value,
    )
