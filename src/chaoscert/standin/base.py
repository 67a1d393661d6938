"""Base models: partners, users, units, products, sequences, external ids."""

from __future__ import annotations

from datetime import UTC, date, datetime

from chaoscert.standin.orm import Env, Field, Model, Vals, define

PRODUCT_DISPLAY = (
    "CASE WHEN t.default_code IS NOT NULL"
    " THEN '[' || t.default_code || '] ' || t.name ELSE t.name END"
)


def ref(env: Env, xmlid: str) -> int:
    """The id behind an external id such as "stock.picking_type_out"."""
    module, _, name = xmlid.partition(".")
    env.cr.execute(
        "SELECT res_id FROM ir_model_data WHERE module = %s AND name = %s",
        (module, name),
    )
    row = env.cr.fetchone()
    if row is None:
        raise ValueError(f"External ID not found in the system: {xmlid}")
    return int(row[0])


def sequence_name(sequence_id: int) -> str:
    """The Postgres sequence behind an ir.sequence row, named as Odoo names it."""
    return f"ir_sequence_{sequence_id:03d}"


def next_by_code(env: Env, code: str, when: date | None = None) -> str:
    env.cr.execute("SELECT id FROM ir_sequence WHERE code = %s", (code,))
    row = env.cr.fetchone()
    if row is None:
        raise ValueError(f"No ir.sequence has the code {code!r}")
    return next_by_id(env, int(row[0]), when)


def next_by_id(env: Env, sequence_id: int, when: date | None = None) -> str:
    """The next name of a sequence: prefix (with %(year)s etc.) and padded number.

    Numbers come from a Postgres sequence, as Odoo's "standard" implementation
    does: no lock between concurrent writers, gaps after a rollback.
    """
    env.cr.execute(
        "SELECT prefix, padding FROM ir_sequence WHERE id = %s", (sequence_id,)
    )
    row = env.cr.fetchone()
    if row is None:
        raise ValueError(f"No ir.sequence has the id {sequence_id}")
    prefix, padding = row
    env.cr.execute("SELECT nextval(%s::regclass)", (sequence_name(sequence_id),))
    number_row = env.cr.fetchone()
    assert number_row is not None
    day = when or datetime.now(UTC).date()
    interpolated = prefix % {
        "year": f"{day.year:04d}",
        "month": f"{day.month:02d}",
        "day": f"{day.day:02d}",
    }
    return f"{interpolated}{int(number_row[0]):0{padding}d}"


def _product_defaults(env: Env, vals: Vals) -> None:
    if not vals.get("uom_id"):
        vals["uom_id"] = ref(env, "uom.product_uom_unit")


MODELS: tuple[Model, ...] = (
    define(
        "ir.model.data",
        "ir_model_data",
        "Model Data",
        {
            "module": Field("char", "Module", required=True),
            "name": Field("char", "External Identifier", required=True),
            "model": Field("char", "Model Name", required=True),
            "res_id": Field("integer", "Record ID"),
        },
        display_sql="t.module || '.' || t.name",
    ),
    define(
        "ir.sequence",
        "ir_sequence",
        "Sequence",
        {
            "name": Field("char", "Name", required=True),
            "code": Field("char", "Sequence Code"),
            "prefix": Field("char", "Prefix"),
            "padding": Field("integer", "Sequence Size"),
        },
    ),
    define(
        "res.partner",
        "res_partner",
        "Contact",
        {
            "name": Field("char", "Name", required=True),
            "email": Field("char", "Email"),
            "phone": Field("char", "Phone"),
            "is_company": Field("boolean", "Is a Company"),
            # Added by the purchase and account modules in Odoo 17.
            "supplier_rank": Field("integer", "Supplier Rank"),
            "customer_rank": Field("integer", "Customer Rank"),
            "active": Field("boolean", "Active"),
        },
        order="name",
    ),
    define(
        "res.users",
        "res_users",
        "User",
        {
            "login": Field("char", "Login", required=True),
            "partner_id": Field(
                "many2one", "Related Partner", comodel="res.partner", required=True
            ),
            "name": Field(
                "char",
                "Name",
                compute_sql="(SELECT p.name FROM res_partner p"
                " WHERE p.id = t.partner_id)",
            ),
            "active": Field("boolean", "Active"),
        },
        display_sql="(SELECT p.name FROM res_partner p WHERE p.id = t.partner_id)",
        order="login",
    ),
    define(
        "uom.uom",
        "uom_uom",
        "Product Unit of Measure",
        {
            "name": Field("char", "Unit of Measure", required=True),
            "rounding": Field("float", "Rounding Precision"),
            "active": Field("boolean", "Active"),
        },
    ),
    define(
        "product.product",
        "product_product",
        "Product Variant",
        {
            "name": Field("char", "Name", required=True),
            "default_code": Field("char", "Internal Reference"),
            "barcode": Field("char", "Barcode"),
            "uom_id": Field("many2one", "Unit of Measure", comodel="uom.uom"),
            "type": Field(
                "selection",
                "Product Type",
                selection=(
                    ("consu", "Consumable"),
                    ("service", "Service"),
                    ("product", "Storable Product"),
                ),
            ),
            "list_price": Field("float", "Sales Price"),
            "standard_price": Field("float", "Cost"),
            "active": Field("boolean", "Active"),
        },
        display_sql=PRODUCT_DISPLAY,
        order="default_code, name, id",
        on_create=_product_defaults,
    ),
)
