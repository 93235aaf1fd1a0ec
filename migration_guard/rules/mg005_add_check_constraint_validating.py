"""MG005 add-check-constraint-validating: a CHECK added without NOT VALID on an existing table."""

from __future__ import annotations

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext, lock_label
from migration_guard.rules.compat import column_operation
from migration_guard.rules.recipes import (
    added_constraint,
    column_constraint,
    model_ref,
    q,
    run_sql,
    separate,
    split_note,
    table_constraint,
    target,
    without_constraints,
)

DOC = """\
## What it does
Finds `ADD CONSTRAINT ... CHECK` without `NOT VALID` on an existing table (Django's
`AddConstraint(CheckConstraint(...))`), and `ADD COLUMN` with an inline CHECK (Django's
`PositiveIntegerField` and friends) when PostgreSQL checks the existing rows.

## Why is this bad?
Validating reads every row while holding ACCESS EXCLUSIVE: reads and writes wait for the scan.
`NOT VALID` adds the constraint instantly, and `VALIDATE CONSTRAINT` checks old rows later under
SHARE UPDATE EXCLUSIVE, which lets reads and writes continue.

## Example
```python
migrations.AddConstraint("order", models.CheckConstraint(condition=models.Q(total__gte=0), name="order_total_gte_0")),
```

## Use instead
```python
# migration 1
migrations.SeparateDatabaseAndState(
    state_operations=[migrations.AddConstraint("order", models.CheckConstraint(condition=models.Q(total__gte=0), name="order_total_gte_0"))],
    database_operations=[migrations.RunSQL(
        'ALTER TABLE "shop_order" ADD CONSTRAINT "order_total_gte_0" CHECK ("total" >= 0) NOT VALID',
        reverse_sql='ALTER TABLE "shop_order" DROP CONSTRAINT "order_total_gte_0"')],
),
# migration 2
migrations.RunSQL('ALTER TABLE "shop_order" VALIDATE CONSTRAINT "order_total_gte_0"', migrations.RunSQL.noop),
```
"""


def check(ctx: StatementContext):
    for action in ctx.actions(ActionKind.ADD_CONSTRAINT, ActionKind.ADD_COLUMN):
        if not action.scans:
            continue
        if action.kind is ActionKind.ADD_CONSTRAINT and action.detail.get("contype") == "check":
            if action.detail.get("not_valid"):
                continue
            name = action.detail.get("name") or "<constraint>"
            what = f'Adding check "{name}"'
        elif action.kind is ActionKind.ADD_COLUMN and action.detail.get("check") and not action.rewrites:
            name, what = None, f'Adding column "{action.column}" with an inline CHECK'
        else:
            continue
        yield ctx.action_finding(
            RULE,
            action,
            work="scan",
            message=f'{what} scans all of "{action.table}" under {lock_label(action)}, blocking reads and writes.',
            recipe=_recipe(ctx, action, name),
        )


def _recipe(ctx: StatementContext, action, name: str | None) -> str:
    """The CHECK added NOT VALID (a new column's: the column first, without it), then VALIDATE; Django's
    state gets the migration's own constraint (or field)."""
    table = target(action)
    if name is None:  # a new column's inline CHECK
        column = action.column
        constraint = column_constraint(ctx.sql_of(action), column, "CHECK")
        bare = table.strip('"').split(".")[-1]
        name = (constraint.conname if constraint is not None else None) or f"{bare}_{column}_check"[:63]
        database = [run_sql(without_constraints(ctx.sql_of(action), column, {"CHECK"}),
                            f"ALTER TABLE {q(table)} DROP COLUMN {q(column)}", indent="")]
        own = column_operation(ctx, table, column)
        heading = "migration 1: the column without its CHECK, then the CHECK NOT VALID (both instant)"
    else:
        constraint = added_constraint(ctx.sql_of(action), name)
        database, own, heading = [], None, "migration 1: add it NOT VALID (instant)"
        operation = ctx.operation
        if operation is not None and operation.name == "AddConstraint" and operation.definition:
            own = [*operation.definition_imports,
                   f"migrations.AddConstraint({model_ref(ctx, table)}, {operation.definition}),"]
    add = (table_constraint(table, constraint, name, not_valid=True) if constraint is not None else
           f"ALTER TABLE {q(table)} ADD CONSTRAINT {q(name)} CHECK ({action.detail.get('expression') or '...'}) "
           "NOT VALID")
    database.append(run_sql(add, f"ALTER TABLE {q(table)} DROP CONSTRAINT {q(name)}", indent=""))
    first = [*own[:-1], separate(state=own[-1:], database=database)] if own is not None else database
    return "\n".join([
        split_note(heading + ("; Django's state gets the migration's own" if own is not None else "")),
        *first,
        split_note("migration 2: validate; reads and writes continue"),
        run_sql(f"ALTER TABLE {q(table)} VALIDATE CONSTRAINT {q(name)}", None, indent=""),
    ])


RULE = Rule(
    id="MG005",
    slug="add-check-constraint-validating",
    severity=Severity.ERROR,
    summary="CHECK without NOT VALID scans the table while blocking reads and writes",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.ADD_CONSTRAINT, ActionKind.ADD_COLUMN}),
)
