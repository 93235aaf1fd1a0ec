"""What the backward-compatibility rules (MG020-MG027) share: which code meets which schema during a
deploy, whether a column type holds every value of another, and the pieces of their recipes.

During a rolling deploy two versions of the code run side by side for minutes, and Django selects,
inserts and updates every column of a model *by name*. With ``deploy_order = "migrate_first"`` (the
default: ``migrate``, then roll out the code) the code already running meets the new schema; with
``"code_first"`` (roll out, then ``migrate``) the new code meets the old schema, and then the new
one. A statement's :class:`~migration_guard.model.Deploy` says what both codes' models are; with
none (``migration-guard explain`` on raw SQL) no code is known.
"""

from __future__ import annotations

import functools
from dataclasses import replace

from migration_guard.model import Deploy, FieldFacts, ModelChange, ModelFacts, Severity, StateFacts
from migration_guard.rules.base import Rule, StatementContext
from migration_guard.rules.recipes import q, split_note

__all__ = [
    "CODE_FIRST",
    "code_meeting_new_schema",
    "column_change",
    "column_operation",
    "database_then_models",
    "deploy_of",
    "drop_column_steps",
    "explain_rule",
    "field_call",
    "holds_every_value",
    "new_code",
    "order",
    "run_sql_call",
    "running_code",
    "sql_literal",
    "state_ops",
    "who",
]

CODE_FIRST = "code_first"


def deploy_of(ctx: StatementContext) -> Deploy | None:
    """The code around the statement's migration (None: raw SQL, no code known)."""
    return ctx.parsed.statement.deploy


def order(ctx: StatementContext) -> str:
    """``"migrate_first"`` or ``"code_first"``."""
    return ctx.config.deploy_order


def running_code(ctx: StatementContext) -> StateFacts | None:
    """The models of the code running before the deploy (and of the schema before it)."""
    deploy = deploy_of(ctx)
    return deploy.running if deploy is not None else None


def new_code(ctx: StatementContext) -> StateFacts | None:
    """The models of the code being deployed (known with ``code_first``)."""
    deploy = deploy_of(ctx)
    return deploy.release if deploy is not None else None


def code_meeting_new_schema(ctx: StatementContext) -> tuple[StateFacts | None, str]:
    """The code that runs against the schema this statement makes, and how messages call it:
    the running code (migrate first), or the new code once ``migrate`` has run (code first)."""
    if order(ctx) == CODE_FIRST:
        return new_code(ctx), "the new code"
    return running_code(ctx), "the running code"


def who(ctx: StatementContext) -> str:
    """How messages name the code the order puts at risk."""
    return "the new code" if order(ctx) == CODE_FIRST else "the running code"


def explain_rule(rule: Rule) -> Rule:
    """The rule as ``explain`` applies it to raw SQL: a warning, since it cannot see the code."""
    return replace(rule, severity=Severity.WARNING)


def column_change(ctx: StatementContext, table: str, column: str) -> tuple[ModelChange, FieldFacts] | None:
    """The Django-level change of the statement's operation that leaves ``column`` in ``table``, and
    that field as the database will have it, if the operation says."""
    operation = ctx.operation
    for change in operation.changes if operation is not None else ():
        if change.scope == "state" or change.after is None:
            continue
        found = StateFacts(models=(change.after,)).column(table, column)
        if found is not None:
            return change, found[1]
    return None


def column_operation(ctx: StatementContext, table: str, column: str, *, as_operation: str | None = None,
                     **changes: str | None) -> list[str] | None:
    """The statement's own ``AddField``/``AlterField`` that leaves ``column`` in ``table`` (or, with
    ``as_operation``, that operation on the same field), as source with its field's keyword arguments
    changed (as :meth:`FieldFacts.source`), after the imports that field needs (but Django's ``models``);
    None when no such operation says so (raw SQL, RunSQL)."""
    found = column_change(ctx, table, column)
    if found is None or found[0].operation not in ("AddField", "AlterField"):
        return None
    change, field = found
    imports = [line for line in field.imports if line != "from django.db import models"]
    name = as_operation or change.operation
    return [*imports, f'migrations.{name}("{change.model}", "{change.field}", {field.source(**changes)}),']


# -- column types -----------------------------------------------------------------------------

_INTEGER_RANK = {"int2": 1, "int4": 2, "int8": 3}
_INTEGER_DIGITS = {"int2": 5, "int4": 10, "int8": 19}
_TEXT = frozenset({"varchar", "bpchar", "text"})


@functools.lru_cache(maxsize=1024)
def _parse_type(text: str) -> tuple[str, tuple[int, ...], bool] | None:
    """(type name as pg_type has it, typmods, array) of a type written in SQL, or None."""
    from pglast import ast, parse_sql

    try:
        type_name = parse_sql(f"SELECT NULL::{text}")[0].stmt.targetList[0].val.typeName
    except Exception:
        return None
    name = type_name.names[-1].sval.lower()
    name = {"int": "int4", "integer": "int4", "bigint": "int8", "smallint": "int2", "serial": "int4",
            "bigserial": "int8", "smallserial": "int2", "decimal": "numeric", "real": "float4",
            "boolean": "bool"}.get(name, name)
    mods = tuple(m.val.ival for m in type_name.typmods or ()
                 if isinstance(m, ast.A_Const) and isinstance(m.val, ast.Integer))
    return name, mods, bool(type_name.arrayBounds)


def holds_every_value(written: str | None, column: str | None) -> bool:
    """Whether a column of type ``column`` accepts every value code writing type ``written`` can
    write, and compares with it as before (False when either is unknown: fail closed).

    Holds: the same type; a wider integer (``integer`` -> ``bigint``); a ``numeric`` with as many
    integer digits and as many decimals; ``real`` -> ``double precision``; text into ``text`` or a
    ``varchar``/``char`` at least as long; fractional seconds at least as precise. Anything else,
    e.g. a shorter ``varchar``, ``bigint`` -> ``integer``, ``integer`` -> ``varchar``, does not: old
    values fail to insert, or comparisons with the old type's parameters fail."""
    if not written or not column:
        return False
    old, new = _parse_type(written), _parse_type(column)
    if old is None or new is None:
        return False
    if old == new:
        return True
    (old_name, old_mods, old_array), (new_name, new_mods, new_array) = old, new
    if old_array or new_array:
        return False
    if old_name in _INTEGER_RANK and new_name in _INTEGER_RANK:
        return _INTEGER_RANK[new_name] >= _INTEGER_RANK[old_name]
    if new_name == "numeric" and old_name in _INTEGER_DIGITS:
        return not new_mods or new_mods[0] - _scale(new_mods) >= _INTEGER_DIGITS[old_name]
    if old_name == new_name == "numeric":
        if not new_mods:
            return True
        if not old_mods:
            return False
        return _scale(new_mods) >= _scale(old_mods) and new_mods[0] - _scale(new_mods) >= old_mods[0] - _scale(old_mods)
    if (old_name, new_name) == ("float4", "float8"):
        return True
    if old_name in _TEXT and new_name in _TEXT:
        if new_name == "text" or (new_name == "varchar" and not new_mods):
            return True
        return bool(old_mods) and bool(new_mods) and old_name != "text" and old_mods[0] <= new_mods[0]
    if old_name == new_name and old_name in {"timestamp", "timestamptz", "time", "timetz"}:
        return (new_mods[0] if new_mods else 6) >= (old_mods[0] if old_mods else 6)
    return False


def _scale(mods: tuple[int, ...]) -> int:
    return mods[1] if len(mods) > 1 else 0


# -- recipes ----------------------------------------------------------------------------------


def field_call(field: FieldFacts | None, **changes: str | None) -> str:
    """The field as Django source, with keyword arguments changed; a placeholder when unknown."""
    return field.source(**changes) if field is not None else "models.<Field>(...)"


# The Django field for a column's SQL type, when no migration says which field it is (raw SQL).
_FIELD_OF_TYPE = {
    "uuid": "UUIDField", "text": "TextField", "boolean": "BooleanField", "bool": "BooleanField",
    "integer": "IntegerField", "int": "IntegerField", "int4": "IntegerField", "serial": "IntegerField",
    "bigint": "BigIntegerField", "int8": "BigIntegerField", "bigserial": "BigIntegerField",
    "smallint": "SmallIntegerField", "int2": "SmallIntegerField", "date": "DateField",
    "timestamptz": "DateTimeField", "timestamp with time zone": "DateTimeField",
    "timestamp": "DateTimeField", "timestamp without time zone": "DateTimeField", "jsonb": "JSONField",
    "double precision": "FloatField", "float8": "FloatField", "inet": "GenericIPAddressField",
    "varchar": "CharField", "character varying": "CharField", "numeric": "DecimalField", "decimal": "DecimalField",
    "time": "TimeField", "interval": "DurationField", "bytea": "BinaryField",
}


def field_for(ctx: StatementContext, table: str, column: str, sql_type: str | None, **changes: str | None) -> str:
    """The column's field as Django source, with keyword arguments changed (source text) or removed
    (None): the migration's own field (class and arguments) when the statement came from one, else a
    field of the class that stores ``sql_type`` (raw SQL)."""
    found = column_change(ctx, table, column)
    if found is not None:
        return found[1].source(**changes)
    base, _, modifiers = (sql_type or "").lower().partition("(")
    kwargs = {}
    numbers = [part.strip() for part in modifiers.rstrip(")").split(",") if part.strip().isdigit()]
    name = _FIELD_OF_TYPE.get(base.strip(), "Field")
    if name == "CharField":
        kwargs["max_length"] = numbers[0] if numbers else "255"
    elif name == "DecimalField":
        kwargs["max_digits"], kwargs["decimal_places"] = (numbers + ["0"])[:2] if numbers else ("20", "0")
    kwargs.update({key: value for key, value in changes.items() if value is not None})
    return f"models.{name}({', '.join(f'{key}={value}' for key, value in sorted(kwargs.items()))})"


def sql_literal(sql: str) -> str:
    """SQL as a Python string literal."""
    return f"'{sql}'" if "'" not in sql else repr(sql)


def state_ops(kind: str, *operations: str) -> str:
    """``migrations.SeparateDatabaseAndState(<kind>=[...])`` around Django operations."""
    inner = "\n".join(f"    {operation}," for operation in operations)
    return f"migrations.SeparateDatabaseAndState({kind}=[\n{inner}\n]),"


def database_then_models(operation: str, database: str) -> str:
    """The code-first two releases: ``operation`` for the database only (``database`` says what that
    deploy does), then the same for the models only, when no running code needs the old schema."""
    return "\n".join([
        split_note(f"deploy 1: {database}; the models do not change"),
        state_ops("database_operations", operation),
        split_note("deploy 2: the same for the models (nothing runs in the database)"),
        state_ops("state_operations", operation),
    ])


def run_sql_call(sql: str, reverse: str | None) -> str:
    """``migrations.RunSQL(...)`` with its reverse, one line each."""
    reverse_text = "migrations.RunSQL.noop" if reverse is None else sql_literal(reverse)
    return f"migrations.RunSQL(\n    {sql_literal(sql)},\n    reverse_sql={reverse_text},\n),"


def drop_column_steps(model: ModelFacts, field: FieldFacts, table: str, *, code_first: bool) -> list[str]:
    """The deploys that remove ``field`` without breaking the code on either side of any of them:
    the code stops using it (the column made nullable first when code that no longer has the field
    must still insert rows), then the column goes."""
    name = f'"{model.model_name}"'
    steps: list[str] = []
    remove = state_ops("state_operations", f'migrations.RemoveField({name}, "{field.name}")')
    nullable = f'migrations.AlterField({name}, "{field.name}", {field_call(field, null="True")})'
    if not field.written_on_insert and code_first:
        steps += [split_note("deploy 1: the column accepts NULL; the model is unchanged"),
                  state_ops("database_operations", nullable),
                  split_note("deploy 2: the code stops using the field; the column stays")]
    elif not field.written_on_insert:
        steps += [split_note("deploy 1: the code stops using the field; the column stays (and accepts NULL)"),
                  nullable + ","]
    else:
        steps.append(split_note("deploy 1: the code stops using the field; the column stays"))
    steps.append(remove)
    column = field.column or field.name
    reverse = f"ALTER TABLE {q(table)} ADD COLUMN {q(column)} {field.db_type or 'text'} NULL"
    steps += [split_note(f"deploy {3 if not field.written_on_insert and code_first else 2}: drop the column, "
                         "once no running code has the field"),
              run_sql_call(f"ALTER TABLE {q(table)} DROP COLUMN {q(column)}", reverse)]
    return steps
