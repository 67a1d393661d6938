"""Logistics workflows a probe drives, each a short sequence of Odoo calls.

A workflow resolves what it needs once (``prepare``), then each ``attempt``
is one user action: it returns the id of an acknowledged write, ``None`` for
a read, and raises a chaoscert error when the action did not succeed.

Scanning and procurement go through ``call_kw`` with a web session, as a user
at a scanner or in the purchase app would; dispatch and invoicing go through
``execute_kw``, as a WMS or billing integration would. All payloads are in
Odoo 17 form (``move_ids``, ``invoice_line_ids``, ``(0, 0, vals)`` commands).
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from chaoscert.errors import ChaoscertError, ConfigError
from chaoscert.odoo import OdooClient

PROBE_LABEL = "chaoscert probe"


class WorkflowFailed(ChaoscertError):
    """Odoo answered, but not with the business outcome the attempt needs."""


class PrepareError(ChaoscertError):
    """The target lacks data a workflow needs (a product, a picking type, ...)."""


class Workflow(ABC):
    """Base of every workflow; subclasses set ``name`` and ``write_model``."""

    name: ClassVar[str]
    write_model: ClassVar[str | None] = None  # where acknowledged writes live
    # The state an acknowledged write must still be in when read back.
    acknowledged_states: ClassVar[tuple[str, ...]] = ()

    async def prepare(self, client: OdooClient) -> None:  # noqa: B027 (optional)
        """Resolve ids and codes through the API; called once before attempts."""

    @abstractmethod
    async def attempt(self, client: OdooClient) -> int | None:
        """One attempt; the id of the acknowledged write, or None for a read."""


def _many2one_id(value: Any) -> int | None:
    """Odoo reads a many2one as ``[id, display_name]``, or ``False`` if unset."""
    if isinstance(value, list | tuple) and value and isinstance(value[0], int):
        return value[0]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _created_id(value: Any, model: str) -> int:
    """``create`` with one dict answers one id (some versions: a list of one)."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise WorkflowFailed(f"{model}.create answered {value!r}, not a record id")


async def _barcoded_products(
    client: OdooClient, *, web: bool, limit: int = 20
) -> list[dict[str, Any]]:
    args = [[("barcode", "!=", False)]]
    kwargs = {"fields": ["id", "barcode", "uom_id", "type"], "limit": limit}
    call = client.call_kw if web else client.execute_kw
    rows = await call("product.product", "search_read", args, kwargs)
    if not rows:
        raise PrepareError(f"no product with a barcode on {client.db!r}")
    return list(rows)


async def _first_id(
    client: OdooClient, model: str, domains: list[list[Any]], *, web: bool
) -> int:
    """Id of the first record matching the first domain that matches any."""
    call = client.call_kw if web else client.execute_kw
    for domain in domains:
        rows = await call(
            model, "search_read", [domain], {"fields": ["id"], "limit": 1}
        )
        if rows:
            return int(rows[0]["id"])
    raise PrepareError(f"no {model} matching {domains!r} on {client.db!r}")


async def _state(client: OdooClient, model: str, record_id: int, *, web: bool) -> str:
    call = client.call_kw if web else client.execute_kw
    rows = await call(model, "read", [[record_id]], {"fields": ["state"]})
    if not rows:
        raise WorkflowFailed(f"{model} {record_id} vanished right after its write")
    return str(rows[0].get("state"))


class WarehouseScanning(Workflow):
    """Look a product up by its barcode, as a handheld scanner does."""

    name = "warehouse_scanning"

    def __init__(self) -> None:
        self._codes: itertools.cycle[str] | None = None

    async def prepare(self, client: OdooClient) -> None:
        products = await _barcoded_products(client, web=True)
        self._codes = itertools.cycle([str(row["barcode"]) for row in products])

    async def attempt(self, client: OdooClient) -> int | None:
        if self._codes is None:
            raise PrepareError(f"{self.name} was not prepared")
        code = next(self._codes)
        rows = await client.call_kw(
            "product.product",
            "search_read",
            [[("barcode", "=", code)]],
            {"fields": ["id", "barcode"], "limit": 1},
        )
        if not rows:
            raise WorkflowFailed(f"barcode {code!r} found no product")
        return None


class Dispatch(Workflow):
    """Create an outgoing picking of one move, confirm, reserve and validate it."""

    name = "dispatch"
    write_model = "stock.picking"
    acknowledged_states = ("done",)

    def __init__(self) -> None:
        self._picking: dict[str, Any] | None = None
        self._move: dict[str, Any] | None = None

    async def prepare(self, client: OdooClient) -> None:
        rows = await client.execute_kw(
            "stock.picking.type",
            "search_read",
            [[("code", "=", "outgoing")]],
            {
                "fields": ["id", "default_location_src_id", "default_location_dest_id"],
                "limit": 1,
            },
        )
        if not rows:
            raise PrepareError(f"no outgoing picking type on {client.db!r}")
        kind = rows[0]
        source = _many2one_id(kind.get("default_location_src_id"))
        if source is None:
            internal = [("usage", "=", "internal")]
            source = await _first_id(client, "stock.location", [internal], web=False)
        dest = _many2one_id(kind.get("default_location_dest_id"))
        if dest is None:
            customer = [("usage", "=", "customer")]
            dest = await _first_id(client, "stock.location", [customer], web=False)

        # A consumable is always available in Odoo 17, so validating needs no
        # stock on hand and cannot end in a backorder wizard.
        products = await _barcoded_products(client, web=False)
        consumables = [row for row in products if row.get("type") == "consu"]
        product = (consumables or products)[0]
        uom = _many2one_id(product.get("uom_id"))
        if uom is None:
            raise PrepareError(f"product {product['id']} has no unit of measure")

        where = {"location_id": source, "location_dest_id": dest}
        self._picking = {"picking_type_id": int(kind["id"]), **where}
        self._move = {
            "name": PROBE_LABEL,
            "product_id": int(product["id"]),
            "product_uom_qty": 1.0,
            "product_uom": uom,
            **where,
        }

    async def attempt(self, client: OdooClient) -> int | None:
        if self._picking is None or self._move is None:
            raise PrepareError(f"{self.name} was not prepared")
        values = {**self._picking, "move_ids": [(0, 0, dict(self._move))]}
        created = await client.execute_kw("stock.picking", "create", [values])
        picking_id = _created_id(created, "stock.picking")

        await client.execute_kw("stock.picking", "action_confirm", [[picking_id]])
        await client.execute_kw("stock.picking", "action_assign", [[picking_id]])
        outcome = await client.execute_kw(
            "stock.picking", "button_validate", [[picking_id]]
        )
        if outcome is not True:
            # A dict here is a wizard (backorder, immediate transfer): not done.
            raise WorkflowFailed(
                f"stock.picking {picking_id} not validated: {str(outcome)[:120]}"
            )
        return picking_id


class ProcurementApproval(Workflow):
    """Create a purchase order of one line, confirm it and approve it if asked."""

    name = "procurement_approval"
    write_model = "purchase.order"
    acknowledged_states = ("purchase", "done")

    def __init__(self) -> None:
        self._order: dict[str, Any] | None = None

    async def prepare(self, client: OdooClient) -> None:
        vendors: list[list[Any]] = [
            [("supplier_rank", ">", 0)],
            [("is_company", "=", True)],
            [],
        ]
        partner = await _first_id(client, "res.partner", vendors, web=True)
        product = (await _barcoded_products(client, web=True))[0]
        line = {
            "name": PROBE_LABEL,
            "product_id": int(product["id"]),
            "product_qty": 1.0,
            "price_unit": 1.0,
        }
        uom = _many2one_id(product.get("uom_id"))
        if uom is not None:
            line["product_uom"] = uom
        self._order = {"partner_id": partner, "order_line": [(0, 0, line)]}

    async def attempt(self, client: OdooClient) -> int | None:
        if self._order is None:
            raise PrepareError(f"{self.name} was not prepared")
        created = await client.call_kw("purchase.order", "create", [dict(self._order)])
        order_id = _created_id(created, "purchase.order")

        await client.call_kw("purchase.order", "button_confirm", [[order_id]])
        state = await _state(client, "purchase.order", order_id, web=True)
        if state == "to approve":
            await client.call_kw("purchase.order", "button_approve", [[order_id]])
            state = await _state(client, "purchase.order", order_id, web=True)
        if state not in ("purchase", "done"):
            raise WorkflowFailed(f"purchase.order {order_id} ended in state {state!r}")
        return order_id


class InvoicePosting(Workflow):
    """Create a customer invoice of one line and post it."""

    name = "invoice_posting"
    write_model = "account.move"
    acknowledged_states = ("posted",)

    def __init__(self) -> None:
        self._invoice: dict[str, Any] | None = None

    async def prepare(self, client: OdooClient) -> None:
        customers: list[list[Any]] = [
            [("customer_rank", ">", 0)],
            [("is_company", "=", True)],
            [],
        ]
        partner = await _first_id(client, "res.partner", customers, web=False)
        product = (await _barcoded_products(client, web=False))[0]
        line = {
            "name": PROBE_LABEL,
            "product_id": int(product["id"]),
            "quantity": 1.0,
            "price_unit": 1.0,
        }
        self._invoice = {
            "move_type": "out_invoice",
            "partner_id": partner,
            "invoice_line_ids": [(0, 0, line)],
        }

    async def attempt(self, client: OdooClient) -> int | None:
        if self._invoice is None:
            raise PrepareError(f"{self.name} was not prepared")
        created = await client.execute_kw(
            "account.move", "create", [dict(self._invoice)]
        )
        move_id = _created_id(created, "account.move")

        # action_post answers False on success in Odoo 17 (or a wizard action),
        # so the state read back is what says the invoice was posted.
        await client.execute_kw("account.move", "action_post", [[move_id]])
        state = await _state(client, "account.move", move_id, web=False)
        if state != "posted":
            raise WorkflowFailed(f"account.move {move_id} ended in state {state!r}")
        return move_id


WORKFLOWS: dict[str, type[Workflow]] = {
    cls.name: cls
    for cls in (WarehouseScanning, Dispatch, ProcurementApproval, InvoicePosting)
}


def get_workflow(name: str) -> Workflow:
    """A fresh, unprepared workflow by its name (see ``WORKFLOWS``)."""
    try:
        return WORKFLOWS[name]()
    except KeyError:
        known = ", ".join(sorted(WORKFLOWS))
        raise ConfigError(f"unknown workflow {name!r} (known: {known})") from None
