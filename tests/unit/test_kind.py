"""kind, docker and kubectl are called with exact arguments, bounded, errors mapped.

Stand-in executables replace the three programs (CHAOSCERT_KIND,
CHAOSCERT_DOCKER, CHAOSCERT_KUBECTL): each appends its argv, stdin and pid as
one JSON line to a log and answers from a list of canned rules; a call no
rule matches succeeds with no output.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from chaoscert.errors import ChaoscertError, FaultError, MissingProgramError
from chaoscert.platforms.kubernetes import kind, kindcli
from chaoscert.platforms.kubernetes.kind import CommandError, CommandTimeout, KindNodes

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "fixtures/kind/cluster.yaml"
MANIFESTS = ROOT / "fixtures/k8s"
NODES = "chaoscert-control-plane\nchaoscert-worker\nchaoscert-worker2\n"

STANDIN = """\
#!{python}
import json, os, sys, time
name = os.path.basename(sys.argv[0])
args = sys.argv[1:]
stdin = sys.stdin.read()
with open(os.environ["STANDIN_LOG"], "a") as log:
    log.write(json.dumps(
        {{"program": name, "argv": args, "stdin": stdin, "pid": os.getpid()}}
    ) + "\\n")
with open(os.environ["STANDIN_RULES"]) as handle:
    rules = json.load(handle)
for number, rule in reversed(list(enumerate(rules))):
    if rule["program"] != name or args[: len(rule["prefix"])] != rule["prefix"]:
        continue
    if rule.get("times") is not None:
        counter = os.environ["STANDIN_RULES"] + f".{{number}}"
        used = int(open(counter).read()) if os.path.exists(counter) else 0
        if used >= rule["times"]:
            continue
        with open(counter, "w") as handle:
            handle.write(str(used + 1))
    time.sleep(rule.get("sleep", 0))
    sys.stdout.write(rule.get("stdout", ""))
    sys.stderr.write(rule.get("stderr", ""))
    sys.exit(rule.get("code", 0))
"""


@dataclass
class Standins:
    directory: Path
    rules: list[dict[str, Any]]

    def on(
        self,
        program: str,
        *prefix: str,
        stdout: str = "",
        stderr: str = "",
        code: int = 0,
        sleep: float = 0,
        times: int | None = None,
    ) -> None:
        """Answer calls of `program` whose argv starts with `prefix`.

        The rule added last wins; one with `times` answers that many calls."""
        self.rules.append(
            {
                "program": program,
                "prefix": list(prefix),
                "stdout": stdout,
                "stderr": stderr,
                "code": code,
                "sleep": sleep,
                "times": times,
            }
        )
        (self.directory / "rules.json").write_text(json.dumps(self.rules))

    def records(self) -> list[dict[str, Any]]:
        log = self.directory / "calls.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def calls(self, program: str) -> list[list[str]]:
        return [r["argv"] for r in self.records() if r["program"] == program]


@pytest.fixture
def standins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Standins:
    directory = tmp_path / "standins"
    directory.mkdir()
    for name in ("kind", "docker", "kubectl"):
        path = directory / name
        path.write_text(STANDIN.format(python=sys.executable))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv(kind.PROGRAMS[name][0], str(path))
    (directory / "rules.json").write_text("[]")
    monkeypatch.setenv("STANDIN_LOG", str(directory / "calls.jsonl"))
    monkeypatch.setenv("STANDIN_RULES", str(directory / "rules.json"))
    return Standins(directory, [])


@pytest.fixture
def cluster(standins: Standins) -> Standins:
    standins.on("kind", "get", "nodes", "--name", "chaoscert", stdout=NODES)
    return standins


# -- node faults -----------------------------------------------------------------
def test_nodes_are_listed_by_kind_and_sorted(standins: Standins) -> None:
    standins.on("kind", "get", "nodes", stdout="b-worker\na-control-plane\n\n")

    assert KindNodes("chaoscert").nodes() == ["a-control-plane", "b-worker"]
    assert standins.calls("kind") == [["get", "nodes", "--name", "chaoscert"]]


@pytest.mark.parametrize(
    ("method", "argv"),
    [
        ("pause", ["pause", "chaoscert-worker"]),
        ("unpause", ["unpause", "chaoscert-worker"]),
        ("stop", ["kill", "chaoscert-worker"]),
        ("start", ["start", "chaoscert-worker"]),
    ],
)
def test_node_faults_call_docker_exactly(
    cluster: Standins, method: str, argv: list[str]
) -> None:
    getattr(KindNodes("chaoscert"), method)("chaoscert-worker")

    assert cluster.calls("docker") == [argv]


def test_state_is_dockers_status(cluster: Standins) -> None:
    cluster.on("docker", "inspect", stdout="paused\n")

    assert KindNodes("chaoscert").state("chaoscert-worker2") == "paused"
    assert cluster.calls("docker") == [
        ["inspect", "--format", "{{.State.Status}}", "chaoscert-worker2"]
    ]


def test_unknown_node_is_refused_before_docker(cluster: Standins) -> None:
    nodes = KindNodes("chaoscert")

    with pytest.raises(FaultError, match="'chaoscert-wrker' is not a node of kind"):
        nodes.pause("chaoscert-wrker")
    with pytest.raises(FaultError, match="chaoscert-worker2"):
        nodes.stop("some-database")

    assert cluster.calls("docker") == []


def test_unpause_of_a_running_node_is_not_an_error(cluster: Standins) -> None:
    cluster.on(
        "docker",
        "unpause",
        stderr="Error response from daemon: Container 1f2e is not paused\n",
        code=1,
    )

    KindNodes("chaoscert").unpause("chaoscert-worker")


def test_unpause_failing_otherwise_is_an_error(cluster: Standins) -> None:
    cluster.on("docker", "unpause", stderr="Error: No such container\n", code=1)

    with pytest.raises(CommandError, match="No such container"):
        KindNodes("chaoscert").unpause("chaoscert-worker")


def test_non_zero_exit_names_the_command_and_last_stderr_line(
    cluster: Standins,
) -> None:
    cluster.on(
        "docker",
        "pause",
        stderr="first line\nError response from daemon: cgroup busy\n\n",
        code=1,
    )

    with pytest.raises(ChaoscertError) as raised:
        KindNodes("chaoscert").pause("chaoscert-worker")

    assert isinstance(raised.value, CommandError)
    assert str(raised.value) == (
        "`docker pause chaoscert-worker` failed (exit 1):"
        " Error response from daemon: cgroup busy"
    )


def test_a_command_over_its_timeout_is_killed_and_reported(cluster: Standins) -> None:
    cluster.on("docker", "pause", sleep=30)
    started = time.monotonic()

    with pytest.raises(CommandTimeout) as raised:
        KindNodes("chaoscert", timeout_s=1.0).pause("chaoscert-worker")

    assert time.monotonic() - started < 10
    assert "`docker pause chaoscert-worker` did not finish within 1 s" in str(
        raised.value
    )
    pid = cluster.records()[-1]["pid"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_missing_override_is_a_missing_program(
    standins: Standins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAOSCERT_DOCKER", str(tmp_path / "no-docker-here"))

    with pytest.raises(MissingProgramError, match=r"CHAOSCERT_DOCKER=.*pausing"):
        kind.run("docker", ["ps"])


def test_a_program_missing_from_path_is_a_missing_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHAOSCERT_KIND", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(MissingProgramError, match="kind is not on PATH"):
        KindNodes("chaoscert").nodes()


# -- cluster lifecycle -----------------------------------------------------------
def test_cluster_lifecycle_arguments(standins: Standins) -> None:
    standins.on("kind", "get", "clusters", stdout="other\nchaoscert\n")

    assert kind.cluster_exists("chaoscert")
    assert not kind.cluster_exists("chaos")
    kind.create_cluster("chaoscert", CONFIG, timeout_s=600)
    kind.delete_cluster("chaoscert")

    assert standins.calls("kind") == [
        ["get", "clusters"],
        ["get", "clusters"],
        [
            "create",
            "cluster",
            "--name",
            "chaoscert",
            "--config",
            str(CONFIG),
            "--wait",
            "570s",
        ],
        ["delete", "cluster", "--name", "chaoscert"],
    ]


def test_apply_arguments(standins: Standins) -> None:
    kind.kubectl_apply("kind-chaoscert", MANIFESTS)
    kind.kubectl_apply("kind-chaoscert", kind.CNPG_MANIFEST_URL, server_side=True)

    assert standins.calls("kubectl") == [
        ["--context", "kind-chaoscert", "apply", "-f", str(MANIFESTS)],
        [
            "--context",
            "kind-chaoscert",
            "apply",
            "-f",
            kind.CNPG_MANIFEST_URL,
            "--server-side",
            "--force-conflicts",
        ],
    ]


def test_secret_value_goes_over_stdin_only(standins: Standins) -> None:
    kind.create_secret("kind-chaoscert", "odoo", "odoo-admin", "password", "s3cr3t")

    (record,) = standins.records()
    assert record["stdin"] == "s3cr3t"
    assert "--from-file=password=/dev/stdin" in record["argv"]
    assert not any("s3cr3t" in arg for arg in record["argv"])


# -- chaoscert kind up / down ----------------------------------------------------
def run_cli(argv: list[str]) -> tuple[int, str]:
    """Parse and run like `chaoscert`: a ChaoscertError is one line and exit 2."""
    out = io.StringIO()
    console = Console(file=out, width=10_000, color_system=None)
    parser = argparse.ArgumentParser(prog="chaoscert")
    kindcli.register(parser.add_subparsers(dest="command", required=True), console)
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args))
    except ChaoscertError as exc:
        console.print(f"chaoscert: {exc}", markup=False)
        code = 2
    return code, out.getvalue()


UP = ["kind", "up", "--config", str(CONFIG), "--manifests", str(MANIFESTS)]


def test_kind_up_without_docker_is_one_line_and_exit_2(
    standins: Standins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHAOSCERT_DOCKER")
    monkeypatch.setenv("PATH", str(tmp_path))

    code, output = run_cli(UP)

    assert code == 2
    assert len(output.strip().splitlines()) == 1
    assert "needs docker" in output
    assert "Docker engine" in output
    assert "internet" in output
    assert standins.records() == []


@pytest.fixture
def stack(
    standins: Standins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Standins:
    """Stand-ins that answer as a healthy Docker, kind and cluster would."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(kindcli, "RETRY_PAUSE_S", 0.01)
    monkeypatch.setattr(kindcli, "JOB_POLL_S", 0.01)
    standins.on("docker", "info", stdout="29.0.1\n")
    standins.on("kind", "version", stdout="kind v0.33.0 go1.25.1 linux/amd64\n")
    standins.on(
        "kubectl",
        "--context",
        "kind-chaoscert",
        "--namespace",
        "odoo",
        "get",
        "job/odoo-init",
        stdout="Complete ",
    )
    return standins


def test_kind_up_creates_installs_and_hands_the_password_over_stdin(
    stack: Standins, tmp_path: Path
) -> None:
    code, output = run_cli(UP)

    assert code == 0, output
    kubectl = stack.calls("kubectl")
    assert stack.calls("kind")[:3] == [
        ["version"],
        ["get", "clusters"],
        [
            "create",
            "cluster",
            "--name",
            "chaoscert",
            "--config",
            str(CONFIG),
            "--wait",
            "570s",
        ],
    ]
    assert kubectl[0] == [
        "--context",
        "kind-chaoscert",
        "apply",
        "-f",
        kind.CNPG_MANIFEST_URL,
        "--server-side",
        "--force-conflicts",
    ]
    applied = [argv[4] for argv in kubectl if argv[2:4] == ["apply", "-f"]]
    assert applied[1:] == [str(path) for path in sorted(MANIFESTS.glob("*.yaml"))]
    creates = [r for r in stack.records() if "create" in r["argv"][4:5]]
    (secret,) = creates
    assert secret["argv"][4:] == [
        "create",
        "secret",
        "generic",
        "odoo-admin",
        "--from-file=password=/dev/stdin",
    ]

    env = tmp_path / "home/.config/chaoscert/kind.env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    lines = env.read_text().splitlines()
    assert lines[0] == "CHAOSCERT_ODOO_LOGIN=admin"
    password = lines[1].removeprefix("CHAOSCERT_ODOO_PASSWORD=")
    assert len(password) >= 24
    assert secret["stdin"] == password
    for record in stack.records():
        assert not any(password in arg for arg in record["argv"])
    assert password not in output

    waits = [argv[4:] for argv in kubectl if argv[4:5] in (["wait"], ["rollout"])]
    assert waits == [
        ["rollout", "status", "deployment/cnpg-controller-manager", "--timeout=300s"],
        [
            "wait",
            "--for=condition=Ready",
            "cluster.postgresql.cnpg.io/odoo-db",
            "--timeout=900s",
        ],
        ["rollout", "status", "deployment/odoo", "--timeout=600s"],
        ["rollout", "status", "deployment/traefik", "--timeout=600s"],
    ]
    position = {" ".join(argv): number for number, argv in enumerate(kubectl)}

    def applied_at(name: str) -> int:
        return position[f"--context kind-chaoscert apply -f {MANIFESTS / name}"]

    job_polls = [n for argv, n in position.items() if "job/odoo-init" in argv]
    database_wait = [n for argv, n in position.items() if "cnpg.io/odoo-db" in argv]
    assert applied_at("10-database.yaml") < database_wait[0]
    assert database_wait[0] < applied_at("20-odoo-init.yaml") < job_polls[0]
    assert job_polls[-1] < applied_at("30-odoo.yaml")
    assert output.strip().splitlines()[-1] == (
        "next: set -a; . ~/.config/chaoscert/kind.env; set +a;"
        " chaoscert run --platform kubernetes --target fixtures/targets/kind.yaml"
    )


def test_kind_up_reuses_the_cluster_and_the_password(
    stack: Standins, tmp_path: Path
) -> None:
    stack.on("kind", "get", "clusters", stdout="chaoscert\n")
    encoded = base64.b64encode(b"kept-password").decode()
    stack.on(
        "kubectl",
        "--context",
        "kind-chaoscert",
        "--namespace",
        "odoo",
        "get",
        "secret",
        stdout=encoded,
    )

    code, output = run_cli(UP)

    assert code == 0, output
    assert "reusing kind cluster chaoscert" in output
    assert not any(argv[:2] == ["create", "cluster"] for argv in stack.calls("kind"))
    assert ["export", "kubeconfig", "--name", "chaoscert"] in stack.calls("kind")
    assert not any("create" in argv for argv in stack.calls("kubectl"))
    env = tmp_path / "home/.config/chaoscert/kind.env"
    assert env.read_text().splitlines()[1] == "CHAOSCERT_ODOO_PASSWORD=kept-password"


def test_kind_up_retries_while_the_operator_webhook_is_not_serving(
    stack: Standins,
) -> None:
    database = str(MANIFESTS / "10-database.yaml")
    stack.on(
        "kubectl",
        "--context",
        "kind-chaoscert",
        "apply",
        "-f",
        database,
        stderr="Error from server (InternalError): failed calling webhook"
        ' "mcluster.cnpg.io": connection refused\n',
        code=1,
        times=2,
    )

    code, output = run_cli(UP)

    assert code == 0, output
    applied = [argv[4] for argv in stack.calls("kubectl") if argv[2:3] == ["apply"]]
    assert applied.count(database) == 3


def test_kind_up_failing_after_creation_says_how_to_remove_the_cluster(
    stack: Standins,
) -> None:
    stack.on(
        "kubectl",
        "--context",
        "kind-chaoscert",
        "--namespace",
        "odoo",
        "get",
        "job/odoo-init",
        stdout="Failed ",
    )

    code, output = run_cli(UP)

    assert code == 2
    last = output.strip().splitlines()[-1]
    assert "Job odoo/odoo-init failed" in last
    assert "chaoscert kind down --name chaoscert" in last


def test_kind_up_refuses_broken_files_before_any_cluster_call(
    stack: Standins, tmp_path: Path
) -> None:
    broken = tmp_path / "cluster.yaml"
    broken.write_text(CONFIG.read_text().replace("role: worker", "role: wroker", 1))

    code, output = run_cli(["kind", "up", "--config", str(broken)])

    assert code == 2
    assert f"{broken}: Cluster (kind config): field nodes.1.role" in output
    assert stack.calls("kind") == []
    assert stack.calls("kubectl") == []


def test_kind_down_deletes_only_an_existing_cluster(standins: Standins) -> None:
    code, output = run_cli(["kind", "down"])

    assert code == 0
    assert "nothing to delete" in output
    assert standins.calls("kind") == [["get", "clusters"]]

    standins.on("kind", "get", "clusters", stdout="chaoscert\n")
    code, output = run_cli(["kind", "down", "--name", "chaoscert"])

    assert code == 0
    assert standins.calls("kind")[-1] == ["delete", "cluster", "--name", "chaoscert"]


def test_the_platform_hangs_a_kind_zone_through_docker_and_heals_it(
    standins: Standins, tmp_path: Path
) -> None:
    """The Kubernetes platform with a kind profile: node names from the API
    are the containers docker pauses; healing unpauses them, newest first."""
    from kubernetes import client as kube_client

    from chaoscert.platforms.kubernetes.platform import KubernetesPlatform
    from tests.unit.fake_kube import Cluster, serve
    from tests.unit.test_kube_platform import profile, reference

    fake = Cluster()
    reference(fake)
    server, url = serve(fake)
    standins.on("kind", "get", "nodes", "--name", "fake", stdout="a1\na2\nb1\nb2\n")
    try:
        platform = KubernetesPlatform(
            profile(tmp_path, url),
            tmp_path / "state",
            configuration=kube_client.Configuration(host=url),
        )
        platform.inject("zone_hang", "primary")
        assert standins.calls("docker") == [["pause", "a1"], ["pause", "a2"]]

        assert platform.heal_all() == []
        assert standins.calls("docker")[2:] == [["unpause", "a2"], ["unpause", "a1"]]
        assert fake.writes() == []
    finally:
        server.shutdown()
