"""Journal entries and invoices: draft, then posted under a sequence name.

Kept to what invoice posting needs: product lines, totals without taxes, and
action_post with Odoo 17's checks and messages. Names such as INV/2026/00001
take the year of the invoice date; numbers come from one Postgres sequence per
move type, so they do not restart each year as Odoo's do.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from psycopg import sql

from chaoscert.standin import records
from chaoscert.standin.base import PRODUCT_DISPLAY, next_by_code
from chaoscert.standin.exceptions import UserError
from chaoscert.standin.orm import Env, Field, Model, Vals, define, records_method

MOVE_TYPES = (
    ("entry", "Journal Entry"),
    ("out_invoice", "Customer Invoice"),
    ("out_refund", "Customer Credit Note"),
    ("in_invoice", "Vendor Bill"),
    ("in_refund", "Vendor Credit Note"),
)
_PARTNER_LABEL = {
    "out_invoice": "Customer",
    "out_refund": "Customer",
    "in_invoice": "Vendor",
    "in_refund": "Vendor",
}
_TOTAL = (
    "(SELECT COALESCE(SUM(l.quantity * l.price_unit), 0) FROM account_move_line l"
    " WHERE l.move_id = t.id AND l.display_type = 'product')"
)


def action_post(env: Env, model: Model, ids: list[int]) -> bool:
    """Post draft entries; returns False, as Odoo 17's action_post does."""
    records.lock(env, model, ids)
    env.cr.execute(
        "SELECT m.id, m.name, m.state, m.move_type, m.partner_id, m.invoice_date,"
        " m.date, (SELECT count(*) FROM account_move_line l WHERE l.move_id = m.id"
        " AND l.display_type = 'product')"
        " FROM account_move m WHERE m.id = ANY(%s) ORDER BY m.id",
        (ids,),
    )
    moves = env.cr.fetchall()
    labels = dict(MOVE_TYPES)
    for move_id, name, state, move_type, partner_id, _, _, lines in moves:
        if state == "posted":
            raise UserError(f"The entry {name} (id {move_id}) is already posted.")
        if not lines:
            raise UserError("You need to add a line before posting.")
        if move_type in _PARTNER_LABEL and not partner_id:
            raise UserError(
                f"The field '{_PARTNER_LABEL[move_type]}' is required, please "
                f"complete it to validate the {labels[move_type]}."
            )
    today = datetime.now(UTC).date()
    for move_id, name, _, move_type, _, invoice_date, move_date, _ in moves:
        posted_on = _invoice_date(move_type, invoice_date, today)
        number = name
        if name in (None, "", "/"):
            sequence = f"account.move.{move_type}"
            number = next_by_code(env, sequence, posted_on or move_date)
        env.cr.execute(
            "UPDATE account_move SET state = 'posted', name = %s, invoice_date = %s,"
            " write_date = now() AT TIME ZONE 'UTC', write_uid = %s WHERE id = %s",
            (number, posted_on, env.uid, move_id),
        )
    return False


def _invoice_date(
    move_type: str, invoice_date: date | None, today: date
) -> date | None:
    if invoice_date is None and move_type in _PARTNER_LABEL:
        return today
    return invoice_date


def _move_defaults(env: Env, vals: Vals) -> None:
    if not vals.get("name"):
        vals["name"] = "/"


def _line_defaults(env: Env, vals: Vals) -> None:
    product_id = records.to_m2o(vals.get("product_id"))
    if product_id is None or vals.get("name"):
        return
    query = sql.SQL("SELECT {} FROM product_product t WHERE t.id = %s")
    env.cr.execute(query.format(sql.SQL(PRODUCT_DISPLAY)), (product_id,))
    row = env.cr.fetchone()
    if row is not None:
        vals["name"] = row[0]


MODELS: tuple[Model, ...] = (
    define(
        "account.move",
        "account_move",
        "Journal Entry",
        {
            "name": Field("char", "Number"),
            "move_type": Field(
                "selection", "Type", required=True, selection=MOVE_TYPES
            ),
            "state": Field(
                "selection",
                "Status",
                selection=(
                    ("draft", "Draft"),
                    ("posted", "Posted"),
                    ("cancel", "Cancelled"),
                ),
            ),
            "partner_id": Field("many2one", "Partner", comodel="res.partner"),
            "invoice_date": Field("date", "Invoice/Bill Date"),
            "date": Field("date", "Date"),
            "invoice_origin": Field("char", "Origin"),
            "ref": Field("char", "Reference"),
            "payment_state": Field(
                "selection",
                "Payment Status",
                selection=(
                    ("not_paid", "Not Paid"),
                    ("in_payment", "In Payment"),
                    ("paid", "Paid"),
                    ("partial", "Partially Paid"),
                    ("reversed", "Reversed"),
                ),
            ),
            "invoice_line_ids": Field(
                "one2many",
                "Invoice lines",
                comodel="account.move.line",
                inverse="move_id",
            ),
            "line_ids": Field(
                "one2many",
                "Journal Items",
                comodel="account.move.line",
                inverse="move_id",
            ),
            "amount_untaxed": Field("float", "Untaxed Amount", compute_sql=_TOTAL),
            "amount_total": Field("float", "Total", compute_sql=_TOTAL),
            "amount_residual": Field(
                "float",
                "Amount Due",
                compute_sql="CASE WHEN t.payment_state = 'paid' THEN 0 ELSE "
                + _TOTAL
                + " END",
            ),
        },
        display_sql="COALESCE(NULLIF(t.name, '/'), 'Draft (* ' || t.id || ')')",
        order="date desc, name desc, id desc",
        methods={"action_post": records_method(action_post)},
        on_create=_move_defaults,
    ),
    define(
        "account.move.line",
        "account_move_line",
        "Journal Item",
        {
            "move_id": Field(
                "many2one", "Journal Entry", comodel="account.move", required=True
            ),
            "product_id": Field("many2one", "Product", comodel="product.product"),
            "name": Field("char", "Label"),
            "quantity": Field("float", "Quantity"),
            "price_unit": Field("float", "Unit Price"),
            "display_type": Field(
                "selection",
                "Display Type",
                selection=(
                    ("product", "Product"),
                    ("line_section", "Section"),
                    ("line_note", "Note"),
                ),
            ),
            "price_subtotal": Field(
                "float", "Subtotal", compute_sql="t.quantity * t.price_unit"
            ),
            "price_total": Field(
                "float", "Total", compute_sql="t.quantity * t.price_unit"
            ),
        },
        display_sql="COALESCE(t.name, '')",
        on_create=_line_defaults,
    ),
)
