"""MG012 add-not-null-column-without-default: ADD COLUMN ... NOT NULL with no default fails on a table with rows."""

from __future__ import annotations

import ast

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext
from migration_guard.rules.compat import column_change, field_for
from migration_guard.rules.recipes import model_ref, split_note

DOC = """\
## What it does
Finds `ADD COLUMN ... NOT NULL` (or an inline `PRIMARY KEY`) without a default, on a table that
exists before the migration, whatever its size.

## Why is this bad?
Every existing row would get NULL in a column that forbids it: PostgreSQL reads the table under
ACCESS EXCLUSIVE and then fails with `column "..." contains null values`. The deploy stops half
way (a non-atomic migration leaves its earlier statements applied), however small the table is,
unless it is empty.

## Example
```sql
ALTER TABLE "shop_order" ADD COLUMN "currency" varchar(3) NOT NULL;
```

## Use instead
```python
# a constant database default is stored in the catalog: instant, and every old row gets it
migrations.AddField("order", "currency", models.CharField(max_length=3, db_default="EUR")),
# or: nullable first, backfill in batches, then NOT NULL as MG003 describes
```
"""


def check(ctx: StatementContext):
    for action in ctx.actions(ActionKind.ADD_COLUMN):
        if not action.detail.get("fails_with_rows") or action.detail.get("partition_of"):
            continue
        table, column = action.table, action.column or "?"
        yield ctx.action_finding(
            RULE,
            action,
            message=f'Adding column "{column}" NOT NULL without a default fails on "{table}" as soon as it has a '
            "row (every existing row would be NULL).",
            recipe="\n".join([
                split_note("one migration: a constant database default, stored in the catalog (instant)"),
                "# a constant database default: the field's own default if it has one, else replace ... with yours",
                f'migrations.AddField({model_ref(ctx, table)}, "{column}", '
                f'{field_for(ctx, table, column, action.detail.get("type"), db_default=_constant(ctx, table, column))}),',
                split_note("or: add it nullable, backfill in batches (atomic = False), then set NOT NULL (MG003)"),
            ]),
            sized=False,
        )


def _constant(ctx: StatementContext, table: str, column: str) -> str:
    """The field's own Python default when it is a literal (a database default must be a constant),
    else ``...`` standing for the value to choose."""
    found = column_change(ctx, table, column)
    default = found[1].kwarg("default") if found is not None else None
    if default is not None:
        try:
            ast.literal_eval(default)
            return default
        except (ValueError, SyntaxError):
            pass
    return "..."


RULE = Rule(
    id="MG012",
    slug="add-not-null-column-without-default",
    severity=Severity.ERROR,
    summary="ADD COLUMN ... NOT NULL without a default fails on a table that has rows",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.ADD_COLUMN}),
    sized=False,
)
