"""MG006 add-unique-constraint-building-index: UNIQUE / PRIMARY KEY that builds its index under ACCESS EXCLUSIVE."""

from __future__ import annotations

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext, lock_label
from migration_guard.rules.recipes import q, run_sql, split_note

DOC = """\
## What it does
Finds `ADD CONSTRAINT ... UNIQUE` / `PRIMARY KEY` (Django's `AddConstraint(UniqueConstraint)`,
`unique=True`, `unique_together`) on an existing table when it is not `USING INDEX`, and `ADD COLUMN
... UNIQUE` (Django's `AddField(..., unique=True)`).

## Why is this bad?
The constraint builds its unique index while holding ACCESS EXCLUSIVE: reads and writes wait for
the whole build. A PRIMARY KEY on nullable columns also sets them NOT NULL, which scans.

## Example
```python
migrations.AddConstraint("order", models.UniqueConstraint(fields=["number"], name="order_number_uniq")),
```

## Use instead
```python
# migration 1, with atomic = False: build the index without blocking writes
migrations.RunSQL('CREATE UNIQUE INDEX CONCURRENTLY "order_number_uniq" ON "shop_order" ("number")',
                  reverse_sql='DROP INDEX CONCURRENTLY IF EXISTS "order_number_uniq"'),
# migration 2: attach it (brief lock, no build); keep Django's state in step
migrations.SeparateDatabaseAndState(
    state_operations=[migrations.AddConstraint("order", models.UniqueConstraint(fields=["number"], name="order_number_uniq"))],
    database_operations=[migrations.RunSQL(
        'ALTER TABLE "shop_order" ADD CONSTRAINT "order_number_uniq" UNIQUE USING INDEX "order_number_uniq"',
        reverse_sql='ALTER TABLE "shop_order" DROP CONSTRAINT "order_number_uniq"')],
),
```
"""


def check(ctx: StatementContext):
    for action in ctx.actions(ActionKind.ADD_COLUMN, ActionKind.ADD_CONSTRAINT):
        if action.kind is ActionKind.ADD_COLUMN and action.builds_index:
            yield _new_column(ctx, action)
            continue
        contype = action.detail.get("contype")
        if action.kind is not ActionKind.ADD_CONSTRAINT or contype not in {"unique", "primary_key"}:
            continue
        if action.detail.get("using_index"):
            continue
        table, name = action.table, action.detail.get("name") or "<constraint>"
        kind = "primary key" if contype == "primary_key" else "unique constraint"
        yield ctx.action_finding(
            RULE,
            action,
            work="index",
            message=f'Adding {kind} "{name}" builds its index on "{table}" under {lock_label(action)}, blocking reads '
            "and writes.",
            recipe=_recipe(table, name, contype, action.detail.get("columns") or ()),
        )


def _new_column(ctx: StatementContext, action):
    table, column = action.table, action.column or "?"
    kind = action.detail.get("unique") or "UNIQUE"
    bare = table.strip('"').split(".")[-1]
    name = action.detail.get("unique_name") or f"{bare}_{column}_uniq"[:63]
    return ctx.action_finding(
        RULE,
        action,
        work="index",
        message=f'Adding column "{column}" with {kind} builds its index on "{table}" under {lock_label(action)}, '
        "blocking reads and writes.",
        recipe="\n".join([
            split_note(f"migration 1: the column without {kind} (instant): unique=False on the field"),
            _recipe(table, name, "primary_key" if kind == "PRIMARY KEY" else "unique", (column,)),
            "# then unique=True in the model; keep Django's state in step with SeparateDatabaseAndState",
        ]),
    )


def _recipe(table: str, name: str, contype: str, columns) -> str:
    cols = ", ".join(q(c) for c in columns) or "..."
    keyword = "PRIMARY KEY" if contype == "primary_key" else "UNIQUE"
    return "\n".join([
        split_note("migration 1, with atomic = False: build the index concurrently"),
        run_sql(f"CREATE UNIQUE INDEX CONCURRENTLY {q(name)} ON {q(table)} ({cols})",
                f"DROP INDEX CONCURRENTLY IF EXISTS {q(name)}", indent=""),
        split_note("migration 2: attach it; wrap in SeparateDatabaseAndState with your AddConstraint as state"),
        run_sql(f"ALTER TABLE {q(table)} ADD CONSTRAINT {q(name)} {keyword} USING INDEX {q(name)}",
                f"ALTER TABLE {q(table)} DROP CONSTRAINT {q(name)}", indent=""),
    ])


RULE = Rule(
    id="MG006",
    slug="add-unique-constraint-building-index",
    severity=Severity.ERROR,
    summary="UNIQUE or PRIMARY KEY without USING INDEX builds an index while blocking reads and writes",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.ADD_CONSTRAINT, ActionKind.ADD_COLUMN}),
)
