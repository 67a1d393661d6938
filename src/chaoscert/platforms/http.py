"""HTTP calls from a platform to its components, each bounded as a whole.

httpx's timeouts bound each phase of a request (connect, every read, every
write), so a server that sends its answer a byte at a time never trips them
and holds the caller for as long as it drips. The calls here run under one
deadline instead, on an event loop of their own; past it they fail as httpx
fails on a timeout, so callers go on catching ``httpx.HTTPError``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx


def request(
    method: str, url: str, timeout_s: float, json: Any = None
) -> httpx.Response:
    """`method` `url` (with a JSON body if given), its answer read whole within
    `timeout_s` seconds.

    Raises httpx.TimeoutException past the deadline and any other
    httpx.HTTPError as httpx raises it. Not for a thread running an event loop.
    """
    return asyncio.run(_request(method, url, timeout_s, json))


def get(url: str, timeout_s: float) -> httpx.Response:
    """GET `url`, its answer read whole within `timeout_s` seconds."""
    return request("GET", url, timeout_s)


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
