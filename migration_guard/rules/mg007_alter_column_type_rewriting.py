"""MG007 alter-column-type-rewriting: a column type change that rewrites an existing table."""

from __future__ import annotations

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext, lock_label
from migration_guard.rules.compat import field_for
from migration_guard.rules.recipes import model_ref, split_note

DOC = """\
## What it does
Finds `ALTER COLUMN ... TYPE` that is not binary coercible from the old type (for example
`integer` -> `bigint`, `varchar(200)` -> `varchar(100)`, `text` -> `integer`), and type changes
whose old type the gate cannot know.

## Why is this bad?
PostgreSQL rewrites every row and rebuilds every index of the table while holding ACCESS
EXCLUSIVE: reads and writes wait until it ends. Binary-coercible changes (`varchar(n)` ->
`varchar(m)` with m >= n, -> `text`, dropping a length limit, raising numeric precision) only
touch the catalog.

## Example
```python
migrations.AlterField("order", "quantity", models.BigIntegerField()),  # was IntegerField
```

## Use instead
Expand and contract, over several deploys:
```python
# 1: a new nullable column of the new type
migrations.AddField("order", "quantity_new", models.BigIntegerField(null=True)),
# 2: write both columns from the application (or a trigger); backfill old rows in batches
#    from a non-atomic migration
# 3: switch reads to the new column; 4: remove the old column and rename the new one
```
"""


def check(ctx: StatementContext):
    for action in ctx.actions(ActionKind.ALTER_COLUMN_TYPE):
        if not action.rewrites:
            continue
        table, column = action.table, action.column or "?"
        old, new = action.detail.get("old_type"), action.detail.get("new_type") or "?"
        change = f"from {old} to {new}" if old else f"to {new} (old type unknown)"
        yield ctx.action_finding(
            RULE,
            action,
            work="rewrite",
            message=f'Changing "{column}" {change} rewrites all of "{table}" under {lock_label(action)}, blocking '
            "reads and writes.",
            recipe=_recipe(ctx, table, column, action.detail.get("new_type")),
        )


def _recipe(ctx: StatementContext, table: str, column: str, new_type: str | None) -> str:
    model = model_ref(ctx, table)
    # the new field under another name: its own column, nullable, no default to fill old rows with
    field = field_for(ctx, table, column, new_type, null="True", db_column=None, db_default=None, default=None,
                      unique=None, primary_key=None)
    return "\n".join([
        split_note("deploy 1: a new nullable column of the new type"),
        f"migrations.AddField({model}, \"{column}_new\", {field}),",
        "# write both columns from the application (or a trigger)",
        split_note("deploy 1, a non-atomic migration: backfill old rows in batches"),
        split_note("deploy 2: read the new column; deploy 3: RemoveField the old one, RenameField the new"),
    ])


RULE = Rule(
    id="MG007",
    slug="alter-column-type-rewriting",
    severity=Severity.ERROR,
    summary="ALTER COLUMN TYPE that is not binary coercible rewrites the table while blocking reads and writes",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.ALTER_COLUMN_TYPE}),
)
