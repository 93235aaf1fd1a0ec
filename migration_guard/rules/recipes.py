"""Pieces of the pasteable safe alternatives, filled with the user's own names. Shared by rules so
that every recipe writes Django code the same way."""

from __future__ import annotations

import textwrap
from collections.abc import Collection, Sequence

from migration_guard.parse import deparse, parse_trees
from migration_guard.rules.base import StatementContext

__all__ = ["BATCH", "added_constraint", "batched", "column_constraint", "deparse", "model_ref", "not_null_check",
           "not_null_steps", "q", "reparse", "run_sql", "separate", "set_not_null", "split_note", "table_constraint",
           "target", "without_constraints"]

_ATTRIBUTES = ("ATTR_DEFERRABLE", "ATTR_NOT_DEFERRABLE", "ATTR_DEFERRED", "ATTR_IMMEDIATE")

BATCH = 10_000  # rows (keys) a batched backfill writes per transaction


def target(action) -> str:
    """The table the statement names: for its action on a partition, the partitioned table (the recipe changes
    that, and PostgreSQL the partitions with it)."""
    return action.detail.get("partition_of") or action.table


def q(identifier: str) -> str:
    """``shop_order`` -> ``"shop_order"`` (schema-qualified names quoted part by part)."""
    return ".".join(f'"{part.strip(chr(34))}"' for part in identifier.split("."))


def model_ref(ctx: StatementContext, table: str) -> str:
    """How the recipe names the model: the operation's own model name when the statement came from
    a Django operation on it, else the table's name without its app prefix (``shop_order`` ->
    ``"order"``). No comment: the name sits inside a call, where one would swallow the rest of the line."""
    operation = ctx.operation
    if operation is not None and operation.model_name:
        return f'"{operation.model_name.lower()}"'
    bare = table.strip('"').split(".")[-1]
    return f'"{bare.split("_", 1)[-1]}"'


def run_sql(sql: str, reverse: str | None, indent: str = "        ") -> str:
    """A ``migrations.RunSQL(...)`` call, one statement, with its reverse."""
    reverse_text = "migrations.RunSQL.noop" if reverse is None else _literal(reverse)
    return (
        f"{indent}migrations.RunSQL(\n"
        f"{indent}    {_literal(sql)},\n"
        f"{indent}    reverse_sql={reverse_text},\n"
        f"{indent}),"
    )


def separate(state: Sequence[str] = (), database: Sequence[str] = ()) -> str:
    """``migrations.SeparateDatabaseAndState(...)`` with the operations (their source, one or several
    lines each) that change only Django's state and those that run only in the database."""
    lines = ["migrations.SeparateDatabaseAndState("]
    for name, operations in (("state_operations", state), ("database_operations", database)):
        if operations:
            lines.append(f"    {name}=[")
            lines += [textwrap.indent(operation, " " * 8) for operation in operations]
            lines.append("    ],")
    lines.append("),")
    return "\n".join(lines)


def set_not_null(table: str, column: str) -> str:
    """``ALTER COLUMN ... SET NOT NULL`` as a RunSQL, with its reverse."""
    return run_sql(f"ALTER TABLE {q(table)} ALTER COLUMN {q(column)} SET NOT NULL",
                   f"ALTER TABLE {q(table)} ALTER COLUMN {q(column)} DROP NOT NULL", indent="")


def not_null_check(table: str, column: str) -> str:
    """The name of the CHECK (column IS NOT NULL) a recipe proves NOT NULL with (not PostgreSQL 18's
    own ``<table>_<column>_not_null``, which SET NOT NULL then names its constraint)."""
    bare = table.strip('"').split(".")[-1]
    return f"{bare}_{column}_not_null_check"[:63]


def not_null_steps(table: str, column: str, first: int, then: Sequence[str], prefix: str = "") -> list[str]:
    """Three migrations, numbered from ``first``, that make ``column`` NOT NULL without a scan under a
    lock that blocks traffic: a NOT VALID check (instant), its VALIDATE (reads and writes go on), then
    ``then`` (the operations that set NOT NULL: PostgreSQL skips the scan, the check proves it) and the
    check dropped. ``prefix`` starts the first heading (``deploy 2, ``)."""
    check = not_null_check(table, column)
    add = f"ALTER TABLE {q(table)} ADD CONSTRAINT {q(check)} CHECK ({q(column)} IS NOT NULL) NOT VALID"
    return [
        split_note(f"{prefix}migration {first}: a NOT VALID check, instant"),
        run_sql(add, f"ALTER TABLE {q(table)} DROP CONSTRAINT {q(check)}", indent=""),
        split_note(f"migration {first + 1}: validate it; reads and writes continue"),
        run_sql(f"ALTER TABLE {q(table)} VALIDATE CONSTRAINT {q(check)}", None, indent=""),
        split_note(f"migration {first + 2}: NOT NULL, now without a scan, then the check can go"),
        *then,
        run_sql(f"ALTER TABLE {q(table)} DROP CONSTRAINT {q(check)}", add, indent=""),
    ]


def batched(table: str, statement: str, *, key: str = "id", params: Sequence[str] = (), bounds: str | None = None,
            comment: str = "") -> list[str]:
    """A migration module, with ``atomic = False``, whose RunPython runs ``statement`` once per range of
    BATCH values of ``table``'s ``key``, from its smallest to its largest, each range committing on its own.
    ``statement`` is SQL for ``cursor.execute``: the range's start and end are its last two ``%s`` (or
    named, with ``bounds`` the mapping and ``params`` the lines that make the user's part of it)."""
    return [
        "from django.db import migrations",
        "",
        "",
        "def backfill(apps, schema_editor):",
        *params,
        "    with schema_editor.connection.cursor() as cursor:",
        f"        cursor.execute({f'SELECT min({q(key)}), max({q(key)}) FROM {q(table)}'!r})",
        "        low, high = cursor.fetchone()",
        f"        for start in range(low or 0, (high or 0) + 1, {BATCH:_}):",
        *([f"            # {comment}"] if comment else []),
        f"            cursor.execute({statement!r}, {bounds or f'[start, start + {BATCH:_}]'})",
        "",
        "",
        "class Migration(migrations.Migration):",
        "    atomic = False",
        "    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]",
    ]


def reparse(sql: str):
    """The statement's AST, a copy of its own to change (the parsed one is every rule's)."""
    return parse_trees(sql)[0].stmt


def _column_def(node, column: str):
    for cmd in node.cmds or ():
        column_def = getattr(cmd, "def_", None)
        if getattr(column_def, "colname", None) == column:
            return column_def
    return None


def without_constraints(sql: str, column: str, kinds: Collection[str] | None = None) -> str:
    """The ALTER TABLE ``sql`` with the constraints of the column it adds named ``column`` left out: those
    of ``kinds`` (``DEFAULT``, ``NOTNULL``, ``CHECK``, ``FOREIGN``, ``UNIQUE``, ``PRIMARY``, ...; with
    ``FOREIGN`` or ``UNIQUE`` their DEFERRABLE clauses too), or all."""
    node = reparse(sql)
    column_def = _column_def(node, column)
    if column_def is not None and column_def.constraints:
        if kinds is not None and {"FOREIGN", "UNIQUE", "PRIMARY"} & set(kinds):
            kinds = {*kinds, *_ATTRIBUTES}
        column_def.constraints = tuple(c for c in column_def.constraints if kinds is not None
                                       and c.contype.name.removeprefix("CONSTR_") not in kinds) or None
    return deparse(node)


def column_constraint(sql: str, column: str, kind: str):
    """The constraint of ``kind`` (``FOREIGN``, ``CHECK``, ``UNIQUE``, ...) that the ALTER TABLE ``sql``
    declares on the column it adds, with the DEFERRABLE clauses that follow it; None when there is none."""
    column_def = _column_def(reparse(sql), column)
    found = None
    for constraint in (column_def.constraints or ()) if column_def is not None else ():
        name = constraint.contype.name.removeprefix("CONSTR_")
        if name == kind:
            found = constraint
        elif found is not None and name in _ATTRIBUTES:
            found.deferrable = name == "ATTR_DEFERRABLE" or (found.deferrable and name != "ATTR_NOT_DEFERRABLE")
            found.initdeferred = name == "ATTR_DEFERRED" or (found.initdeferred and name != "ATTR_IMMEDIATE")
        elif found is not None:
            break
    return found


def added_constraint(sql: str, name: str | None):
    """The constraint node an ``ALTER TABLE ... ADD CONSTRAINT`` ``sql`` adds under ``name`` (the first one
    when unnamed), or None."""
    constraints = [cmd.def_ for cmd in reparse(sql).cmds or () if cmd.subtype.name == "AT_AddConstraint"]
    return next((c for c in constraints if c.conname == name), constraints[0] if constraints else None)


def table_constraint(table: str, constraint, name: str, column: str | None = None, *, not_valid: bool = False) -> str:
    """``ALTER TABLE table ADD CONSTRAINT name ...`` of a constraint node (a column's own: on ``column``)."""
    from pglast import ast
    from pglast.enums import AlterTableType, ObjectType

    constraint.conname = name
    if column is not None and constraint.contype.name == "CONSTR_FOREIGN":
        constraint.fk_attrs = (ast.String(sval=column),)
    elif column is not None and constraint.contype.name in ("CONSTR_UNIQUE", "CONSTR_PRIMARY"):
        constraint.keys = (ast.String(sval=column),)
    if not_valid:
        constraint.skip_validation, constraint.initially_valid = True, False
    relation = reparse(f"SELECT FROM {q(table)}").fromClause[0]
    return deparse(ast.AlterTableStmt(relation=relation, objtype=ObjectType.OBJECT_TABLE, cmds=(
        ast.AlterTableCmd(subtype=AlterTableType.AT_AddConstraint, def_=constraint),)))


def split_note(what: str) -> str:
    """The comment heading each migration of a multi-migration recipe."""
    return f"# --- {what} ---"


def _literal(sql: str) -> str:
    if "'" not in sql and "\n" not in sql:
        return f"'{sql}'"
    return repr(sql)
