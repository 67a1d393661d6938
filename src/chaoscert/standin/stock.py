"""Inventory: locations, operation types, transfers (pickings) and their moves.

Stock is unlimited in the stand-in: reserving always reserves the full demand.
State changes follow Odoo 17 for the cases the probes meet:

- action_confirm: draft moves become confirmed; a picking with moves becomes
  confirmed, one without moves stays draft.
- action_assign: confirms draft pickings first, then reserves every open move
  (quantity = demand); UserError when nothing is left to reserve.
- button_validate: a draft picking is confirmed and its quantities set to the
  demand, as Odoo 17 does, then validated. UserError on a picking without
  moves, or whose quantities are all zero (confirmed, never assigned). When a
  quantity is below its demand, the backorder wizard's action is returned and
  nothing is validated. An already-done picking is left as it is.
"""

from __future__ import annotations

from typing import Any

from chaoscert.standin import records
from chaoscert.standin.base import next_by_id
from chaoscert.standin.exceptions import UserError
from chaoscert.standin.orm import (
    Env,
    Field,
    Model,
    Vals,
    define,
    records_method,
)

PICKING_STATES = (
    ("draft", "Draft"),
    ("waiting", "Waiting Another Operation"),
    ("confirmed", "Waiting"),
    ("assigned", "Ready"),
    ("done", "Done"),
    ("cancel", "Cancelled"),
)
MOVE_STATES = (
    ("draft", "New"),
    ("waiting", "Waiting Another Move"),
    ("confirmed", "Waiting Availability"),
    ("partially_available", "Partially Available"),
    ("assigned", "Available"),
    ("done", "Done"),
    ("cancel", "Cancelled"),
)


def action_confirm(env: Env, model: Model, ids: list[int]) -> bool:
    records.lock(env, model, ids)
    _confirm(env, ids)
    return True


def action_assign(env: Env, model: Model, ids: list[int]) -> bool:
    records.lock(env, model, ids)
    _confirm(env, ids)
    env.cr.execute(
        "SELECT count(*) FROM stock_move WHERE picking_id = ANY(%s)"
        " AND state NOT IN ('draft', 'cancel', 'done')",
        (ids,),
    )
    row = env.cr.fetchone()
    if not row or not row[0]:
        raise UserError("Nothing to check the availability for.")
    env.cr.execute(
        "UPDATE stock_move SET state = 'assigned', quantity = product_uom_qty,"
        " write_date = now() AT TIME ZONE 'UTC', write_uid = %s"
        " WHERE picking_id = ANY(%s)"
        " AND state IN ('confirmed', 'waiting', 'partially_available')",
        (env.uid, ids),
    )
    env.cr.execute(
        "UPDATE stock_picking SET state = 'assigned',"
        " write_date = now() AT TIME ZONE 'UTC', write_uid = %s"
        " WHERE id = ANY(%s) AND state IN ('confirmed', 'waiting')",
        (env.uid, ids),
    )
    return True


def button_validate(env: Env, model: Model, ids: list[int]) -> bool | dict[str, Any]:
    records.lock(env, model, ids)
    env.cr.execute("SELECT id, state FROM stock_picking WHERE id = ANY(%s)", (ids,))
    states: dict[int, str] = dict(env.cr.fetchall())
    drafts = [pid for pid in ids if states[pid] == "draft"]
    if drafts:
        _confirm(env, drafts)
        env.cr.execute(
            "UPDATE stock_move SET quantity = product_uom_qty"
            " WHERE picking_id = ANY(%s) AND quantity = 0"
            " AND state NOT IN ('draft', 'cancel', 'done')",
            (drafts,),
        )
    todo = [pid for pid in ids if states[pid] not in ("done", "cancel")]
    if not todo:
        return True

    env.cr.execute(
        "SELECT picking_id, bool_and(quantity = 0),"
        " bool_or(quantity < product_uom_qty) FROM stock_move"
        " WHERE picking_id = ANY(%s) AND state NOT IN ('draft', 'cancel', 'done')"
        " GROUP BY picking_id",
        (todo,),
    )
    moves = {pid: (all_zero, short) for pid, all_zero, short in env.cr.fetchall()}
    if any(pid not in moves for pid in todo):
        raise UserError("Please add some items to move.")
    if any(all_zero for all_zero, _ in moves.values()):
        raise UserError(
            "You cannot validate a transfer if no quantities are reserved nor done. "
            "You can use the info button on the top right corner of your screen "
            "to take a look at the potential reasons."
        )
    short = [pid for pid in todo if moves[pid][1]]
    if short:
        return _backorder_wizard(todo, short)

    env.cr.execute(
        "UPDATE stock_move SET state = 'done', picked = true,"
        " date = now() AT TIME ZONE 'UTC',"
        " write_date = now() AT TIME ZONE 'UTC', write_uid = %s"
        " WHERE picking_id = ANY(%s) AND state NOT IN ('draft', 'cancel', 'done')",
        (env.uid, todo),
    )
    env.cr.execute(
        "UPDATE stock_picking SET state = 'done',"
        " date_done = now() AT TIME ZONE 'UTC',"
        " write_date = now() AT TIME ZONE 'UTC', write_uid = %s"
        " WHERE id = ANY(%s)",
        (env.uid, todo),
    )
    return True


def action_cancel(env: Env, model: Model, ids: list[int]) -> bool:
    records.lock(env, model, ids)
    env.cr.execute(
        "SELECT 1 FROM stock_move WHERE picking_id = ANY(%s) AND state = 'done'",
        (ids,),
    )
    if env.cr.fetchone():
        raise UserError(
            "You cannot cancel a stock move that has been set to 'Done'. "
            "Create a return in order to reverse the moves which took place."
        )
    env.cr.execute(
        "UPDATE stock_move SET state = 'cancel',"
        " write_date = now() AT TIME ZONE 'UTC', write_uid = %s"
        " WHERE picking_id = ANY(%s)",
        (env.uid, ids),
    )
    env.cr.execute(
        "UPDATE stock_picking SET state = 'cancel',"
        " write_date = now() AT TIME ZONE 'UTC', write_uid = %s"
        " WHERE id = ANY(%s)",
        (env.uid, ids),
    )
    return True


def _confirm(env: Env, ids: list[int]) -> None:
    env.cr.execute(
        "UPDATE stock_move SET state = 'confirmed',"
        " write_date = now() AT TIME ZONE 'UTC', write_uid = %s"
        " WHERE picking_id = ANY(%s) AND state = 'draft'",
        (env.uid, ids),
    )
    # Odoo leaves a picking without moves in draft.
    env.cr.execute(
        "UPDATE stock_picking p SET state = 'confirmed',"
        " write_date = now() AT TIME ZONE 'UTC', write_uid = %s"
        " WHERE p.id = ANY(%s) AND p.state = 'draft'"
        " AND EXISTS (SELECT 1 FROM stock_move m WHERE m.picking_id = p.id)",
        (env.uid, ids),
    )


def _backorder_wizard(todo: list[int], short: list[int]) -> dict[str, Any]:
    """What Odoo 17 returns instead of validating when quantities fall short."""
    return {
        "name": "Create Backorder?",
        "type": "ir.actions.act_window",
        "view_mode": "form",
        "res_model": "stock.backorder.confirmation",
        "views": [[False, "form"]],
        "view_id": False,
        "target": "new",
        "context": {
            "button_validate_picking_ids": todo,
            "default_pick_ids": [[4, pid] for pid in short],
        },
    }


def _picking_defaults(env: Env, vals: Vals) -> None:
    type_id = records.to_m2o(vals.get("picking_type_id"))
    if type_id is None:
        return
    env.cr.execute(
        "SELECT default_location_src_id, default_location_dest_id, sequence_id"
        " FROM stock_picking_type WHERE id = %s",
        (type_id,),
    )
    row = env.cr.fetchone()
    if row is None:
        return
    source, destination, sequence_id = row
    if not vals.get("location_id"):
        vals["location_id"] = source
    if not vals.get("location_dest_id"):
        vals["location_dest_id"] = destination
    if vals.get("name") in (None, False, "", "/") and sequence_id:
        vals["name"] = next_by_id(env, sequence_id)


def _move_defaults(env: Env, vals: Vals) -> None:
    picking_id = records.to_m2o(vals.get("picking_id"))
    if picking_id is not None:
        env.cr.execute(
            "SELECT location_id, location_dest_id, picking_type_id, origin, state"
            " FROM stock_picking WHERE id = %s",
            (picking_id,),
        )
        row = env.cr.fetchone()
        if row is not None:
            source, destination, type_id, origin, state = row
            vals.setdefault("location_id", source)
            vals.setdefault("location_dest_id", destination)
            vals.setdefault("picking_type_id", type_id)
            vals.setdefault("origin", origin or False)
            # A move added to a picking already confirmed is confirmed too.
            vals.setdefault("state", "draft" if state == "draft" else "confirmed")
    product_id = records.to_m2o(vals.get("product_id"))
    if product_id is not None:
        env.cr.execute(
            "SELECT uom_id, name FROM product_product WHERE id = %s", (product_id,)
        )
        product = env.cr.fetchone()
        if product is not None:
            vals.setdefault("product_uom", product[0])
            if not vals.get("name"):
                vals["name"] = product[1]


def _location_defaults(env: Env, vals: Vals) -> None:
    parent_id = records.to_m2o(vals.get("location_id"))
    name = vals.get("name") or ""
    vals["complete_name"] = name
    if parent_id is None or vals.get("usage") == "view":
        return
    env.cr.execute(
        "SELECT complete_name FROM stock_location WHERE id = %s", (parent_id,)
    )
    row = env.cr.fetchone()
    if row is not None and row[0]:
        vals["complete_name"] = f"{row[0]}/{name}"


def _m2o(string: str, comodel: str, required: bool = False) -> Field:
    return Field("many2one", string, comodel=comodel, required=required)


MODELS: tuple[Model, ...] = (
    define(
        "stock.location",
        "stock_location",
        "Inventory Locations",
        {
            "name": Field("char", "Location Name", required=True),
            "complete_name": Field("char", "Full Location Name"),
            "location_id": _m2o("Parent Location", "stock.location"),
            "usage": Field(
                "selection",
                "Location Type",
                selection=(
                    ("supplier", "Vendor Location"),
                    ("view", "View"),
                    ("internal", "Internal Location"),
                    ("customer", "Customer Location"),
                    ("inventory", "Inventory Loss"),
                    ("production", "Production"),
                    ("transit", "Transit Location"),
                ),
            ),
            "active": Field("boolean", "Active"),
        },
        display_sql="t.complete_name",
        order="complete_name, id",
        on_create=_location_defaults,
    ),
    define(
        "stock.picking.type",
        "stock_picking_type",
        "Picking Type",
        {
            "name": Field("char", "Operation Type", required=True),
            "code": Field(
                "selection",
                "Type of Operation",
                required=True,
                selection=(
                    ("incoming", "Receipt"),
                    ("outgoing", "Delivery"),
                    ("internal", "Internal Transfer"),
                ),
            ),
            "sequence_code": Field("char", "Sequence Prefix", required=True),
            "sequence_id": _m2o("Reference Sequence", "ir.sequence"),
            "default_location_src_id": _m2o(
                "Default Source Location", "stock.location"
            ),
            "default_location_dest_id": _m2o(
                "Default Destination Location", "stock.location"
            ),
            "active": Field("boolean", "Active"),
        },
    ),
    define(
        "stock.picking",
        "stock_picking",
        "Transfer",
        {
            "name": Field("char", "Reference"),
            "origin": Field("char", "Source Document"),
            "note": Field("text", "Notes"),
            "state": Field("selection", "Status", selection=PICKING_STATES),
            "picking_type_id": _m2o("Operation Type", "stock.picking.type", True),
            "picking_type_code": Field(
                "selection",
                "Type of Operation",
                selection=(
                    ("incoming", "Receipt"),
                    ("outgoing", "Delivery"),
                    ("internal", "Internal Transfer"),
                ),
                compute_sql="(SELECT pt.code FROM stock_picking_type pt"
                " WHERE pt.id = t.picking_type_id)",
            ),
            "location_id": _m2o("Source Location", "stock.location", True),
            "location_dest_id": _m2o("Destination Location", "stock.location", True),
            "partner_id": _m2o("Contact", "res.partner"),
            "scheduled_date": Field("datetime", "Scheduled Date"),
            "date_done": Field("datetime", "Date of Transfer"),
            "move_type": Field(
                "selection",
                "Shipping Policy",
                selection=(
                    ("direct", "As soon as possible"),
                    ("one", "When all products are ready"),
                ),
            ),
            "priority": Field(
                "selection", "Priority", selection=(("0", "Normal"), ("1", "Urgent"))
            ),
            "move_ids": Field(
                "one2many", "Stock Moves", comodel="stock.move", inverse="picking_id"
            ),
            "move_ids_without_package": Field(
                "one2many", "Stock Moves", comodel="stock.move", inverse="picking_id"
            ),
            "purchase_id": _m2o("Purchase Orders", "purchase.order"),
        },
        order="priority desc, scheduled_date asc, id desc",
        methods={
            "action_confirm": records_method(action_confirm),
            "action_assign": records_method(action_assign),
            "button_validate": records_method(button_validate),
            "action_cancel": records_method(action_cancel),
        },
        on_create=_picking_defaults,
    ),
    define(
        "stock.move",
        "stock_move",
        "Stock Move",
        {
            "name": Field("char", "Description", required=True),
            "reference": Field(
                "char",
                "Reference",
                compute_sql="COALESCE((SELECT p.name FROM stock_picking p"
                " WHERE p.id = t.picking_id), t.name)",
            ),
            "picking_id": _m2o("Transfer", "stock.picking"),
            "product_id": _m2o("Product", "product.product", True),
            "product_uom_qty": Field("float", "Demand"),
            "quantity": Field("float", "Quantity"),
            "picked": Field("boolean", "Picked"),
            "product_uom": _m2o("UoM", "uom.uom", True),
            "location_id": _m2o("Source Location", "stock.location", True),
            "location_dest_id": _m2o("Destination Location", "stock.location", True),
            "state": Field("selection", "Status", selection=MOVE_STATES),
            "origin": Field("char", "Source Document"),
            "date": Field("datetime", "Date Scheduled"),
            "picking_type_id": _m2o("Operation Type", "stock.picking.type"),
            "purchase_line_id": _m2o("Purchase Order Line", "purchase.order.line"),
        },
        display_sql="COALESCE((SELECT p.name FROM stock_picking p"
        " WHERE p.id = t.picking_id) || ': ', '') || t.name",
        on_create=_move_defaults,
    ),
)
