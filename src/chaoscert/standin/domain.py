"""Odoo search domains compiled into SQL conditions.

Supported: leaves `[field, operator, value]` with =, !=, <>, <, >, <=, >=, =?,
in, not in, like, ilike, not like, not ilike, =like, =ilike; dotted paths
through many2one and one2many fields; many2one compared with names; the
prefix operators '&', '|', '!' (with implicit '&' between terms) and the
constant leaves (1, '=', 1) and (0, '=', 1). '!' is pushed down to the leaves
as Odoo does, so `!` of `=` behaves like `!=` (null values included).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from psycopg import sql

from chaoscert.standin.orm import Field, Model, column

OPERATORS = frozenset(
    {
        "=",
        "!=",
        "<>",
        "<",
        ">",
        "<=",
        ">=",
        "=?",
        "in",
        "not in",
        "like",
        "ilike",
        "not like",
        "not ilike",
        "=like",
        "=ilike",
    }
)
NEGATION = {
    "=": "!=",
    "!=": "=",
    "<>": "=",
    "<": ">=",
    ">": "<=",
    "<=": ">",
    ">=": "<",
    "in": "not in",
    "not in": "in",
    "like": "not like",
    "not like": "like",
    "ilike": "not ilike",
    "not ilike": "ilike",
}
_COMPARISON = {op: sql.SQL(op) for op in ("=", "<", ">", "<=", ">=")}
_LIKE = {
    "like": sql.SQL("LIKE"),
    "ilike": sql.SQL("ILIKE"),
    "=like": sql.SQL("LIKE"),
    "=ilike": sql.SQL("ILIKE"),
}


class Clause(NamedTuple):
    sql: sql.Composable
    params: list[Any]


TRUE = Clause(sql.SQL("TRUE"), [])
FALSE = Clause(sql.SQL("FALSE"), [])


def where(
    registry: Mapping[str, Model],
    model: Model,
    domain: Any,
    active_test: bool = True,
) -> Clause:
    """The condition selecting `model`'s rows (alias t) matching `domain`.

    As in Odoo, a model with an `active` field hides archived rows unless the
    domain mentions `active` or active_test is off.
    """
    if domain is None:
        domain = []
    if not isinstance(domain, list | tuple):
        raise ValueError(f"Invalid domain {domain!r}")
    items = list(domain)
    if active_test and "active" in model.fields and not _mentions_active(items):
        items.append(["active", "=", True])
    compiler = _Compiler(registry, items)
    terms = []
    while not compiler.exhausted:
        terms.append(compiler.expression(model, negate=False))
    return _combine("AND", terms) if terms else TRUE


class _Compiler:
    def __init__(self, registry: Mapping[str, Model], items: Sequence[Any]) -> None:
        self.registry = registry
        self.items = items
        self.position = 0

    @property
    def exhausted(self) -> bool:
        return self.position >= len(self.items)

    def expression(self, model: Model, negate: bool) -> Clause:
        if self.exhausted:
            raise ValueError(f"Invalid domain {list(self.items)!r}: missing operand")
        item = self.items[self.position]
        self.position += 1
        if item == "!":
            return self.expression(model, not negate)
        if item in ("&", "|"):
            left = self.expression(model, negate)
            right = self.expression(model, negate)
            conjunction = (item == "&") != negate
            return _combine("AND" if conjunction else "OR", [left, right])
        return self.leaf(model, item, negate)

    def leaf(self, model: Model, leaf: Any, negate: bool) -> Clause:
        if not isinstance(leaf, list | tuple) or len(leaf) != 3:
            raise ValueError(f"Invalid leaf {leaf!r}")
        left, operator, right = leaf
        operator = operator.lower() if isinstance(operator, str) else operator
        if left in (0, 1) and not isinstance(left, bool) and operator == "=":
            return TRUE if (left == right) != negate else FALSE
        if not isinstance(left, str) or operator not in OPERATORS:
            raise ValueError(f"Invalid leaf {leaf!r}")
        if negate:
            if operator not in NEGATION:
                inner = self.leaf(model, leaf, negate=False)
                return Clause(
                    sql.SQL("NOT COALESCE(({}), FALSE)").format(inner.sql), inner.params
                )
            operator = NEGATION[operator]
        return self.field_leaf(model, left, _normalize(operator, right), right)

    def field_leaf(self, model: Model, left: str, operator: str, right: Any) -> Clause:
        if operator == "TRUE":
            return TRUE
        name, _, rest = left.partition(".")
        fld = model.fields.get(name)
        if fld is None:
            leaf = [left, operator, right]
            raise ValueError(f"Invalid field {model.name}.{name} in leaf {leaf!r}")
        if rest:
            return self.path(model, name, fld, rest, operator, right)
        if fld.kind == "one2many":
            return self.one2many(model, name, fld, operator, right)
        if fld.kind == "many2one" and _names_a_record(operator, right):
            return self.many2one_by_name(name, fld, operator, right)
        return compare(column(name, fld), fld.kind, operator, right)

    def path(
        self, model: Model, name: str, fld: Field, rest: str, operator: str, right: Any
    ) -> Clause:
        if fld.kind not in ("many2one", "one2many"):
            raise ValueError(f"Invalid path {name}.{rest} on model {model.name!r}")
        comodel = self.registry[fld.comodel]
        # Odoo searches the comodel of a path without active_test.
        sub = where(
            self.registry, comodel, [[rest, operator, right]], active_test=False
        )
        table = sql.Identifier(comodel.table)
        if fld.kind == "many2one":
            query = sql.SQL("{} IN (SELECT t.id FROM {} t WHERE {})")
            return Clause(query.format(column(name, fld), table, sub.sql), sub.params)
        query = sql.SQL("t.id IN (SELECT t.{} FROM {} t WHERE {})")
        return Clause(
            query.format(sql.Identifier(fld.inverse), table, sub.sql), sub.params
        )

    def one2many(
        self, model: Model, name: str, fld: Field, operator: str, right: Any
    ) -> Clause:
        comodel = self.registry[fld.comodel]
        related = sql.SQL("EXISTS (SELECT 1 FROM {} s WHERE s.{} = t.id{})")
        table, inverse = sql.Identifier(comodel.table), sql.Identifier(fld.inverse)
        if right is False or right is None or right == []:
            if operator not in ("=", "!=", "in", "not in"):
                raise ValueError(f"Invalid operator {operator!r} for {name} = False")
            exists = related.format(table, inverse, sql.SQL(""))
            empty = operator in ("=", "in")
            return Clause(sql.SQL("NOT {}").format(exists) if empty else exists, [])
        if isinstance(right, str) or (
            isinstance(right, list | tuple) and any(isinstance(v, str) for v in right)
        ):
            return self.path(model, name, fld, "display_name", operator, right)
        ids = list(right) if isinstance(right, list | tuple) else [right]
        if operator in ("=", "in"):
            exists = related.format(table, inverse, sql.SQL(" AND s.id = ANY(%s)"))
            return Clause(exists, [ids])
        if operator in ("!=", "not in"):
            exists = related.format(table, inverse, sql.SQL(" AND s.id = ANY(%s)"))
            return Clause(sql.SQL("NOT {}").format(exists), [ids])
        raise ValueError(f"Invalid operator {operator!r} for one2many field {name!r}")

    def many2one_by_name(
        self, name: str, fld: Field, operator: str, right: Any
    ) -> Clause:
        comodel = self.registry[fld.comodel]
        positive = NEGATION[operator] if operator.startswith(("not", "!")) else operator
        sub = where(
            self.registry,
            comodel,
            [["display_name", positive, right]],
            active_test=False,
        )
        col = column(name, fld)
        query = sql.SQL("{} IN (SELECT t.id FROM {} t WHERE {})").format(
            col, sql.Identifier(comodel.table), sub.sql
        )
        if positive == operator:
            return Clause(query, sub.params)
        return Clause(sql.SQL("({} IS NULL OR NOT {})").format(col, query), sub.params)


def _normalize(operator: str, right: Any) -> str:
    """Odoo's operator aliases resolved; "TRUE" when the leaf holds for all rows."""
    if operator == "<>":
        return "!="
    if operator == "=?":
        if right is None or right is False:
            return "TRUE"
        return "in" if isinstance(right, list | tuple) else "="
    if operator in ("=", "!=") and isinstance(right, list | tuple):
        return "in" if operator == "=" else "not in"
    return operator


def compare(col: sql.Composable, kind: str, operator: str, right: Any) -> Clause:
    """One comparison of a column with a value, with Odoo's null handling."""
    if operator in ("in", "not in"):
        return _membership(col, operator, right)
    if operator in ("like", "ilike", "not like", "not ilike", "=like", "=ilike"):
        return _like(col, operator, right)
    if kind == "boolean" and operator in ("=", "!=") and isinstance(right, bool):
        wanted = right if operator == "=" else not right
        truth = sql.SQL("COALESCE({}, FALSE)").format(col)
        return Clause(truth if wanted else sql.SQL("NOT {}").format(truth), [])
    if right is False or right is None:
        if operator == "=":
            return Clause(sql.SQL("{} IS NULL").format(col), [])
        if operator == "!=":
            return Clause(sql.SQL("{} IS NOT NULL").format(col), [])
        return FALSE
    if operator == "!=":
        return Clause(sql.SQL("({} IS NULL OR {} <> %s)").format(col, col), [right])
    return Clause(sql.SQL("{} {} %s").format(col, _COMPARISON[operator]), [right])


def _membership(col: sql.Composable, operator: str, right: Any) -> Clause:
    values = list(right) if isinstance(right, list | tuple) else [right]
    has_null = any(value is False or value is None for value in values)
    values = [value for value in values if value is not False and value is not None]
    any_of = Clause(sql.SQL("{} = ANY(%s)").format(col), [values])
    if operator == "in":
        terms = [any_of] if values else []
        if has_null:
            terms.append(Clause(sql.SQL("{} IS NULL").format(col), []))
        return _combine("OR", terms) if terms else FALSE
    if has_null:
        not_null = Clause(sql.SQL("{} IS NOT NULL").format(col), [])
        if not values:
            return not_null
        return _combine("AND", [not_null, _not(any_of)])
    if not values:
        return TRUE
    return _combine("OR", [Clause(sql.SQL("{} IS NULL").format(col), []), _not(any_of)])


def _like(col: sql.Composable, operator: str, right: Any) -> Clause:
    text = "" if right is False or right is None else str(right)
    if operator.startswith("="):
        pattern = text
    else:
        pattern = (
            "%"
            + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            + "%"
        )
    positive = operator.removeprefix("not ")
    match = Clause(sql.SQL("{}::text {} %s").format(col, _LIKE[positive]), [pattern])
    if positive == operator:
        return match
    return _combine("OR", [Clause(sql.SQL("{} IS NULL").format(col), []), _not(match)])


def _names_a_record(operator: str, right: Any) -> bool:
    """Whether a many2one leaf compares with names rather than ids."""
    if isinstance(right, str):
        return True
    if operator in ("in", "not in") and isinstance(right, list | tuple):
        return any(isinstance(value, str) for value in right)
    return False


def _mentions_active(items: Sequence[Any]) -> bool:
    return any(
        isinstance(item, list | tuple) and len(item) == 3 and item[0] == "active"
        for item in items
    )


def _not(clause: Clause) -> Clause:
    return Clause(sql.SQL("NOT ({})").format(clause.sql), clause.params)


def _combine(conjunction: str, clauses: Sequence[Clause]) -> Clause:
    if len(clauses) == 1:
        return clauses[0]
    joiner = sql.SQL(" AND ") if conjunction == "AND" else sql.SQL(" OR ")
    parts = [sql.SQL("({})").format(clause.sql) for clause in clauses]
    return Clause(
        sql.SQL("({})").format(joiner.join(parts)),
        [param for clause in clauses for param in clause.params],
    )
