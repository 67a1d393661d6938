"""Purchase orders: confirming one (single-step approval) creates its receipt.

As in Odoo 17 with the default one-step approval, button_confirm moves a draft
order straight to 'purchase' and creates a receipt from the vendor location
into WH/Stock, already reserved ('assigned'), linked by purchase_id.
button_approve does the same for any order not cancelled or locked.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from chaoscert.standin import records, stock
from chaoscert.standin.base import PRODUCT_DISPLAY, next_by_code, ref
from chaoscert.standin.orm import Env, Field, Model, Vals, define, records_method

ORDER_STATES = (
    ("draft", "RFQ"),
    ("sent", "RFQ Sent"),
    ("to approve", "To Approve"),
    ("purchase", "Purchase Order"),
    ("done", "Locked"),
    ("cancel", "Cancelled"),
)


def button_confirm(env: Env, model: Model, ids: list[int]) -> bool:
    records.lock(env, model, ids)
    env.cr.execute(
        "SELECT id FROM purchase_order"
        " WHERE id = ANY(%s) AND state IN ('draft', 'sent')",
        (ids,),
    )
    _approve(env, [row[0] for row in env.cr.fetchall()])
    return True


def button_approve(env: Env, model: Model, ids: list[int], force: bool = False) -> Any:
    records.lock(env, model, ids)
    env.cr.execute(
        "SELECT id FROM purchase_order WHERE id = ANY(%s)"
        " AND state IN ('draft', 'sent', 'to approve', 'purchase')",
        (ids,),
    )
    _approve(env, [row[0] for row in env.cr.fetchall()])
    return {}


def _approve(env: Env, order_ids: list[int]) -> None:
    if not order_ids:
        return
    env.cr.execute(
        "UPDATE purchase_order SET state = 'purchase',"
        " date_approve = COALESCE(date_approve, now() AT TIME ZONE 'UTC'),"
        " write_date = now() AT TIME ZONE 'UTC', write_uid = %s"
        " WHERE id = ANY(%s)",
        (env.uid, order_ids),
    )
    for order_id in order_ids:
        _create_receipt(env, order_id)


def _create_receipt(env: Env, order_id: int) -> None:
    """One receipt per order with one move per line, unless it has one already."""
    env.cr.execute(
        "SELECT 1 FROM stock_picking WHERE purchase_id = %s AND state <> 'cancel'",
        (order_id,),
    )
    if env.cr.fetchone():
        return
    env.cr.execute(
        "SELECT o.name, o.partner_id, l.id, l.product_id, l.name, l.product_qty,"
        " l.product_uom FROM purchase_order o"
        " JOIN purchase_order_line l ON l.order_id = o.id"
        " WHERE o.id = %s ORDER BY l.id",
        (order_id,),
    )
    lines = env.cr.fetchall()
    if not lines:
        return
    name, partner_id = lines[0][0], lines[0][1]
    moves = [
        [
            0,
            0,
            {
                "product_id": product_id,
                "name": description,
                "product_uom_qty": quantity,
                "product_uom": uom_id,
                "purchase_line_id": line_id,
            },
        ]
        for _, _, line_id, product_id, description, quantity, uom_id in lines
    ]
    pickings = env["stock.picking"]
    picking_id = records.create_one(
        env,
        pickings,
        {
            "picking_type_id": ref(env, "stock.picking_type_in"),
            "partner_id": partner_id,
            "origin": name,
            "purchase_id": order_id,
            "move_ids": moves,
        },
    )
    stock.action_assign(env, pickings, [picking_id])


def _order_defaults(env: Env, vals: Vals) -> None:
    if vals.get("name") in (None, False, "", "/", "New"):
        vals["name"] = next_by_code(env, "purchase.order")


def _line_defaults(env: Env, vals: Vals) -> None:
    product_id = records.to_m2o(vals.get("product_id"))
    if product_id is None:
        return
    query = sql.SQL("SELECT t.uom_id, {} FROM product_product t WHERE t.id = %s")
    env.cr.execute(query.format(sql.SQL(PRODUCT_DISPLAY)), (product_id,))
    row = env.cr.fetchone()
    if row is not None:
        vals.setdefault("product_uom", row[0])
        if not vals.get("name"):
            vals["name"] = row[1]


MODELS: tuple[Model, ...] = (
    define(
        "purchase.order",
        "purchase_order",
        "Purchase Order",
        {
            "name": Field("char", "Order Reference", required=True),
            "partner_id": Field(
                "many2one", "Vendor", comodel="res.partner", required=True
            ),
            "state": Field("selection", "Status", selection=ORDER_STATES),
            "date_order": Field("datetime", "Order Deadline"),
            "date_approve": Field("datetime", "Confirmation Date"),
            "origin": Field("char", "Source Document"),
            "partner_ref": Field("char", "Vendor Reference"),
            "notes": Field("text", "Terms and Conditions"),
            "order_line": Field(
                "one2many",
                "Order Lines",
                comodel="purchase.order.line",
                inverse="order_id",
            ),
            "picking_ids": Field(
                "one2many", "Receptions", comodel="stock.picking", inverse="purchase_id"
            ),
            "incoming_picking_count": Field(
                "integer",
                "Incoming Shipment count",
                compute_sql="(SELECT count(*) FROM stock_picking p"
                " WHERE p.purchase_id = t.id)",
            ),
            "amount_untaxed": Field(
                "float",
                "Untaxed Amount",
                compute_sql="(SELECT COALESCE(SUM(l.product_qty * l.price_unit), 0)"
                " FROM purchase_order_line l WHERE l.order_id = t.id)",
            ),
            "amount_total": Field(
                "float",
                "Total",
                compute_sql="(SELECT COALESCE(SUM(l.product_qty * l.price_unit), 0)"
                " FROM purchase_order_line l WHERE l.order_id = t.id)",
            ),
        },
        order="date_order desc, id desc",
        methods={
            "button_confirm": records_method(button_confirm),
            "button_approve": records_method(button_approve),
        },
        on_create=_order_defaults,
    ),
    define(
        "purchase.order.line",
        "purchase_order_line",
        "Purchase Order Line",
        {
            "order_id": Field(
                "many2one", "Order Reference", comodel="purchase.order", required=True
            ),
            "product_id": Field(
                "many2one", "Product", comodel="product.product", required=True
            ),
            "name": Field("text", "Description", required=True),
            "product_qty": Field("float", "Quantity"),
            "price_unit": Field("float", "Unit Price"),
            "product_uom": Field("many2one", "Unit of Measure", comodel="uom.uom"),
            "date_planned": Field("datetime", "Expected Arrival"),
            "price_subtotal": Field(
                "float", "Subtotal", compute_sql="t.product_qty * t.price_unit"
            ),
            "qty_received": Field(
                "float",
                "Received Qty",
                compute_sql="(SELECT COALESCE(SUM(m.quantity), 0) FROM stock_move m"
                " WHERE m.purchase_line_id = t.id AND m.state = 'done')",
            ),
        },
        on_create=_line_defaults,
    ),
)
