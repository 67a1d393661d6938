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
import os
import threading
from typing import Any

import httpx

# How long past its deadline a call waits for the loop to hand back the
# exchange's own timeout before it gives up on the loop itself.
LOOP_GRACE_S = 2.0

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0


def request(
    method: str, url: str, timeout_s: float, json: Any = None
) -> httpx.Response:
    """`method` `url` (with a JSON body if given), its answer read whole within
    `timeout_s` seconds.

    Raises httpx.TimeoutException past the deadline and any other
    httpx.HTTPError as httpx raises it. Callable from any thread but the one
    running these calls' own loop.
    """
    future = asyncio.run_coroutine_threadsafe(
        _request(method, url, timeout_s, json), _calls_loop()
    )
    try:
        return future.result(timeout_s + LOOP_GRACE_S)
    except concurrent.futures.TimeoutError:
        if future.done():
            raise
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


def _calls_loop() -> asyncio.AbstractEventLoop:
    global _loop, _loop_pid
    with _lock:
        # A forked child inherits the variable but not the thread.
        if _loop is None or _loop_pid != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(
                target=loop.run_forever, name="chaoscert-http", daemon=True
            ).start()
            _loop, _loop_pid = loop, os.getpid()
        return _loop


async def _request(
    method: str, url: str, timeout_s: float, json: Any
) -> httpx.Response:
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        try:
            async with asyncio.timeout(timeout_s):
                return await client.request(method, url, json=json)
        except TimeoutError:
            raise httpx.ReadTimeout(
                f"{method} {url}: no complete answer within {timeout_s:g} s"
            ) from None
