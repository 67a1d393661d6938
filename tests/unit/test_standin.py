"""Stand-in tests: the Odoo stand-in served by gunicorn over a real PostgreSQL.

Every call goes over real HTTP with httpx, as a probe's would.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from chaoscert.standin.models import REGISTRY
from chaoscert.standin.orm import column
from chaoscert.standin.schema import bootstrap

DB = "logistics"
LOGIN = "admin"
HTTP_TIMEOUT_S = 30
_ids = itertools.count(1)


def rpc(client: httpx.Client, url: str, params: dict[str, Any]) -> dict[str, Any]:
    """POST a JSON-RPC call; Odoo answers errors too with HTTP 200."""
    response = client.post(
        url,
        json={"jsonrpc": "2.0", "method": "call", "params": params, "id": next(_ids)},
        timeout=HTTP_TIMEOUT_S,
    )
    assert response.status_code == 200, (
        f"{url} answered HTTP {response.status_code}: {response.text[:300]}"
    )
    payload: dict[str, Any] = response.json()
    assert payload["jsonrpc"] == "2.0"
    return payload


def result_of(payload: dict[str, Any]) -> Any:
    assert "error" not in payload, f"expected a result, got error {payload['error']}"
    return payload["result"]


def error_of(payload: dict[str, Any]) -> dict[str, Any]:
    assert "error" in payload, f"expected a JSON-RPC error, got {payload}"
    error: dict[str, Any] = payload["error"]
    assert set(error["data"]) >= {"name", "message", "arguments", "debug"}
    return error


class Odoo:
    """A logged-in web client, as a probe drives Odoo."""

    def __init__(self, base_url: str, client: httpx.Client) -> None:
        self.base_url = base_url
        self.client = client

    def call_raw(
        self, model: str, method: str, *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        return rpc(
            self.client,
            f"{self.base_url}/web/dataset/call_kw/{model}.{method}",
            {"model": model, "method": method, "args": list(args), "kwargs": kwargs},
        )

    def call(self, model: str, method: str, *args: Any, **kwargs: Any) -> Any:
        return result_of(self.call_raw(model, method, *args, **kwargs))


def login(base_url: str, client: httpx.Client, password: str) -> dict[str, Any]:
    payload = rpc(
        client,
        f"{base_url}/web/session/authenticate",
        {"db": DB, "login": LOGIN, "password": password},
    )
    info: dict[str, Any] = result_of(payload)
    return info


@pytest.fixture
def odoo(standin_url: str, admin_password: str) -> Iterator[Odoo]:
    with httpx.Client() as client:
        login(standin_url, client, admin_password)
        yield Odoo(standin_url, client)


def outgoing_type(odoo: Odoo) -> dict[str, Any]:
    types = odoo.call(
        "stock.picking.type",
        "search_read",
        [["code", "=", "outgoing"]],
        fields=["id", "default_location_src_id", "default_location_dest_id"],
    )
    assert len(types) == 1, f"expected one delivery operation type, got {types}"
    return dict(types[0])


def product_id(odoo: Odoo, barcode: str) -> int:
    ids = odoo.call("product.product", "search", [["barcode", "=", barcode]])
    assert len(ids) == 1, f"expected one product with barcode {barcode}, got {ids}"
    return int(ids[0])


# -- health and routing ------------------------------------------------------


def test_health_passes_and_checks_the_database_on_request(standin_url: str) -> None:
    plain = httpx.get(f"{standin_url}/web/health", timeout=HTTP_TIMEOUT_S)
    checked = httpx.get(
        f"{standin_url}/web/health?db_server_status=1", timeout=HTTP_TIMEOUT_S
    )

    assert (plain.status_code, plain.json()) == (200, {"status": "pass"})
    assert checked.status_code == 200
    assert checked.json() == {"status": "pass", "db_server_status": True}


def test_unknown_route_is_404(standin_url: str) -> None:
    response = httpx.get(f"{standin_url}/web/nothing/here", timeout=HTTP_TIMEOUT_S)

    assert response.status_code == 404


def test_json_route_refuses_a_non_json_content_type(standin_url: str) -> None:
    response = httpx.post(
        f"{standin_url}/web/session/authenticate",
        content=b"db=logistics",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=HTTP_TIMEOUT_S,
    )

    assert response.status_code == 400
    assert "type='json'" in response.text


# -- sessions ----------------------------------------------------------------


def test_authenticate_returns_session_info_and_an_httponly_cookie(
    standin_url: str, admin_password: str
) -> None:
    with httpx.Client() as client:
        response = client.post(
            f"{standin_url}/web/session/authenticate",
            json={
                "jsonrpc": "2.0",
                "method": "call",
                "id": 7,
                "params": {"db": DB, "login": LOGIN, "password": admin_password},
            },
            timeout=HTTP_TIMEOUT_S,
        )

    info = result_of(response.json())
    assert response.json()["id"] == 7
    assert info["uid"] == 2, f"admin should be uid 2 as in Odoo, got {info['uid']}"
    assert (info["db"], info["username"]) == (DB, LOGIN)
    assert info["server_version_info"][0] == 17
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("session_id=")
    assert "HttpOnly" in cookie


@pytest.mark.parametrize(
    ("db", "password", "error_name"),
    [
        pytest.param(DB, "wrong", "odoo.exceptions.AccessDenied", id="bad-password"),
        pytest.param("nodb", None, "odoo.exceptions.AccessError", id="unknown-db"),
    ],
)
def test_authenticate_refusals_are_jsonrpc_errors(
    standin_url: str,
    admin_password: str,
    db: str,
    password: str | None,
    error_name: str,
) -> None:
    with httpx.Client() as client:
        payload = rpc(
            client,
            f"{standin_url}/web/session/authenticate",
            {"db": db, "login": LOGIN, "password": password or admin_password},
        )
        cookies = dict(client.cookies)

    error = error_of(payload)
    assert error["code"] == 200
    assert error["message"] == "Odoo Server Error"
    assert error["data"]["name"] == error_name
    assert "session_id" not in cookies


def test_session_works_on_new_connections_and_on_another_replica(
    standin_url: str, standin_peer_url: str, admin_password: str
) -> None:
    with httpx.Client() as first:
        login(standin_url, first, admin_password)
        session_id = first.cookies["session_id"]

    for base_url in (standin_url, standin_peer_url):
        with httpx.Client(cookies={"session_id": session_id}) as other:
            count = Odoo(base_url, other).call("product.product", "search_count", [])
        assert count >= 50, f"{base_url}: expected the seeded products, got {count}"


@pytest.mark.parametrize("session_id", [None, "x" * 84], ids=["none", "unknown"])
def test_call_kw_without_a_valid_session_is_session_expired(
    standin_url: str, session_id: str | None
) -> None:
    cookies = {"session_id": session_id} if session_id else {}
    with httpx.Client(cookies=cookies) as client:
        payload = Odoo(standin_url, client).call_raw(
            "product.product", "search_count", []
        )

    error = error_of(payload)
    assert error["code"] == 100
    assert error["message"] == "Odoo Session Expired"
    assert error["data"]["name"] == "odoo.http.SessionExpiredException"


def test_destroyed_session_expires(standin_url: str, admin_password: str) -> None:
    with httpx.Client() as client:
        login(standin_url, client, admin_password)
        odoo = Odoo(standin_url, client)
        info = result_of(rpc(client, f"{standin_url}/web/session/get_session_info", {}))
        rpc(client, f"{standin_url}/web/session/destroy", {})
        payload = odoo.call_raw("product.product", "search_count", [])

    assert info["uid"] == 2
    assert error_of(payload)["code"] == 100


# -- /jsonrpc ----------------------------------------------------------------


def jsonrpc(url: str, service: str, method: str, *args: Any) -> dict[str, Any]:
    with httpx.Client() as client:
        return rpc(
            client,
            f"{url}/jsonrpc",
            {"service": service, "method": method, "args": list(args)},
        )


def test_common_version_and_version_info(standin_url: str) -> None:
    version = result_of(jsonrpc(standin_url, "common", "version"))
    with httpx.Client() as client:
        info = result_of(rpc(client, f"{standin_url}/web/webclient/version_info", {}))

    assert version == {
        "server_version": "17.0",
        "server_version_info": [17, 0, 0, "final", 0, ""],
        "server_serie": "17.0",
        "protocol_version": 1,
    }
    assert info == version


def test_common_login_and_object_execute_kw(
    standin_url: str, admin_password: str
) -> None:
    uid = result_of(jsonrpc(standin_url, "common", "login", DB, LOGIN, admin_password))
    refused = result_of(jsonrpc(standin_url, "common", "login", DB, LOGIN, "nope"))
    rows = result_of(
        jsonrpc(
            standin_url,
            "object",
            "execute_kw",
            DB,
            uid,
            admin_password,
            "product.product",
            "search_read",
            [[["barcode", "=", "CC0000003"]]],
            {"fields": ["barcode", "default_code"]},
        )
    )
    denied = jsonrpc(
        standin_url,
        "object",
        "execute_kw",
        DB,
        uid,
        "nope",
        "product.product",
        "search_count",
        [[]],
    )

    assert uid == 2
    assert refused is False
    assert [(row["barcode"], row["default_code"]) for row in rows] == [
        ("CC0000003", "CC-0000003")
    ]
    assert error_of(denied)["data"]["name"] == "odoo.exceptions.AccessDenied"


def test_unknown_service_and_object_method_are_errors(standin_url: str) -> None:
    service = error_of(jsonrpc(standin_url, "nope", "version"))
    method = error_of(jsonrpc(standin_url, "object", "nope"))

    assert service["data"]["name"] == "builtins.KeyError"
    assert method["data"]["name"] == "builtins.NameError"


# -- models and domains ------------------------------------------------------


def test_product_lookup_by_barcode(odoo: Odoo) -> None:
    rows = odoo.call(
        "product.product",
        "search_read",
        [["barcode", "=", "CC0000007"]],
        fields=["name", "barcode", "uom_id", "type", "display_name"],
    )

    assert len(rows) == 1, f"expected one product CC0000007, got {rows}"
    product = rows[0]
    assert product["barcode"] == "CC0000007"
    assert product["uom_id"][1] == "Units", "many2one reads back as [id, name]"
    assert product["type"] == "product"
    assert product["display_name"] == f"[CC-0000007] {product['name']}"


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        pytest.param([["barcode", "in", ["CC0000001", "CC0000002"]]], 2, id="in"),
        pytest.param([["barcode", "=like", "CC000000_"]], 9, id="=like"),
        pytest.param([["name", "ilike", "item 000001"]], 10, id="ilike"),
        pytest.param(
            ["|", ["barcode", "=", "CC0000001"], ["barcode", "=", "CC0000005"]],
            2,
            id="or",
        ),
        pytest.param(
            [
                "&",
                ["barcode", "like", "CC00000"],
                "!",
                ["barcode", "not in", ["CC0000001", "CC0000002"]],
            ],
            2,
            id="and-not",
        ),
        pytest.param(
            [["barcode", ">=", "CC0000048"], ["barcode", "<", "CC0000050"]],
            2,
            id="range",
        ),
        pytest.param([["uom_id.name", "=", "Units"], ["id", "<", 0]], 0, id="path"),
        pytest.param(
            [["uom_id", "=", "Units"], ["barcode", "=", "CC0000009"]], 1, id="m2o-name"
        ),
        pytest.param([["barcode", "=", False]], 0, id="is-null"),
    ],
)
def test_search_count_domains(odoo: Odoo, domain: list[Any], expected: int) -> None:
    count = odoo.call("product.product", "search_count", domain)

    assert count == expected, f"domain {domain} matched {count}, expected {expected}"


def test_search_order_limit_and_offset(odoo: Odoo) -> None:
    rows = odoo.call(
        "product.product",
        "search_read",
        [["barcode", "=like", "CC000000_"]],
        fields=["barcode"],
        order="barcode desc",
        limit=3,
        offset=1,
    )

    assert [row["barcode"] for row in rows] == ["CC0000008", "CC0000007", "CC0000006"]


def test_schema_has_every_stored_field_and_computed_expression(
    postgres_dsn: str, standin_env: dict[str, str]
) -> None:
    with psycopg.connect(postgres_dsn, connect_timeout=10) as conn:
        for model in REGISTRY.values():
            columns = {
                row[0]
                for row in conn.execute(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_name = %s",
                    (model.table,),
                )
            }
            missing = set(model.stored_names) - columns
            assert not missing, f"table {model.table} lacks columns {sorted(missing)}"
            for name, fld in model.fields.items():
                if fld.compute_sql:  # raises if the expression is not valid SQL
                    conn.execute(
                        sql.SQL("SELECT {} FROM {} t LIMIT 0").format(
                            column(name, fld), sql.Identifier(model.table)
                        )
                    )


def test_every_model_reads_all_its_fields(odoo: Odoo) -> None:
    for name in REGISTRY:
        rows = odoo.call(name, "search_read", [], fields=[], limit=2)
        for row in rows:
            missing = set(REGISTRY[name].fields) - set(row)
            assert not missing, f"{name} read back without {sorted(missing)}"


@pytest.mark.parametrize(
    ("model", "method", "error_name"),
    [
        pytest.param("no.such.model", "search", "builtins.KeyError", id="model"),
        pytest.param("stock.picking", "fly", "builtins.AttributeError", id="method"),
        pytest.param(
            "stock.picking", "_confirm", "odoo.exceptions.AccessError", id="private"
        ),
    ],
)
def test_unknown_model_or_method_is_an_error(
    odoo: Odoo, model: str, method: str, error_name: str
) -> None:
    payload = odoo.call_raw(model, method, [])

    error = error_of(payload)
    assert error["code"] == 200
    assert error["data"]["name"] == error_name


def test_bad_field_and_constraint_errors(odoo: Odoo) -> None:
    unknown = odoo.call_raw("product.product", "search", [["colour", "=", "red"]])
    duplicate = odoo.call_raw(
        "product.product", "create", {"name": "Twin", "barcode": "CC0000001"}
    )

    assert error_of(unknown)["data"]["name"] == "builtins.ValueError"
    assert error_of(duplicate)["data"]["name"] == "odoo.exceptions.ValidationError"


# -- dispatch ----------------------------------------------------------------


def create_delivery(odoo: Odoo, quantity: float, barcode: str = "CC0000011") -> int:
    picking_type = outgoing_type(odoo)
    picking_id = odoo.call(
        "stock.picking",
        "create",
        {
            "picking_type_id": picking_type["id"],
            "origin": "chaoscert test",
            "move_ids": [
                [
                    0,
                    0,
                    {
                        "product_id": product_id(odoo, barcode),
                        "product_uom_qty": quantity,
                    },
                ]
            ],
        },
    )
    assert isinstance(picking_id, int)
    return picking_id


def read_picking(odoo: Odoo, picking_id: int) -> dict[str, Any]:
    rows = odoo.call(
        "stock.picking",
        "read",
        [picking_id],
        ["name", "state", "location_id", "location_dest_id", "move_ids"],
    )
    assert len(rows) == 1, f"picking {picking_id} should read back, got {rows}"
    return dict(rows[0])


def test_dispatch_confirm_assign_validate_reaches_done(
    odoo: Odoo, standin_peer_url: str, admin_password: str
) -> None:
    picking_id = create_delivery(odoo, quantity=3)
    created = read_picking(odoo, picking_id)

    confirmed = odoo.call("stock.picking", "action_confirm", [picking_id])
    state_confirmed = read_picking(odoo, picking_id)["state"]
    assigned = odoo.call("stock.picking", "action_assign", [picking_id])
    moves_assigned = odoo.call(
        "stock.move", "read", created["move_ids"], ["state", "quantity"]
    )
    validated = odoo.call("stock.picking", "button_validate", [picking_id])

    assert created["state"] == "draft"
    assert re.fullmatch(r"WH/OUT/\d{5}", created["name"]), created["name"]
    assert created["location_id"][1] == "WH/Stock"
    assert created["location_dest_id"][1] == "Partners/Customers"
    assert (confirmed, state_confirmed) == (True, "confirmed")
    assert assigned is True
    assert moves_assigned == [
        {"id": created["move_ids"][0], "state": "assigned", "quantity": 3.0}
    ]
    assert validated is True
    with httpx.Client() as client:
        login(standin_peer_url, client, admin_password)
        peer = Odoo(standin_peer_url, client)
        done = read_picking(peer, picking_id)
        moves = peer.call("stock.move", "read", done["move_ids"], ["state", "picked"])
    assert done["state"] == "done", "the validated picking reads back done elsewhere"
    assert moves == [{"id": created["move_ids"][0], "state": "done", "picked": True}]


def test_create_with_a_list_of_vals_returns_a_list_of_ids(odoo: Odoo) -> None:
    picking_type = outgoing_type(odoo)

    ids = odoo.call(
        "stock.picking",
        "create",
        [{"picking_type_id": picking_type["id"]} for _ in range(2)],
    )

    assert isinstance(ids, list) and len(ids) == 2
    assert all(isinstance(i, int) for i in ids)


def test_validating_a_draft_picking_confirms_and_finishes_it(odoo: Odoo) -> None:
    picking_id = create_delivery(odoo, quantity=2)

    validated = odoo.call("stock.picking", "button_validate", [picking_id])

    assert validated is True
    assert read_picking(odoo, picking_id)["state"] == "done"


def test_validating_an_empty_picking_is_a_user_error(odoo: Odoo) -> None:
    picking_id = odoo.call(
        "stock.picking", "create", {"picking_type_id": outgoing_type(odoo)["id"]}
    )

    payload = odoo.call_raw("stock.picking", "button_validate", [picking_id])

    error = error_of(payload)
    assert error["data"]["name"] == "odoo.exceptions.UserError"
    assert "add some items" in error["data"]["message"]


def test_short_quantity_returns_the_backorder_wizard(odoo: Odoo) -> None:
    picking_id = create_delivery(odoo, quantity=5)
    odoo.call("stock.picking", "action_assign", [picking_id])
    move_ids = read_picking(odoo, picking_id)["move_ids"]
    odoo.call("stock.move", "write", move_ids, {"quantity": 2})

    action = odoo.call("stock.picking", "button_validate", [picking_id])

    assert action["res_model"] == "stock.backorder.confirmation"
    assert read_picking(odoo, picking_id)["state"] == "assigned"


def test_concurrent_writes_to_one_picking_all_succeed(
    standin_url: str, admin_password: str
) -> None:
    with httpx.Client() as client:
        login(standin_url, client, admin_password)
        picking_id = create_delivery(Odoo(standin_url, client), quantity=1)
        session_id = client.cookies["session_id"]
    outcomes: list[Any] = []

    def writer(worker: int) -> None:
        with httpx.Client(cookies={"session_id": session_id}) as own:
            odoo = Odoo(standin_url, own)
            for round_ in range(3):
                outcomes.append(
                    odoo.call_raw(
                        "stock.picking",
                        "write",
                        [picking_id],
                        {"origin": f"writer {worker} round {round_}"},
                    )
                )

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not any(thread.is_alive() for thread in threads)
    errors = [
        payload["error"]["data"]["name"] for payload in outcomes if "error" in payload
    ]
    assert not errors, f"concurrent writes failed (not retried?): {errors}"
    assert len(outcomes) == 18


def test_missing_records_read_empty_and_write_missing_error(odoo: Odoo) -> None:
    rows = odoo.call("stock.picking", "read", [987654321], ["state"])
    payload = odoo.call_raw("stock.picking", "write", [987654321], {"origin": "x"})

    assert rows == []
    assert error_of(payload)["data"]["name"] == "odoo.exceptions.MissingError"


# -- procurement and invoicing -----------------------------------------------


def partner_id(odoo: Odoo, name: str) -> int:
    ids = odoo.call("res.partner", "search", [["name", "=", name]])
    assert len(ids) == 1, f"expected one partner {name!r}, got {ids}"
    return int(ids[0])


def test_purchase_confirm_creates_a_reserved_receipt(odoo: Odoo) -> None:
    order_id = odoo.call(
        "purchase.order",
        "create",
        {
            "partner_id": partner_id(odoo, "Chaoscert Vendor"),
            "order_line": [
                [
                    0,
                    0,
                    {
                        "product_id": product_id(odoo, "CC0000020"),
                        "product_qty": 4,
                        "price_unit": 2.5,
                    },
                ]
            ],
        },
    )

    confirmed = odoo.call("purchase.order", "button_confirm", [order_id])
    approved = odoo.call("purchase.order", "button_approve", [order_id])
    [order] = odoo.call(
        "purchase.order",
        "read",
        [order_id],
        ["name", "state", "amount_total", "picking_ids"],
    )
    [receipt] = odoo.call(
        "stock.picking", "read", order["picking_ids"], ["state", "origin", "name"]
    )
    validated = odoo.call("stock.picking", "button_validate", order["picking_ids"])
    [line] = odoo.call(
        "purchase.order.line",
        "search_read",
        [["order_id", "=", order_id]],
        fields=["qty_received"],
    )

    assert (confirmed, approved) == (True, {})
    assert re.fullmatch(r"P\d{5}", order["name"]), order["name"]
    assert order["state"] == "purchase"
    assert order["amount_total"] == 10.0
    assert len(order["picking_ids"]) == 1, "one receipt, even after button_approve"
    assert receipt["state"] == "assigned"
    assert receipt["origin"] == order["name"]
    assert receipt["name"].startswith("WH/IN/")
    assert validated is True
    assert line["qty_received"] == 4.0


def test_invoice_is_posted_under_a_sequence_name(odoo: Odoo) -> None:
    move_id = odoo.call(
        "account.move",
        "create",
        {
            "move_type": "out_invoice",
            "partner_id": partner_id(odoo, "Chaoscert Customer"),
            "invoice_line_ids": [
                [0, 0, {"product_id": product_id(odoo, "CC0000030"), "price_unit": 8}],
                [0, 0, {"name": "Handling", "quantity": 2, "price_unit": 1.5}],
            ],
        },
    )
    [draft] = odoo.call("account.move", "read", [move_id], ["state", "amount_total"])

    posted = odoo.call("account.move", "action_post", [move_id])
    [invoice] = odoo.call(
        "account.move", "read", [move_id], ["state", "name", "invoice_date"]
    )
    again = odoo.call_raw("account.move", "action_post", [move_id])

    assert draft == {"id": move_id, "state": "draft", "amount_total": 11.0}
    assert posted is False, "Odoo 17's action_post returns False"
    assert invoice["state"] == "posted"
    assert re.fullmatch(r"INV/\d{4}/\d{5}", invoice["name"]), invoice["name"]
    assert invoice["invoice_date"], "posting sets the invoice date"
    assert error_of(again)["data"]["name"] == "odoo.exceptions.UserError"


def test_context_defaults_apply_on_create(odoo: Odoo) -> None:
    move_id = odoo.call(
        "account.move",
        "create",
        {"partner_id": partner_id(odoo, "Chaoscert Customer")},
        context={"default_move_type": "out_invoice"},
    )

    [move] = odoo.call("account.move", "read", [move_id], ["move_type"])
    assert move["move_type"] == "out_invoice"


# -- bootstrap ---------------------------------------------------------------


def _counts(conninfo: str) -> dict[str, int]:
    tables = ("product_product", "res_users", "stock_picking_type", "ir_model_data")
    with psycopg.connect(conninfo, connect_timeout=10) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in tables
        }


def test_bootstrap_is_idempotent_even_concurrently(
    postgres_dsn: str, admin_password: str, standin_url: str
) -> None:
    before = _counts(postgres_dsn)
    failures: list[BaseException] = []

    def again() -> None:
        try:
            bootstrap(postgres_dsn, LOGIN, admin_password)
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=again) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    bootstrap(postgres_dsn, LOGIN, admin_password)

    assert not failures, f"concurrent bootstrap failed: {failures}"
    assert not any(thread.is_alive() for thread in threads)
    assert _counts(postgres_dsn) == before
    assert (
        result_of(jsonrpc(standin_url, "common", "login", DB, LOGIN, admin_password))
        == 2
    )


# -- the database stops answering ---------------------------------------------


def test_a_frozen_database_yields_errors_within_the_deadline_then_recovers(
    postgres_server: Any,
    standin_env: dict[str, str],
    standin_url: str,
    admin_password: str,
) -> None:
    deadline_s = float(standin_env["CHAOSCERT_STANDIN_STATEMENT_TIMEOUT_S"])
    bound_s = deadline_s + 10  # generous: connect timeouts, a busy 2-core machine
    with httpx.Client() as client:
        login(standin_url, client, admin_password)
        odoo = Odoo(standin_url, client)
        for _ in range(4):  # both workers hold a pooled connection, most likely
            odoo.call("product.product", "search_count", [])

        postgres_server.freeze()
        try:
            outcomes = [
                timed(odoo.call_raw, "product.product", "search_count", [])
                for _ in range(4)
            ]
            health = httpx.get(f"{standin_url}/web/health", timeout=HTTP_TIMEOUT_S)
            checked_s, checked = timed(
                httpx.get,
                f"{standin_url}/web/health?db_server_status=1",
                timeout=HTTP_TIMEOUT_S,
            )
        finally:
            postgres_server.thaw()
        recovered_s = wait_until_answering(odoo, timeout_s=60)

    for elapsed_s, payload in outcomes:
        assert elapsed_s < bound_s, (
            f"a request to a frozen database took {elapsed_s:.1f} s,"
            f" expected an error within {bound_s:.0f} s"
        )
        error = error_of(payload)
        assert error["data"]["name"] == "psycopg2.OperationalError", error["data"]
    assert (health.status_code, health.json()) == (200, {"status": "pass"})
    assert checked_s < bound_s
    assert checked.status_code == 500
    assert checked.json() == {"status": "fail", "db_server_status": False}
    assert recovered_s is not None, "the stand-in did not answer 60 s after thawing"


def timed(func: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    started = time.monotonic()
    outcome = func(*args, **kwargs)
    return time.monotonic() - started, outcome


def wait_until_answering(odoo: Odoo, timeout_s: float) -> float | None:
    """Seconds until a call succeeds again, or None after timeout_s."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if "error" not in odoo.call_raw("product.product", "search_count", []):
            return time.monotonic() - started
        time.sleep(0.5)
    return None
