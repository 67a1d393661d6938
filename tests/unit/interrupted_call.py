"""A bounded HTTP call interrupted by the run's signal handler at a chosen point.

    python -m tests.unit.interrupted_call WHERE

WHERE is ``connect`` (SIGTERM while httpx's connect, in anyio, is under way to
a listener whose queue is full, so the connect never completes) or ``start``
(SIGTERM while the first call of the process starts the calls' loop, with a
live fault whose healing itself makes a call). The signal is sent from a trace
function the moment the chosen code is entered, in whichever thread runs it.
Prints how the call ended, what was healed, and whether a call still works.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from chaoscert.platforms import http
from chaoscert.platforms.base import FaultHandle, FaultRegistry


class Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


def full_listener() -> tuple[socket.socket, list[socket.socket]]:
    """A listener whose accept queue is full: a further connect hangs."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    held = []
    for _ in range(3):
        conn = socket.socket()
        conn.setblocking(False)
        conn.connect_ex(listener.getsockname())
        held.append(conn)
    return listener, held


def main(where: str) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ok_url = f"http://127.0.0.1:{server.server_address[1]}/"
    listener, _held = full_listener()
    hung_url = f"http://127.0.0.1:{listener.getsockname()[1]}/"

    registry = FaultRegistry()
    registry.install()
    healed: list[int] = []
    registry.add(
        FaultHandle("app_replica_kill", "a2", lambda: healed.append(call(ok_url)))
    )
    sent: list[str] = []

    def tracer(frame: FrameType, event: str, arg: Any) -> None:
        code = frame.f_code
        if where == "connect":
            hit = code.co_name == "try_connect" and "anyio" in code.co_filename
        else:
            caller = frame.f_back.f_code.co_name if frame.f_back else ""
            hit = code.co_name == "start" and caller == "loop"
        if hit and not sent:
            sent.append(threading.current_thread().name)
            os.kill(os.getpid(), signal.SIGTERM)

    threading.settrace(tracer)  # type: ignore[arg-type]
    sys.settrace(tracer)  # type: ignore[arg-type]
    try:
        call(hung_url if where == "connect" else ok_url)
        print("ENDED returned", flush=True)
    except KeyboardInterrupt:
        print("ENDED interrupted", flush=True)
    except BaseException as exc:  # the failure this checks for
        print(f"ENDED escaped {type(exc).__name__}: {exc!r}", flush=True)
    finally:
        sys.settrace(None)
        threading.settrace(None)  # type: ignore[arg-type]
    print(f"SENT {sent}", flush=True)
    print(f"HEALED {healed}", flush=True)
    print(f"AFTER {call(ok_url)}", flush=True)


def call(url: str) -> int:
    return http.get(url, 5.0).status_code


if __name__ == "__main__":
    main(sys.argv[1])
