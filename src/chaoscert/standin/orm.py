"""Model and field definitions: the small ORM the stand-in's models are written in.

Every model maps to one table aliased `t` in every query; a computed field is
an SQL expression over that alias, so it can be read, searched and ordered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from chaoscert.standin.db import Cursor

Vals = dict[str, Any]

KINDS = frozenset(
    {
        "integer",
        "float",
        "char",
        "text",
        "boolean",
        "selection",
        "date",
        "datetime",
        "many2one",
        "one2many",
    }
)
MAGIC = ("id", "create_uid", "create_date", "write_uid", "write_date")


@dataclass(frozen=True)
class Field:
    kind: str
    string: str
    comodel: str = ""
    inverse: str = ""  # one2many: the many2one on the comodel pointing back
    required: bool = False
    selection: tuple[tuple[str, str], ...] = ()
    compute_sql: str = ""  # SQL over alias t; makes the field read-only

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown field kind {self.kind!r}")

    @property
    def stored(self) -> bool:
        return not self.compute_sql and self.kind != "one2many"

    @property
    def readonly(self) -> bool:
        return bool(self.compute_sql)


@dataclass(frozen=True)
class Method:
    """A public model method; `on_records` ones take the ids as first argument."""

    func: Callable[..., Any]
    on_records: bool


def model_method(func: Callable[..., Any]) -> Method:
    return Method(func, on_records=False)


def records_method(func: Callable[..., Any]) -> Method:
    return Method(func, on_records=True)


@dataclass(frozen=True)
class Model:
    name: str
    table: str
    description: str
    fields: Mapping[str, Field]
    order: str = "id"
    methods: Mapping[str, Method] = field(default_factory=dict)
    # Fills in defaults before an insert; may read the database.
    on_create: Callable[[Env, Vals], None] | None = None

    def field(self, name: str) -> Field:
        try:
            return self.fields[name]
        except KeyError:
            raise ValueError(f"Invalid field {name!r} on model {self.name!r}") from None

    @property
    def stored_names(self) -> list[str]:
        return [name for name, fld in self.fields.items() if fld.stored]


def define(
    name: str,
    table: str,
    description: str,
    fields: Mapping[str, Field],
    *,
    display_sql: str = "t.name",
    order: str = "id",
    methods: Mapping[str, Method] | None = None,
    on_create: Callable[[Env, Vals], None] | None = None,
) -> Model:
    """A model with Odoo's magic fields (id, create/write uid and date) added."""
    all_fields = {
        "id": Field("integer", "ID"),
        **fields,
        "display_name": Field("char", "Display Name", compute_sql=display_sql),
        "create_uid": Field("many2one", "Created by", comodel="res.users"),
        "create_date": Field("datetime", "Created on"),
        "write_uid": Field("many2one", "Last Updated by", comodel="res.users"),
        "write_date": Field("datetime", "Last Updated on"),
    }
    return Model(
        name=name,
        table=table,
        description=description,
        fields=all_fields,
        order=order,
        methods=dict(methods or {}),
        on_create=on_create,
    )


class Env:
    """What a model method works with: the transaction's cursor, user and models."""

    def __init__(
        self,
        cr: Cursor,
        uid: int,
        registry: Mapping[str, Model],
        context: Mapping[str, Any] | None = None,
    ) -> None:
        self.cr = cr
        self.uid = uid
        self.registry = registry
        self.context: Mapping[str, Any] = context or {}

    def __getitem__(self, name: str) -> Model:
        # Odoo answers an unknown model with KeyError(model name).
        try:
            return self.registry[name]
        except KeyError:
            raise KeyError(name) from None


def column(name: str, fld: Field) -> sql.Composable:
    """The SQL for a field of the model aliased `t`."""
    if fld.compute_sql:
        return sql.SQL("(" + fld.compute_sql + ")")
    return sql.Identifier("t", name)
