"""Every network call and every wait ends within its bound, whatever the peer does.

Small servers on 127.0.0.1 accept and never answer, answer a byte at a time,
or reset the connection; the Odoo client, the probes, the local stack's health
checks (Patroni, etcd, HAProxy, the edge), the Kubernetes API client and the
kind, docker and kubectl wrappers are pointed at them. Each call must return
or raise chaoscert's own error within its bound plus a wide margin, so the
tests hold on a busy machine; a call that hangs fails its test rather than
hanging the run.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from kubernetes import client

from chaoscert.errors import ChaoscertError, ComponentError, FaultError, TransportError
from chaoscert.odoo import OdooClient
from chaoscert.platforms import http
from chaoscert.platforms.kubernetes import kind
from chaoscert.platforms.kubernetes.api import KubeApi, KubeError
from chaoscert.platforms.kubernetes.kind import CommandTimeout, KindNodes
from chaoscert.platforms.local import faults as local_faults
from chaoscert.platforms.local import health
from chaoscert.probes.engine import LOOP_GRACE_S, ProbeSession
from tests.unit.fake_odoo import DB, LOGIN, PASSWORD, FakeOdoo
from tests.unit.interrupted_call import Ok

ROOT = Path(__file__).resolve().parents[2]
# Wide, so that a loaded machine never fails a test that holds its bound.
MARGIN_S = 5.0
DRIP_S = 0.2
HUNG = ("silent", "drip", "drip_headers")
RESETS = ("reset", "reset_after_request")
MISBEHAVIOURS = HUNG + RESETS


# -- peers that misbehave ----------------------------------------------------------
class Peer:
    """A TCP server on 127.0.0.1 that treats each new connection by `mode`:

    silent: accepts and never reads or answers;
    drip: reads the request, sends the headers of a long answer, then its
      body a byte every DRIP_S, forever;
    drip_headers: reads the request, then sends a header a byte at a time,
      never ending the headers;
    reset / reset_after_request: closes with SO_LINGER 0 (the client gets an
      RST), at once or after reading the request;
    not_patroni: answers 200 with JSON that is not the object a component sends;
    relay: passes bytes to and from `target` (a well-behaved server).

    ``mode`` may change; ``drop()`` resets every open connection, so the next
    request meets the new mode.
    """

    def __init__(self, mode: str, target: tuple[str, int] | None = None) -> None:
        self.mode = mode
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def drop(self) -> None:
        with self._lock:
            connections, self._open = self._open, []
        for conn in connections:
            _reset(conn)

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(5)
        self._listener.close()
        self.drop()

    def _keep(self, conn: socket.socket) -> None:
        with self._lock:
            self._open.append(conn)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._keep(conn)
            handler = getattr(self, f"_{self.mode}")
            threading.Thread(target=handler, args=(conn,), daemon=True).start()

    def _silent(self, conn: socket.socket) -> None:
        self._stopped.wait()

    def _reset(self, conn: socket.socket) -> None:
        _reset(conn)

    def _reset_after_request(self, conn: socket.socket) -> None:
        with suppress(OSError):
            conn.recv(65536)
        _reset(conn)

    def _drip(self, conn: socket.socket) -> None:
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000\r\n\r\n"
        )
        self._trickle(conn, head, b" ")

    def _drip_headers(self, conn: socket.socket) -> None:
        self._trickle(conn, b"HTTP/1.1 200 OK\r\nX-Never-Ending: ", b"a")

    def _trickle(self, conn: socket.socket, head: bytes, drop: bytes) -> None:
        try:
            conn.recv(65536)
            conn.sendall(head)
            while not self._stopped.wait(DRIP_S):
                conn.sendall(drop)
        except OSError:
            return

    def _not_patroni(self, conn: socket.socket) -> None:
        body = b"[1, 2, 3]"
        with suppress(OSError):
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
            )
            conn.close()

    def _relay(self, conn: socket.socket) -> None:
        assert self.target is not None
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            _reset(conn)
            return
        self._keep(upstream)
        for source, sink in ((conn, upstream), (upstream, conn)):
            threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def _reset(conn: socket.socket) -> None:
    with suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with suppress(OSError):
        conn.close()


@contextmanager
def peer(mode: str, target: tuple[str, int] | None = None) -> Iterator[Peer]:
    server = Peer(mode, target)
    try:
        yield server
    finally:
        server.close()


def ended(call: Callable[[], Any], bound_s: float) -> tuple[Any, float]:
    """`call`'s outcome (its value or the exception it raised) and the seconds it
    took, asserting it ended within `bound_s` + MARGIN_S.

    It runs in a daemon thread, so a call that hangs fails the test instead of
    holding the test run."""
    outcome: Future[Any] = Future()

    def run() -> None:
        try:
            outcome.set_result(call())
        except BaseException as exc:
            outcome.set_result(exc)

    started = time.monotonic()
    threading.Thread(target=run, daemon=True).start()
    try:
        value = outcome.result(timeout=bound_s + MARGIN_S)
    except TimeoutError:
        pytest.fail(f"still running {bound_s + MARGIN_S:g} s in, bound {bound_s:g} s")
    return value, time.monotonic() - started


def raised(call: Callable[[], Any], bound_s: float) -> ChaoscertError:
    """The chaoscert error `call` raised within its bound (plus the margin)."""
    outcome, elapsed_s = ended(call, bound_s)
    assert isinstance(outcome, ChaoscertError), (
        f"{outcome!r} after {elapsed_s:.1f} s, expected a chaoscert error"
    )
    assert len(str(outcome).splitlines()) == 1, str(outcome)
    return outcome


# -- the Odoo JSON-RPC client --------------------------------------------------------
def odoo_version(url: str, timeout_s: float) -> Callable[[], Any]:
    async def main() -> Any:
        async with httpx.AsyncClient(trust_env=False) as client_http:
            odoo = OdooClient(
                client_http, url, DB, LOGIN, PASSWORD, timeout_s=timeout_s
            )
            return await odoo.version()

    return lambda: asyncio.run(main())


@pytest.mark.parametrize("mode", MISBEHAVIOURS)
def test_the_odoo_client_ends_every_call_within_its_bound(mode: str) -> None:
    with peer(mode) as server:
        error = raised(odoo_version(server.url, timeout_s=1.0), bound_s=1.0)

    assert isinstance(error, TransportError)
    expected = {"timeout"} if mode in HUNG else {"reset", "connect"}
    assert error.kind in expected, (error.kind, str(error))
    assert "POST /jsonrpc" in str(error)
    assert PASSWORD not in str(error)


# -- the probes ----------------------------------------------------------------------
@pytest.mark.parametrize("mode", MISBEHAVIOURS)
def test_preparing_the_probes_ends_within_its_bound(mode: str) -> None:
    with peer(mode) as server:
        probes = ProbeSession(
            server.url, DB, LOGIN, PASSWORD, ["warehouse_scanning"], timeout_s=10.0
        )
        try:
            error = raised(lambda: probes.prepare(timeout_s=1.0), 1.0 + LOOP_GRACE_S)
        finally:
            ended(probes.close, 10.0 + 3 * LOOP_GRACE_S)

    if mode in HUNG:
        assert isinstance(error, ComponentError)
        assert "preparing the probes did not finish within 1 s" in str(error)


@pytest.mark.parametrize("mode", MISBEHAVIOURS)
def test_every_attempt_ends_within_the_probe_timeout_and_stop_is_bounded(
    mode: str,
) -> None:
    timeout_s = 0.5
    with FakeOdoo() as odoo, peer("relay", ("127.0.0.1", _port(odoo.url))) as server:
        probes = ProbeSession(
            server.url,
            DB,
            LOGIN,
            PASSWORD,
            ["warehouse_scanning"],
            rate_hz=4.0,
            timeout_s=timeout_s,
        )
        try:
            probes.prepare(timeout_s=10.0)
            probes.start()
            time.sleep(0.5)
            switched_mono = time.monotonic()
            server.mode = mode
            server.drop()
            time.sleep(1.5)
            stopped, _ = ended(probes.stop, timeout_s + 2 * LOOP_GRACE_S)
        finally:
            ended(probes.close, timeout_s + 3 * LOOP_GRACE_S)

    samples = stopped["warehouse_scanning"]
    # Past the first moments, no attempt can reuse a connection of the relay.
    after = [s for s in samples if s.start_mono > switched_mono + 0.3]
    assert after, "no attempt started after the peer began to misbehave"
    assert not any(s.ok for s in after), after
    for sample in after:
        assert sample.latency_s < timeout_s + MARGIN_S, sample
    if mode in HUNG:
        assert {s.error_kind for s in after} <= {"timeout", "cancelled"}, after


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


# -- the local stack's health checks -------------------------------------------------
@dataclass
class PointedLayout:
    """What the health checks read of a Layout, every component at one URL."""

    url: str
    sockets: Path

    def patroni_url(self, node: str) -> str:
        return self.url

    def etcd_url(self, node: str) -> str:
        return self.url

    @property
    def base_url(self) -> str:
        return self.url

    def haproxy_socket(self, node: str) -> Path:
        return self.sockets / f"{node}.sock"


NODES = ["a1", "b1", "c1"]


@pytest.fixture
def quick_health(monkeypatch: pytest.MonkeyPatch) -> float:
    """A shorter bound for each health check, so the tests take less time."""
    monkeypatch.setattr(health, "TIMEOUT_S", 0.5)
    return health.TIMEOUT_S


@pytest.mark.parametrize("mode", (*MISBEHAVIOURS, "not_patroni"))
def test_the_patroni_rest_api_checks_end_within_their_bound(
    tmp_path: Path, mode: str, quick_health: float
) -> None:
    with peer(mode) as server:
        url = server.url
        layout: Any = PointedLayout(url, tmp_path)

        view, _ = ended(
            lambda: health.patroni_cluster(layout, NODES),
            len(NODES) * quick_health,
        )
        primary, _ = ended(lambda: health.is_primary(layout, "a1"), quick_health)
        etcd, _ = ended(lambda: health.etcd_healthy(layout, "a1"), quick_health)
        edge, _ = ended(lambda: health.edge_answers(layout), 2 * quick_health)

    assert view == health.ClusterView()
    assert primary is (mode == "not_patroni")  # /primary answers only by status
    assert etcd is False
    if mode == "not_patroni":
        assert edge is None
    else:
        assert isinstance(edge, str)
        assert edge.startswith(f"edge {url} did not answer: ")


@pytest.mark.parametrize("mode", HUNG)
def test_the_database_problems_are_said_within_their_bound(
    tmp_path: Path, mode: str, quick_health: float
) -> None:
    topology = SimpleNamespace(running=lambda service: NODES)
    with peer(mode) as server:
        layout: Any = PointedLayout(server.url, tmp_path)
        layout.topology = topology

        problems, _ = ended(
            lambda: health.database_problems(layout, expect_sync=True),
            len(NODES) * quick_health,
        )

    assert problems == ["no Patroni REST API answered"]


@contextmanager
def unix_peer(path: Path, mode: str) -> Iterator[None]:
    """HAProxy's stats socket, silent or dripping its table."""
    stopped = threading.Event()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(4)
    listener.settimeout(0.1)

    def serve() -> None:
        while not stopped.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=talk, args=(conn,), daemon=True).start()

    def talk(conn: socket.socket) -> None:
        with conn, suppress(OSError):
            conn.recv(4096)
            if mode == "drip":
                conn.sendall(b"# pxname,svname,status\n")
                while not stopped.wait(DRIP_S):
                    conn.sendall(b"x")
            stopped.wait()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopped.set()
        thread.join(5)
        listener.close()


@pytest.mark.parametrize("mode", ["silent", "drip"])
def test_the_haproxy_stats_socket_is_read_within_its_bound(
    tmp_path: Path, mode: str, quick_health: float
) -> None:
    sock = tmp_path / "a2.sock"
    with unix_peer(sock, mode):
        servers, _ = ended(lambda: health.haproxy_servers(sock), quick_health)

    assert servers is None


@pytest.mark.parametrize("mode", MISBEHAVIOURS)
def test_a_switchover_patroni_never_answers_is_a_fault_error_within_its_bound(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_faults, "SWITCHOVER_TIMEOUT_S", 1.0)
    with peer(mode) as server:
        stack: Any = SimpleNamespace(layout=PointedLayout(server.url, tmp_path))

        error = raised(lambda: local_faults.switchover(stack, "a1", "b1"), 1.0)

    assert isinstance(error, FaultError)
    assert "Patroni on a1 did not take the switchover" in str(error)


@pytest.mark.parametrize("mode", MISBEHAVIOURS)
def test_a_bounded_http_call_ends_within_its_bound(mode: str) -> None:
    with peer(mode) as server:
        outcome, _ = ended(lambda: http.get(server.url + "/health", 1.0), 1.0)

    assert isinstance(outcome, httpx.HTTPError), outcome
    if mode in HUNG:
        assert isinstance(outcome, httpx.TimeoutException), outcome


@contextmanager
def answering_200() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_calls_go_on_after_the_calls_loop_thread_ended() -> None:
    with answering_200() as url:
        assert http.get(url, 1.0).status_code == 200
        loop = http._calls.loop()
        assert loop is not None
        loop.call_soon_threadsafe(loop.stop)
        thread = http._calls._thread
        assert thread is not None
        thread.join(5.0)
        assert not thread.is_alive()

        outcome, _ = ended(lambda: http.get(url, 1.0), 1.0)

    assert isinstance(outcome, httpx.Response), outcome
    assert outcome.status_code == 200
    assert http._calls._thread is not thread


def test_a_failure_outside_httpx_comes_out_as_an_httpx_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def fails(*args: Any, **kwargs: Any) -> httpx.Response:
        raise RuntimeError("can't register atexit after shutdown")

    monkeypatch.setattr(httpx.AsyncClient, "request", fails)

    with pytest.raises(httpx.TransportError, match="RuntimeError: can't register"):
        http.get("http://127.0.0.1:9/", 1.0)


@pytest.mark.parametrize("where", ["connect", "start"])
def test_a_signal_during_a_bounded_http_call_ends_the_call_and_heals(
    where: str,
) -> None:
    # The run's signal handler heals and raises KeyboardInterrupt wherever the
    # main thread is. Inside anyio's connect it could come out wrapped in an
    # exception group (a failed test, not an ended run), and a heal that makes
    # a call could neither run inside the interrupted loop nor wait on a lock
    # the interrupted thread holds. A fresh interpreter, so the loop is new.
    done = subprocess.run(
        [sys.executable, "-m", "tests.unit.interrupted_call", where],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )

    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines.get("ENDED") == "interrupted", done.stdout + done.stderr
    assert lines.get("SENT") not in (None, "[]"), "the signal was never sent"
    assert lines.get("HEALED") == "[200]", done.stdout
    assert lines.get("AFTER") == "200", done.stdout
    assert "Traceback" not in done.stderr, done.stderr


# -- the Kubernetes API client -------------------------------------------------------
@contextmanager
def kube_api(url: str, timeout_s: float) -> Iterator[KubeApi]:
    api = KubeApi.connect(client.Configuration(host=url), timeout_s=timeout_s)
    try:
        yield api
    finally:
        api.close()


@pytest.mark.parametrize("mode", MISBEHAVIOURS)
def test_every_kubernetes_api_call_ends_within_its_bound(mode: str) -> None:
    with peer(mode) as server, kube_api(server.url, timeout_s=0.5) as api:
        calls: list[tuple[str, Callable[[], Any]]] = [
            ("list pods", lambda: api.pods("odoo", "app=odoo")),
            ("read node", lambda: api.node("w1")),
            ("delete pod", lambda: api.delete_pod("odoo", "odoo-1")),
            ("read lease", lambda: api.lease("odoo", "chaoscert")),
            (
                "POST /switchover to pod",
                lambda: api.post_to_pod("odoo", "pg-1", 8008, "/switchover", {}),
            ),
        ]
        for what, call in calls:
            error = raised(call, 0.5)

            assert isinstance(error, KubeError), (what, error)
            assert str(error).startswith(what), str(error)
            if mode in HUNG:
                assert "no complete answer within 0.5 s" in str(error)


# -- the kind, docker and kubectl wrappers -------------------------------------------
FOREVER = """\
#!{python}
import os, signal, subprocess, sys, time
with open(os.environ["STANDIN_PIDS"], "a") as pids:
    pids.write(f"{{os.getpid()}}\\n")
behaviour = os.environ["STANDIN_BEHAVIOUR"]
if behaviour in ("deaf", "family"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if behaviour in ("family", "escapes", "leaves"):
    # A child holding stdout and stderr: in the same process group, or in a
    # session of its own, which a kill of the group does not reach.
    child = subprocess.Popen(
        [sys.executable, "-c", "import time\\nwhile True: time.sleep(1)"],
        start_new_session=behaviour != "family",
    )
    with open(os.environ["STANDIN_PIDS"], "a") as pids:
        pids.write(f"{{child.pid}}\\n")
if behaviour == "leaves":
    sys.exit(0)
while True:
    time.sleep(1)
"""


@dataclass
class Sleepers:
    pids_file: Path

    def pids(self) -> list[int]:
        if not self.pids_file.exists():
            return []
        return [int(line) for line in self.pids_file.read_text().split()]

    def alive(self) -> list[int]:
        living = []
        for pid in self.pids():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            living.append(pid)
        return living


@pytest.fixture
def sleepers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sleepers]:
    """kind, docker and kubectl stand-ins that never finish (STANDIN_BEHAVIOUR)."""
    for name in ("kind", "docker", "kubectl"):
        path = tmp_path / name
        path.write_text(FOREVER.format(python=sys.executable))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv(kind.PROGRAMS[name][0], str(path))
    found = Sleepers(tmp_path / "pids")
    monkeypatch.setenv("STANDIN_PIDS", str(found.pids_file))
    monkeypatch.setenv("STANDIN_BEHAVIOUR", "sleeps")
    yield found
    for pid in found.pids():  # whatever escaped, the test's own processes
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# The wrapper waits up to 5 s more for a killed command's output to close.
KILL_GRACE_S = 5.0


@pytest.mark.parametrize("behaviour", ["sleeps", "deaf", "family"])
def test_a_command_that_never_ends_is_killed_with_its_family(
    sleepers: Sleepers, monkeypatch: pytest.MonkeyPatch, behaviour: str
) -> None:
    monkeypatch.setenv("STANDIN_BEHAVIOUR", behaviour)

    error = raised(lambda: kind.run("docker", ["ps"], timeout_s=1.0), 1.0)

    assert isinstance(error, CommandTimeout)
    assert str(error) == "`docker ps` did not finish within 1 s and was stopped"
    deadline = time.monotonic() + MARGIN_S
    while sleepers.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sleepers.alive() == []


@pytest.mark.parametrize("behaviour", ["escapes", "leaves"])
def test_a_command_whose_child_escapes_its_group_still_ends_in_time(
    sleepers: Sleepers, monkeypatch: pytest.MonkeyPatch, behaviour: str
) -> None:
    monkeypatch.setenv("STANDIN_BEHAVIOUR", behaviour)

    error = raised(
        lambda: kind.run("kubectl", ["get", "nodes"], timeout_s=1.0),
        1.0 + KILL_GRACE_S,
    )

    assert isinstance(error, CommandTimeout)
    assert "`kubectl get nodes` did not finish within 1 s" in str(error)


def test_node_faults_through_a_docker_that_never_answers_end_in_time(
    sleepers: Sleepers,
) -> None:
    nodes = KindNodes("chaoscert", timeout_s=0.5)

    for act in (nodes.pause, nodes.unpause, nodes.stop, nodes.state):
        error = raised(lambda act=act: act("chaoscert-worker"), 0.5)

        assert isinstance(error, CommandTimeout)
        assert "`kind get nodes --name chaoscert` did not finish" in str(error)


def test_waits_on_kubectl_end_within_their_bound_and_margin(
    sleepers: Sleepers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kind, "WAIT_MARGIN_S", 0.5)

    for wait in (
        lambda: kind.kubectl_wait("kind-x", "odoo", "job/init", "Complete", 0.5),
        lambda: kind.kubectl_rollout_status("kind-x", "odoo", "deployment/odoo", 0.5),
    ):
        error = raised(wait, 0.5 + 0.5)

        assert isinstance(error, CommandTimeout)
        assert "did not finish within 1 s" in str(error)


def test_a_secret_handed_to_a_command_that_never_reads_it_ends_in_time(
    sleepers: Sleepers,
) -> None:
    secret = "s" * 1_000_000  # more than a pipe holds: writing it would block

    error = raised(
        lambda: kind.create_secret("kind-x", "odoo", "odoo-login", "pw", secret, 1.0),
        1.0,
    )

    assert isinstance(error, CommandTimeout)
    assert secret not in str(error)
