"""OdooClient against a real HTTP server on loopback that speaks Odoo's envelope."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from chaoscert.errors import OdooError, SessionExpired, TransportError
from chaoscert.odoo import OdooClient
from tests.unit.fake_odoo import DB, LOGIN, PASSWORD, UID, FakeOdoo, free_port

T = TypeVar("T")

BARCODE = [[("barcode", "=", "4006381333931")]]


@pytest.fixture
def odoo() -> Iterator[FakeOdoo]:
    with FakeOdoo() as fake:
        yield fake


def run_with(
    url: str,
    body: Callable[[OdooClient], Awaitable[T]],
    *,
    password: str = PASSWORD,
    timeout_s: float = 5.0,
) -> T:
    """Run ``body`` with a fresh client on a fresh httpx client."""

    async def main() -> T:
        async with httpx.AsyncClient(trust_env=False) as http:
            client = OdooClient(http, url, DB, LOGIN, password, timeout_s=timeout_s)
            return await body(client)

    return asyncio.run(main())


def test_authenticate_returns_session_info_and_keeps_the_cookie(odoo: FakeOdoo):
    async def body(client: OdooClient) -> dict[str, Any]:
        info = await client.authenticate()
        await client.call_kw("product.product", "search_read", BARCODE)
        return info

    info = run_with(odoo.url, body)

    assert info["uid"] == UID
    auth, call = odoo.calls("/web/session/authenticate"), odoo.calls("/web/dataset")
    assert auth[0].params == {"db": DB, "login": LOGIN, "password": PASSWORD}
    assert auth[0].body["jsonrpc"] == "2.0" and auth[0].body["method"] == "call"
    assert all(seen.content_type == "application/json" for seen in auth + call)
    assert call[0].path == "/web/dataset/call_kw/product.product.search_read"
    assert call[0].params["model"] == "product.product"
    assert call[0].params["method"] == "search_read"
    assert call[0].params["kwargs"] == {}
    assert call[0].cookie is not None
    assert call[0].cookie.removeprefix("session_id=") in odoo.sessions


def test_clients_sharing_one_httpx_client_keep_their_own_sessions(odoo: FakeOdoo):
    async def main() -> None:
        async with httpx.AsyncClient(trust_env=False) as http:
            first = OdooClient(http, odoo.url, DB, LOGIN, PASSWORD)
            second = OdooClient(http, odoo.url, DB, LOGIN, PASSWORD)
            await first.authenticate()
            await second.authenticate()
            await first.call_kw("product.product", "search_read", BARCODE)
            await second.call_kw("product.product", "search_read", BARCODE)
            await first.call_kw("product.product", "search_read", BARCODE)

    asyncio.run(main())

    auths = odoo.calls("/web/session/authenticate")
    cookies = [seen.cookie for seen in odoo.calls("/web/dataset")]
    assert [seen.cookie for seen in auths] == [None, None], "login must carry no cookie"
    assert cookies[0] == cookies[2] != cookies[1]
    assert all(cookie and cookie.count("session_id=") == 1 for cookie in cookies)


def test_call_kw_authenticates_on_first_use(odoo: FakeOdoo):
    rows = run_with(
        odoo.url,
        lambda c: c.call_kw("product.product", "search_read", BARCODE, {"limit": 1}),
    )

    assert rows == [
        {"id": 1, "barcode": "4006381333931", "uom_id": [1, "Units"], "type": "product"}
    ]
    assert len(odoo.calls("/web/session/authenticate")) == 1


def test_expired_session_is_renewed_once_and_the_call_retried(odoo: FakeOdoo):
    async def body(client: OdooClient) -> Any:
        await client.authenticate()
        odoo.expire_sessions()
        return await client.call_kw("product.product", "search_read", BARCODE)

    rows = run_with(odoo.url, body)

    assert rows[0]["id"] == 1
    assert len(odoo.calls("/web/session/authenticate")) == 2
    first, retry = odoo.calls("/web/dataset")
    assert first.cookie != retry.cookie
    assert retry.cookie is not None
    assert retry.cookie.removeprefix("session_id=") in odoo.sessions


def test_concurrent_calls_on_an_expired_session_log_in_once(odoo: FakeOdoo):
    async def body(client: OdooClient) -> list[Any]:
        await client.authenticate()
        odoo.expire_sessions()
        calls = [
            client.call_kw("product.product", "search_read", BARCODE) for _ in range(6)
        ]
        return await asyncio.gather(*calls)

    results = run_with(odoo.url, body)

    assert all(rows[0]["id"] == 1 for rows in results)
    assert len(odoo.calls("/web/session/authenticate")) == 2


def test_session_refused_again_after_renewal_raises_session_expired(odoo: FakeOdoo):
    odoo.accept_sessions = False

    with pytest.raises(SessionExpired) as caught:
        run_with(odoo.url, lambda c: c.call_kw("product.product", "search_read", []))

    assert caught.value.code == 100
    assert caught.value.name == "odoo.http.SessionExpiredException"
    assert len(odoo.calls("/web/session/authenticate")) == 2
    assert len(odoo.calls("/web/dataset")) == 2


def test_session_rotated_by_the_server_is_adopted(odoo: FakeOdoo):
    odoo.rotate_on_call = True

    async def body(client: OdooClient) -> None:
        for _ in range(3):
            await client.call_kw("product.product", "search_read", BARCODE)

    run_with(odoo.url, body)

    cookies = [seen.cookie for seen in odoo.calls("/web/dataset")]
    assert len(set(cookies)) == 3
    assert len(odoo.calls("/web/session/authenticate")) == 1


def test_jsonrpc_error_sent_with_http_200_is_an_odoo_error(odoo: FakeOdoo):
    odoo.mode, odoo.target = "jsonrpc_error", "/web/dataset"

    with pytest.raises(OdooError) as caught:
        run_with(odoo.url, lambda c: c.call_kw("stock.picking", "action_assign", [[1]]))

    error = caught.value
    assert type(error) is OdooError
    assert error.code == 200
    assert error.name == "odoo.exceptions.UserError"
    assert str(error) == "Nothing to check the availability for."
    assert "Traceback" not in str(error)


def test_wrong_password_is_access_denied(odoo: FakeOdoo):
    with pytest.raises(OdooError) as caught:
        run_with(odoo.url, lambda c: c.authenticate(), password="wrong")

    assert caught.value.name == "odoo.exceptions.AccessDenied"
    assert not isinstance(caught.value, SessionExpired)


def test_refused_external_login_is_access_denied(odoo: FakeOdoo):
    with pytest.raises(OdooError) as caught:
        run_with(
            odoo.url,
            lambda c: c.execute_kw("product.product", "search_read", []),
            password="wrong",
        )

    assert caught.value.name == "odoo.exceptions.AccessDenied"
    assert "wrong" not in str(caught.value)


def test_execute_kw_logs_in_once_and_sends_the_external_envelope(odoo: FakeOdoo):
    async def body(client: OdooClient) -> Any:
        await client.execute_kw("product.product", "search_read", BARCODE)
        return await client.execute_kw(
            "product.product", "search_read", BARCODE, {"fields": ["barcode"]}
        )

    rows = run_with(odoo.url, body)

    assert rows == [{"id": 1, "barcode": "4006381333931"}]
    calls = odoo.calls("/jsonrpc")
    assert [c.params["method"] for c in calls] == ["login", "execute_kw", "execute_kw"]
    assert calls[0].params == {
        "service": "common",
        "method": "login",
        "args": [DB, LOGIN, PASSWORD],
    }
    assert calls[2].params["service"] == "object"
    assert calls[2].params["args"] == [
        DB, UID, PASSWORD, "product.product", "search_read",
        [[["barcode", "=", "4006381333931"]]], {"fields": ["barcode"]},
    ]  # fmt: skip
    assert all(c.cookie is None for c in calls)


def test_version_reads_common_version(odoo: FakeOdoo):
    info = run_with(odoo.url, lambda c: c.version())

    assert info["server_serie"] == "17.0"
    assert odoo.calls("/jsonrpc")[0].params == {
        "service": "common",
        "method": "version",
        "args": [],
    }


@pytest.mark.parametrize(
    ("mode", "kind"),
    [
        ("http_502", "http_5xx"),
        ("http_404", "http_404"),
        ("not_json", "bad_response"),
        ("reset", "reset"),
    ],
)
def test_transport_failures_map_to_their_kind(odoo: FakeOdoo, mode: str, kind: str):
    odoo.mode = mode

    with pytest.raises(TransportError) as caught:
        run_with(odoo.url, lambda c: c.version())

    assert caught.value.kind == kind


def test_refused_connection_is_connect():
    url = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(TransportError) as caught:
        run_with(url, lambda c: c.version())

    assert caught.value.kind == "connect"


@pytest.mark.parametrize("misbehaviour", ["hang", "slow"])
def test_unanswered_request_times_out_within_its_bound(
    odoo: FakeOdoo, misbehaviour: str
):
    if misbehaviour == "hang":
        odoo.mode = "hang"
    else:
        odoo.delay_s = 3.0

    started = time.monotonic()
    with pytest.raises(TransportError) as caught:
        run_with(odoo.url, lambda c: c.version(), timeout_s=0.4)
    elapsed_s = time.monotonic() - started

    assert caught.value.kind == "timeout"
    assert 0.3 < elapsed_s < 2.0, f"timed out after {elapsed_s:.2f} s, bound 0.4 s"


def test_per_call_timeout_overrides_the_client_default(odoo: FakeOdoo):
    odoo.mode = "hang"

    started = time.monotonic()
    with pytest.raises(TransportError):
        run_with(odoo.url, lambda c: c.version(timeout_s=0.2), timeout_s=30.0)

    assert time.monotonic() - started < 2.0


def test_slow_answer_within_the_bound_succeeds(odoo: FakeOdoo):
    odoo.delay_s = 0.2

    info = run_with(odoo.url, lambda c: c.version(), timeout_s=2.0)

    assert info["server_version"] == "17.0"


def test_password_never_shows_in_repr_errors_or_logs(
    odoo: FakeOdoo, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    odoo.error_detail = f"password {PASSWORD} rejected by a custom module"
    texts: list[str] = []

    async def body(client: OdooClient) -> None:
        texts.extend([repr(client), str(client), repr(vars(client))])
        await client.authenticate()
        await client.execute_kw("product.product", "search_read", BARCODE)
        odoo.expire_sessions()
        await client.call_kw("product.product", "search_read", BARCODE)
        for mode in ("jsonrpc_error", "http_502", "not_json", "reset"):
            odoo.script.append(mode)
            try:
                await client.execute_kw("product.product", "search_read", BARCODE)
            except (OdooError, TransportError) as exc:
                texts.extend([str(exc), repr(exc)])
        texts.append(repr(client))

    run_with(odoo.url, body)

    assert len(texts) == 4 + 2 * 4
    texts.extend(record.getMessage() for record in caplog.records)
    assert any("expired" in record.getMessage() for record in caplog.records)
    leaks = [text for text in texts if PASSWORD in text]
    assert not leaks, f"password found in {leaks}"
    assert any("***" in text for text in texts), "the echoed password is masked"
