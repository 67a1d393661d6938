"""HTTP calls from a platform to its components, each bounded as a whole.

httpx's timeouts bound each phase of a request (connect, every read, every
write), so a server that sends its answer a byte at a time never trips them
and holds the caller for as long as it drips. The calls here run under one
deadline instead; past it they fail as httpx fails on a timeout, so callers go
on catching ``httpx.HTTPError``.

The exchanges run on an event loop in a thread of their own and the caller
only waits for their answer. A run is stopped by a signal handler raising
KeyboardInterrupt wherever the main thread is; had the main thread been inside
the event loop, the interrupt could land in a task group of anyio (httpx's
connect), come out wrapped in a BaseExceptionGroup, and fail one test instead
of ending the run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import ssl
import threading
from typing import Any

import httpx

# How long past its deadline a call waits for the loop to hand back the
# exchange's own timeout before it gives up on the loop itself.
LOOP_GRACE_S = 2.0


def request(
    method: str, url: str, timeout_s: float, json: Any = None
) -> httpx.Response:
    """`method` `url` (with a JSON body if given), its answer read whole within
    `timeout_s` seconds.

    Raises httpx.TimeoutException past the deadline and any other failure as
    an httpx.HTTPError. Callable from any thread but the one running these
    calls' own loop.
    """
    loop = _calls.loop()
    exchange = _request(method, url, timeout_s, json)
    if loop is None:
        # At interpreter shutdown no thread can start (Python 3.12 and newer),
        # so the exchange runs here.
        return asyncio.run(exchange)
    future = asyncio.run_coroutine_threadsafe(exchange, loop)
    try:
        return future.result(timeout_s + LOOP_GRACE_S)
    except concurrent.futures.TimeoutError:
        if future.done():  # it ended between the wait's end and this line
            return future.result()
        raise httpx.ReadTimeout(
            f"{method} {url}: no answer from the HTTP calls' loop within"
            f" {timeout_s + LOOP_GRACE_S:g} s"
        ) from None
    finally:
        # Interrupted or given up on: the exchange must not outlive its caller.
        future.cancel()


def get(url: str, timeout_s: float) -> httpx.Response:
    """GET `url`, its answer read whole within `timeout_s` seconds."""
    return request("GET", url, timeout_s)


class _CallsLoop:
    """The event loop the calls run on, started in its own thread on first use."""

    def __init__(self) -> None:
        # Re-entrant: the signal handler that heals a run may make a call
        # while the interrupted main thread is in the middle of starting it.
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop, running in its thread (started, or started again if its
        thread ended); None at interpreter shutdown, when no thread can start."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            return loop
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="chaoscert-http", daemon=True
                )
                try:
                    thread.start()
                except RuntimeError as exc:
                    loop.close()
                    if "shutdown" in str(exc):
                        return None
                    raise httpx.TransportError(
                        f"the HTTP calls' thread cannot start: {exc}"
                    ) from None
                self._loop, self._thread = loop, thread
            return self._loop

    def forget(self) -> None:
        """In a forked child: the parent's loop thread and lock are not here."""
        self._lock = threading.RLock()
        self._loop = None
        self._thread = None


_calls = _CallsLoop()
os.register_at_fork(after_in_child=_calls.forget)
# asyncio sets up its policy on first use under a lock of its own that is not
# re-entrant; done here, a signal handler's call cannot find it held by the
# interrupted first call.
asyncio.get_event_loop_policy()


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the trust store takes tens of milliseconds, which every call on
    # the one loop would otherwise spend in turn.
    return httpx.create_ssl_context()


async def _request(
    method: str, url: str, timeout_s: float, json: Any
) -> httpx.Response:
    try:
        async with asyncio.timeout(timeout_s):
            async with httpx.AsyncClient(
                timeout=timeout_s, verify=_ssl_context()
            ) as client:
                return await client.request(method, url, json=json)
    except TimeoutError:
        raise httpx.ReadTimeout(
            f"{method} {url}: no complete answer within {timeout_s:g} s"
        ) from None
    except httpx.HTTPError:
        raise
    except Exception as exc:
        # For instance name resolution at interpreter exit: callers handle
        # httpx.HTTPError only.
        raise httpx.TransportError(
            f"{method} {url}: {type(exc).__name__}: {exc}"
        ) from None
