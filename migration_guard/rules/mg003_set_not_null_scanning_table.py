"""MG003 set-not-null-scanning-table: SET NOT NULL that scans an existing table under ACCESS EXCLUSIVE."""

from __future__ import annotations

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext, lock_label
from migration_guard.rules.compat import column_operation
from migration_guard.rules.recipes import not_null_steps, run_sql, target

DOC = """\
## What it does
Finds `ALTER COLUMN ... SET NOT NULL` on an existing table (Django's `AlterField` from
`null=True` to `null=False`) when no validated `CHECK (column IS NOT NULL)` proves it.

## Why is this bad?
PostgreSQL checks every row while holding ACCESS EXCLUSIVE: reads and writes wait for a full
table scan. From PostgreSQL 12 the scan is skipped when a validated CHECK constraint already
proves the column has no NULLs, and such a constraint can be validated without blocking.

## Example
```python
migrations.AlterField("order", "note", models.TextField()),  # was null=True
```

## Use instead
```python
# migration 1: a NOT VALID check (instant)
migrations.RunSQL(
    'ALTER TABLE "shop_order" ADD CONSTRAINT "shop_order_note_not_null_check" CHECK ("note" IS NOT NULL) NOT VALID',
    reverse_sql='ALTER TABLE "shop_order" DROP CONSTRAINT "shop_order_note_not_null_check"',
),
# migration 2: validate it (SHARE UPDATE EXCLUSIVE: reads and writes continue)
migrations.RunSQL('ALTER TABLE "shop_order" VALIDATE CONSTRAINT "shop_order_note_not_null_check"',
                  migrations.RunSQL.noop),
# migration 3: the AlterField (SET NOT NULL now skips the scan), then drop the check
migrations.AlterField("order", "note", models.TextField()),
migrations.RunSQL('ALTER TABLE "shop_order" DROP CONSTRAINT "shop_order_note_not_null_check"', migrations.RunSQL.noop),
```
"""


def check(ctx: StatementContext):
    for action in ctx.actions(ActionKind.SET_NOT_NULL):
        if not action.scans:
            continue
        table, column = action.table, action.column or "?"
        yield ctx.action_finding(
            RULE,
            action,
            work="scan",
            message=f'Setting "{column}" NOT NULL scans all of "{table}" under {lock_label(action)}, blocking reads '
            "and writes.",
            recipe=_recipe(ctx, target(action), column, action),
        )


def _recipe(ctx: StatementContext, table: str, column: str, action) -> str:
    """The check first; then the migration's own operation (or statement), which no longer scans."""
    own = column_operation(ctx, table, column)
    then = own if own is not None else [run_sql(ctx.sql_of(action).strip().rstrip(";"), None, indent="")]
    return "\n".join(not_null_steps(table, column, 1, then))


RULE = Rule(
    id="MG003",
    slug="set-not-null-scanning-table",
    severity=Severity.ERROR,
    summary="SET NOT NULL scans the whole table while blocking reads and writes",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.SET_NOT_NULL}),
)
