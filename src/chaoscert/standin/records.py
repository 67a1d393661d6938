"""The methods every model has (search, read, create, write, ...) and call_kw."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from psycopg import sql

from chaoscert.standin import domain as domains
from chaoscert.standin.exceptions import AccessError, MissingError
from chaoscert.standin.orm import (
    MAGIC,
    Env,
    Field,
    Method,
    Model,
    Vals,
    column,
    model_method,
    records_method,
)

_DIRECTIONS = {"ASC": sql.SQL("ASC"), "DESC": sql.SQL("DESC")}
_NULLS = {"FIRST": sql.SQL("NULLS FIRST"), "LAST": sql.SQL("NULLS LAST")}
_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def call_kw(env: Env, model_name: str, method: str, args: Any, kwargs: Any) -> Any:
    """Dispatch one call as Odoo's call_kw does; raises what Odoo 17 raises."""
    if not isinstance(args, list):
        raise TypeError(f"args must be a list, not {type(args).__name__}")
    if not isinstance(kwargs, dict):
        raise TypeError(f"kwargs must be an object, not {type(kwargs).__name__}")
    model = env[model_name]
    if method.startswith("_"):
        raise AccessError(
            f"Private methods (such as {model_name}.{method})"
            " cannot be called remotely."
        )
    found = model.methods.get(method) or GENERIC.get(method)
    if found is None:
        raise AttributeError(
            f"The method '{method}' does not exist on the model '{model_name}'"
        )
    kwargs = dict(kwargs)
    context = kwargs.pop("context", None)
    if isinstance(context, dict):
        env = Env(env.cr, env.uid, env.registry, context)
    if not found.on_records:
        return found.func(env, model, *args, **kwargs)
    if not args:
        raise TypeError(
            f"{model_name}.{method}() needs the record ids as first argument"
        )
    return found.func(env, model, ids_of(args[0]), *args[1:], **kwargs)


def ids_of(value: Any) -> list[int]:
    """Record ids from what a client sends: one id or a list of ids."""
    values = value if isinstance(value, list | tuple) else [value]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f"Invalid record ids {value!r}")
    return list(dict.fromkeys(values))


def search(
    env: Env,
    model: Model,
    domain: Any = None,
    offset: int = 0,
    limit: int | None = None,
    order: str | None = None,
) -> list[int]:
    active_test = bool(env.context.get("active_test", True))
    condition = domains.where(env.registry, model, domain, active_test)
    query = sql.SQL("SELECT t.id FROM {} t WHERE {} ORDER BY {}").format(
        sql.Identifier(model.table), condition.sql, order_by(model, order)
    )
    params = list(condition.params)
    if limit:
        query = sql.SQL("{} LIMIT %s").format(query)
        params.append(_count(limit, "limit"))
    if offset:
        query = sql.SQL("{} OFFSET %s").format(query)
        params.append(_count(offset, "offset"))
    env.cr.execute(query, params)
    return [row[0] for row in env.cr.fetchall()]


def search_read(
    env: Env,
    model: Model,
    domain: Any = None,
    fields: Sequence[str] | None = None,
    offset: int = 0,
    limit: int | None = None,
    order: str | None = None,
    load: str | None = "_classic_read",
) -> list[Vals]:
    ids = search(env, model, domain, offset, limit, order)
    return read(env, model, ids, fields, load) if ids else []


def search_count(
    env: Env, model: Model, domain: Any = None, limit: int | None = None
) -> int:
    active_test = bool(env.context.get("active_test", True))
    condition = domains.where(env.registry, model, domain, active_test)
    query = sql.SQL("SELECT count(*) FROM {} t WHERE {}").format(
        sql.Identifier(model.table), condition.sql
    )
    env.cr.execute(query, condition.params)
    row = env.cr.fetchone()
    count = int(row[0]) if row else 0
    return min(count, _count(limit, "limit")) if limit else count


def read(
    env: Env,
    model: Model,
    ids: list[int],
    fields: Sequence[str] | None = None,
    load: str | None = "_classic_read",
) -> list[Vals]:
    """Rows in the order of `ids`; ids of deleted records are left out, as in Odoo."""
    names = _field_names(model, fields)
    scalar = [name for name in names if model.fields[name].kind != "one2many"]
    query = sql.SQL("SELECT {} FROM {} t WHERE t.id = ANY(%s)").format(
        sql.SQL(", ").join(column(name, model.fields[name]) for name in scalar),
        sql.Identifier(model.table),
    )
    env.cr.execute(query, [ids])
    rows = {row[0]: dict(zip(scalar, row, strict=True)) for row in env.cr.fetchall()}
    records = [rows[record_id] for record_id in ids if record_id in rows]
    for name in names:
        fld = model.fields[name]
        if fld.kind == "many2one":
            labels = _display_names(env, fld.comodel, [r[name] for r in records])
            for record in records:
                value = record[name]
                if value is None:
                    record[name] = False
                elif load == "_classic_read":
                    record[name] = [value, labels.get(value, "")]
        elif fld.kind == "one2many":
            lines = _lines(env, fld, list(rows))
            for record in records:
                record[name] = lines.get(record["id"], [])
        else:
            for record in records:
                record[name] = _to_read(fld, record[name])
    return records


def create(env: Env, model: Model, vals_list: Any) -> int | list[int]:
    """One id for one dict of values, a list of ids for a list, as Odoo 17 answers."""
    single = isinstance(vals_list, dict)
    items = [vals_list] if single else vals_list
    if not isinstance(items, list) or not all(isinstance(v, dict) for v in items):
        raise ValueError(f"create() expects a dict or a list of dicts on {model.name}")
    defaults = {
        key.removeprefix("default_"): value
        for key, value in env.context.items()
        if key.startswith("default_") and key.removeprefix("default_") in model.fields
    }
    ids = [create_one(env, model, {**defaults, **vals}) for vals in items]
    return ids[0] if single else ids


def create_one(env: Env, model: Model, vals: Vals) -> int:
    vals = dict(vals)
    commands = {
        name: vals.pop(name)
        for name in list(vals)
        if model.field(name).kind == "one2many"
    }
    if model.on_create is not None:
        model.on_create(env, vals)
    row = _to_columns(model, vals)
    row["create_uid"] = row["write_uid"] = env.uid
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING id").format(
        sql.Identifier(model.table),
        sql.SQL(", ").join(sql.Identifier(name) for name in row),
        sql.SQL(", ").join(sql.Placeholder() for _ in row),
    )
    env.cr.execute(query, list(row.values()))
    created = env.cr.fetchone()
    assert created is not None
    record_id = int(created[0])
    for name, value in commands.items():
        _apply_commands(env, model, record_id, name, value)
    return record_id


def write(env: Env, model: Model, ids: list[int], vals: Any) -> bool:
    if not isinstance(vals, dict):
        raise ValueError(f"write() expects a dict of values on {model.name}")
    vals = dict(vals)
    commands = {
        name: vals.pop(name)
        for name in list(vals)
        if model.field(name).kind == "one2many"
    }
    lock(env, model, ids)
    row = _to_columns(model, vals)
    if row:
        row["write_uid"] = env.uid
        query = sql.SQL(
            "UPDATE {} t SET {}, write_date = now() AT TIME ZONE 'UTC'"
            " WHERE t.id = ANY(%s)"
        ).format(
            sql.Identifier(model.table),
            sql.SQL(", ").join(
                sql.SQL("{} = %s").format(sql.Identifier(name)) for name in row
            ),
        )
        env.cr.execute(query, [*row.values(), ids])
    for record_id in ids:
        for name, value in commands.items():
            _apply_commands(env, model, record_id, name, value)
    return True


def unlink(env: Env, model: Model, ids: list[int]) -> bool:
    """Delete rows; only x2many command 2 uses it, clients cannot call it."""
    lock(env, model, ids)
    query = sql.SQL("DELETE FROM {} t WHERE t.id = ANY(%s)").format(
        sql.Identifier(model.table)
    )
    env.cr.execute(query, [ids])
    return True


def name_search(
    env: Env,
    model: Model,
    name: str = "",
    args: Any = None,
    operator: str = "ilike",
    limit: int | None = 100,
) -> list[list[Any]]:
    domain = list(args or [])
    if name:
        domain.append(["display_name", operator, name])
    ids = search(env, model, domain, limit=limit)
    labels = _display_names(env, model.name, ids)
    return [[record_id, labels.get(record_id, "")] for record_id in ids]


def fields_get(
    env: Env,
    model: Model,
    allfields: Sequence[str] | None = None,
    attributes: Sequence[str] | None = None,
) -> dict[str, Vals]:
    result = {}
    for name, fld in model.fields.items():
        if allfields and name not in allfields:
            continue
        description: Vals = {
            "type": fld.kind,
            "string": fld.string,
            "required": fld.required,
            "readonly": fld.readonly or name in MAGIC,
            "store": fld.stored,
        }
        if fld.comodel:
            description["relation"] = fld.comodel
        if fld.inverse:
            description["relation_field"] = fld.inverse
        if fld.selection:
            description["selection"] = [list(pair) for pair in fld.selection]
        if attributes:
            description = {k: v for k, v in description.items() if k in attributes}
        result[name] = description
    return result


def lock(env: Env, model: Model, ids: list[int]) -> None:
    """Lock the rows for update; MissingError if any is gone, as Odoo says it."""
    query = sql.SQL("SELECT t.id FROM {} t WHERE t.id = ANY(%s) FOR UPDATE").format(
        sql.Identifier(model.table)
    )
    env.cr.execute(query, [ids])
    found = {row[0] for row in env.cr.fetchall()}
    missing = [record_id for record_id in ids if record_id not in found]
    if missing:
        raise _missing(env, model, missing)


def order_by(model: Model, order: str | None) -> sql.Composable:
    """ORDER BY terms from Odoo's order spec ("name desc, id"), ending with id."""
    spec = order or model.order
    terms: list[sql.Composable] = []
    for term in spec.split(","):
        words = term.split()
        if not words:
            continue
        name, rest = words[0], [word.upper() for word in words[1:]]
        fld = model.fields.get(name)
        direction = rest.pop(0) if rest and rest[0] in _DIRECTIONS else "ASC"
        nulls = rest[1] if len(rest) == 2 and rest[0] == "NULLS" else None
        if fld is None or fld.kind == "one2many" or (rest and nulls not in _NULLS):
            raise ValueError(f'Invalid "order" specified ({spec!r}) on {model.name}')
        parts = [column(name, fld), _DIRECTIONS[direction]]
        if nulls is not None:
            parts.append(_NULLS[nulls])
        terms.append(sql.SQL(" ").join(parts))
    terms.append(sql.SQL("t.id"))
    return sql.SQL(", ").join(terms)


def to_m2o(value: Any) -> int | None:
    """A many2one value as a client may send it: id, False, or [id, name]."""
    if value is False or value is None:
        return None
    if isinstance(value, list | tuple) and len(value) == 2:
        value = value[0]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"Invalid many2one value {value!r}")


def _field_names(model: Model, fields: Sequence[str] | None) -> list[str]:
    if fields is not None and not isinstance(fields, list | tuple):
        raise ValueError(f"fields must be a list of field names, not {fields!r}")
    names = list(fields or model.fields)
    for name in names:
        model.field(name)
    return ["id", *dict.fromkeys(name for name in names if name != "id")]


def _display_names(env: Env, model_name: str, ids: Sequence[Any]) -> dict[int, str]:
    wanted = sorted({record_id for record_id in ids if record_id})
    if not wanted:
        return {}
    model = env[model_name]
    query = sql.SQL("SELECT t.id, {} FROM {} t WHERE t.id = ANY(%s)").format(
        column("display_name", model.fields["display_name"]),
        sql.Identifier(model.table),
    )
    env.cr.execute(query, [wanted])
    return {row[0]: row[1] or "" for row in env.cr.fetchall()}


def _lines(env: Env, fld: Field, parent_ids: list[int]) -> dict[int, list[int]]:
    comodel = env[fld.comodel]
    query = sql.SQL("SELECT {}, t.id FROM {} t WHERE {} = ANY(%s) ORDER BY {}").format(
        sql.Identifier("t", fld.inverse),
        sql.Identifier(comodel.table),
        sql.Identifier("t", fld.inverse),
        order_by(comodel, None),
    )
    env.cr.execute(query, [parent_ids])
    lines: dict[int, list[int]] = {}
    for parent_id, line_id in env.cr.fetchall():
        lines.setdefault(parent_id, []).append(line_id)
    return lines


def _to_read(fld: Field, value: Any) -> Any:
    if fld.kind == "integer":
        return int(value or 0)
    if fld.kind == "float":
        return float(value or 0.0)
    if fld.kind == "boolean":
        return bool(value)
    if value is None:
        return False
    if fld.kind == "datetime" and isinstance(value, datetime):
        return value.strftime(_DATETIME_FORMAT)
    if fld.kind == "date" and isinstance(value, date):
        return value.isoformat()
    return value


def _to_columns(model: Model, vals: Mapping[str, Any]) -> Vals:
    """Validated column values; computed and magic fields are ignored, as in Odoo."""
    row: Vals = {}
    for name, value in vals.items():
        fld = model.field(name)
        if fld.stored and name not in MAGIC:
            row[name] = _to_column(model, name, fld, value)
    return row


def _to_column(model: Model, name: str, fld: Field, value: Any) -> Any:
    kind = fld.kind
    try:
        if kind == "many2one":
            return to_m2o(value)
        if kind == "integer":
            return int(value or 0)
        if kind == "float":
            return float(value or 0.0)
        if kind == "boolean":
            return bool(value)
        if value is False or value is None:
            return None
        if kind == "selection":
            if value not in {key for key, _ in fld.selection}:
                raise ValueError("not a selection key")
            return value
        if kind == "date":
            return value if isinstance(value, date) else date.fromisoformat(value)
        if kind == "datetime":
            if isinstance(value, datetime):
                return value
            return datetime.strptime(value[:19], _DATETIME_FORMAT)
        return str(value)
    except (TypeError, ValueError):
        raise ValueError(f"Wrong value for {model.name}.{name}: {value!r}") from None


def _apply_commands(
    env: Env, model: Model, record_id: int, name: str, commands: Any
) -> None:
    """Odoo's x2many commands on a one2many: 0 create, 1 update, 2 delete."""
    fld = model.fields[name]
    comodel = env[fld.comodel]
    if not isinstance(commands, list):
        raise ValueError(f"Invalid value for {model.name}.{name}: {commands!r}")
    for command in commands:
        if not isinstance(command, list | tuple) or not command:
            raise ValueError(f"Invalid command {command!r} for {model.name}.{name}")
        code = command[0]
        if code == 0 and len(command) == 3 and isinstance(command[2], dict):
            create_one(env, comodel, {**command[2], fld.inverse: record_id})
        elif code == 1 and len(command) == 3 and isinstance(command[2], dict):
            line_ids = _own_lines(env, comodel, fld, record_id, command[1])
            write(env, comodel, line_ids, command[2])
        elif code == 2 and len(command) >= 2:
            line_ids = _own_lines(env, comodel, fld, record_id, command[1])
            unlink(env, comodel, line_ids)
        else:
            raise ValueError(
                f"Unsupported command {command!r} for {model.name}.{name}"
                " (the stand-in knows 0 create, 1 update and 2 delete)"
            )


def _own_lines(
    env: Env, comodel: Model, fld: Field, record_id: int, line_id: Any
) -> list[int]:
    ids = ids_of(line_id)
    query = sql.SQL("SELECT t.id FROM {} t WHERE t.id = ANY(%s) AND {} = %s").format(
        sql.Identifier(comodel.table), sql.Identifier("t", fld.inverse)
    )
    env.cr.execute(query, [ids, record_id])
    owned = [row[0] for row in env.cr.fetchall()]
    if len(owned) != len(ids):
        raise _missing(env, comodel, [i for i in ids if i not in owned])
    return owned


def _missing(env: Env, model: Model, ids: list[int]) -> MissingError:
    return MissingError(
        "Record does not exist or has been deleted.\n"
        f"(Record: {model.name}{tuple(ids)!r}, User: {env.uid})"
    )


def _count(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"Invalid {what} {value!r}")
    return value


GENERIC: dict[str, Method] = {
    "search": model_method(search),
    "search_read": model_method(search_read),
    "search_count": model_method(search_count),
    "name_search": model_method(name_search),
    "fields_get": model_method(fields_get),
    "create": model_method(create),
    "read": records_method(read),
    "write": records_method(write),
}
