"""MG001 add-column-rewriting-table: ADD COLUMN that rewrites every row of an existing table."""

from __future__ import annotations

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext, lock_label
from migration_guard.rules.compat import field_for
from migration_guard.rules.recipes import model_ref, q, split_note

DOC = """\
## What it does
Finds `ADD COLUMN` that makes PostgreSQL rewrite the whole table: a volatile default
(`random()`, `clock_timestamp()`, `gen_random_uuid()`), a `serial`/`bigserial` or identity column,
or a `GENERATED ... STORED` column.

## Why is this bad?
The rewrite copies every row and rebuilds every index while holding ACCESS EXCLUSIVE: nothing can
read or write the table until it ends, minutes on a large table. Since PostgreSQL 11 a
non-volatile default (a constant, `now()`) is stored in the catalog instead, and is instant.

## Example
```sql
ALTER TABLE "shop_order" ADD COLUMN "token" uuid DEFAULT gen_random_uuid() NOT NULL;
```

## Use instead
```python
# migration 1: nullable column, no database default (instant)
migrations.AddField("order", "token", models.UUIDField(null=True)),
# migration 2 (atomic = False): backfill in batches with RunPython, outside one long transaction
# migration 3: the default for new rows, set in Django (default=uuid.uuid4) or with a constant db_default
```
"""


def check(ctx: StatementContext):
    for action in ctx.actions(ActionKind.ADD_COLUMN):
        if not action.rewrites:
            continue
        column, table = action.column or "?", action.table
        yield ctx.action_finding(
            RULE,
            action,
            work="rewrite",
            message=f'Adding column "{column}" rewrites all of "{table}" under {lock_label(action)}, blocking reads '
            f"and writes ({_why(action)}).",
            recipe=_recipe(ctx, table, column, action.detail.get("type")),
        )


def _why(action) -> str:
    detail = action.detail
    if detail.get("serial"):
        return "a serial column fills every row from its sequence"
    if detail.get("identity"):
        return "an identity column fills every row"
    if detail.get("generated_stored"):
        return "a stored generated column is computed for every row"
    if detail.get("default"):
        return f"its default {detail['default']} is volatile, so it is computed for every row"
    return action.reason or "PostgreSQL rewrites the table"


def _recipe(ctx: StatementContext, table: str, column: str, sql_type: str | None) -> str:
    model = model_ref(ctx, table)
    # nullable, and nothing that fills or indexes existing rows: no default, no unique index yet
    nullable = field_for(ctx, table, column, sql_type, null="True", db_default=None, default=None, unique=None)
    return "\n".join([
        split_note("migration 1: add the column as nullable, with no database default (instant)"),
        f"migrations.AddField({model}, \"{column}\", {nullable}),",
        split_note("migration 2, with atomic = False: backfill existing rows in batches"),
        "migrations.RunPython(backfill_in_batches, migrations.RunPython.noop),",
        f"# e.g. UPDATE {q(table)} SET {q(column)} = ... WHERE id BETWEEN %s AND %s, 10,000 rows a batch",
        split_note("migration 3: defaults for new rows"),
        "# default=... in the model field (applied by Django, no rewrite) or a constant db_default;",
        "# then AlterField(null=False) as MG003 describes",
    ])


RULE = Rule(
    id="MG001",
    slug="add-column-rewriting-table",
    severity=Severity.ERROR,
    summary="ADD COLUMN with a volatile default, serial, identity or stored generated column rewrites the table",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.ADD_COLUMN}),
)
