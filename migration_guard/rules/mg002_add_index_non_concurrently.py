"""MG002 add-index-non-concurrently: CREATE INDEX without CONCURRENTLY on an existing table."""

from __future__ import annotations

from pglast import ast

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext, lock_label
from migration_guard.rules.compat import column_operation
from migration_guard.rules.recipes import deparse, model_ref, q, reparse, run_sql, separate, split_note

DOC = """\
## What it does
Finds `CREATE INDEX` without `CONCURRENTLY` on a table that already exists (Django's `AddIndex`,
`db_index=True`, the index of a new `ForeignKey`).

## Why is this bad?
A plain index build holds a SHARE lock for the whole build: reads continue, but every INSERT,
UPDATE and DELETE on the table waits until the index is complete.

## Example
```python
migrations.AddIndex("order", models.Index(fields=["created_at"], name="order_created_idx")),
```

## Use instead
```python
from django.contrib.postgres.operations import AddIndexConcurrently

class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    operations = [
        AddIndexConcurrently("order", models.Index(fields=["created_at"], name="order_created_idx")),
    ]
```
A concurrent build that fails leaves an INVALID index behind: drop it and run the migration again.
The index of a field (`db_index=True`, a `ForeignKey`): the field added (or altered) with
`db_index=False`, then the index built with `RunSQL("CREATE INDEX CONCURRENTLY ...")` in a
`SeparateDatabaseAndState` whose state is the field as the migration has it. Raw SQL: the statement
with `CONCURRENTLY`.
"""


def check(ctx: StatementContext):
    for action in ctx.actions(ActionKind.CREATE_INDEX):
        if action.detail.get("concurrently") or not action.builds_index or ctx.is_materialized_view(action.table):
            continue  # (SHARE on a materialized view blocks only its refresh: nothing writes to one)
        table = action.table
        name = action.detail.get("name") or "<index name>"
        yield ctx.action_finding(
            RULE,
            action,
            work="index",
            message=f'Building index "{name}" on "{table}" without CONCURRENTLY holds {lock_label(action, "SHARE")}, '
            "which blocks writes for the whole build.",
            recipe=_recipe(ctx, table, action),
        )


def _recipe(ctx: StatementContext, table: str, action) -> str:
    """The same index built CONCURRENTLY, in a migration with atomic = False: an AddIndex's own index with
    AddIndexConcurrently; a field's index (db_index, ForeignKey) with the field first added or altered
    without it, then the index built in the database while Django's state gets the field as the migration
    has it; raw SQL (RunSQL) as written, CONCURRENTLY."""
    detail = action.detail
    operation = ctx.operation
    heading = split_note("a migration of its own, with atomic = False")
    if operation is not None and operation.name == "AddIndex" and operation.definition:
        return "\n".join([heading, *operation.definition_imports,
                          "from django.contrib.postgres.operations import AddIndexConcurrently",
                          f"AddIndexConcurrently({model_ref(ctx, table)}, {operation.definition}),"])
    column = (detail.get("columns") or (None,))[0]
    without = column_operation(ctx, table, column, db_index="False") if column else None
    if without is not None:
        full = column_operation(ctx, table, column, as_operation="AlterField")
        # every index the operation builds (a CharField's db_index makes two: the plain one and its _like)
        builds = [p for p in ctx.statements if p.statement.operation == operation and isinstance(p.node, ast.IndexStmt)
                  and p.statement.migration == ctx.label] or [ctx.parsed]
        return "\n".join([
            split_note("migration 1: the field without its index (db_index=False)"),
            *without,
            split_note("migration 2, with atomic = False: the index, built concurrently; Django's state gets the "
                       "field as the migration has it"),
            *full[:-1],
            separate(state=full[-1:], database=[_concurrently(p.statement.sql) for p in builds]),
        ])
    return "\n".join([heading, _concurrently(ctx.sql_of(action))])


def _concurrently(sql: str) -> str:
    """The CREATE INDEX as a RunSQL, built CONCURRENTLY."""
    node = reparse(sql)
    node.concurrent = True
    reverse = f"DROP INDEX CONCURRENTLY IF EXISTS {q(node.idxname)}" if node.idxname else None
    return run_sql(deparse(node), reverse, indent="")


RULE = Rule(
    id="MG002",
    slug="add-index-non-concurrently",
    severity=Severity.ERROR,
    summary="CREATE INDEX without CONCURRENTLY blocks writes to an existing table for the whole build",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.CREATE_INDEX}),
)
