"""MG001 add-column-rewriting-table: ADD COLUMN that rewrites every row of an existing table."""

from __future__ import annotations

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext, lock_label
from migration_guard.rules.compat import column_operation
from migration_guard.rules.recipes import (
    batched,
    not_null_steps,
    q,
    run_sql,
    separate,
    set_not_null,
    split_note,
    target,
    without_constraints,
)

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
# migration 1: the column without a default (instant), then its default for new rows (ALTER COLUMN ...
# SET DEFAULT rewrites nothing: only ADD COLUMN fills the rows there are)
migrations.AddField("order", "token", models.UUIDField(null=True)),
migrations.AlterField("order", "token", models.UUIDField(db_default=RandomUUID(), null=True)),
# migration 2 (atomic = False): a RunPython that fills the rows there are, 10,000 at a time, each batch
# committed: UPDATE "shop_order" SET "token" = gen_random_uuid() WHERE "token" IS NULL AND "id" >= %s AND "id" < %s
# migrations 3-5: NOT NULL without a scan, as MG003 shows (CHECK NOT VALID, VALIDATE, then the AlterField)
```
The recipe prints each of these in full, with the migration's own field.
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
            recipe=_recipe(ctx, action),
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


def _recipe(ctx: StatementContext, action) -> str:
    """A volatile default: the column added bare and its default set apart (neither rewrites), the existing
    rows filled in batches, then NOT NULL without a scan. A serial, identity or generated column: words."""
    table, column, detail = target(action), action.column or "?", action.detail
    default = detail.get("default")
    own = column_operation(ctx, table, column)
    if detail.get("serial") or detail.get("identity") or detail.get("generated_stored") or not default or (
            own is not None and "db_default=" not in own[-1]):
        return _words(detail)
    if own is not None:  # the migration's own field: added nullable, then given its db_default
        add = [*column_operation(ctx, table, column, null="True", default=None, db_default=None),
               column_operation(ctx, table, column, as_operation="AlterField", null="True", default=None)[-1]]
        # the field as the migration has it, for the models; in the database only SET NOT NULL (AlterField
        # would also UPDATE the NULLs to the default: a bulk write, though the batches left none)
        final = column_operation(ctx, table, column, as_operation="AlterField")
        then = [*final[:-1], separate(state=final[-1:], database=[set_not_null(table, column)])]
    else:
        add = [run_sql(without_constraints(ctx.sql_of(action), column), f"ALTER TABLE {q(table)} DROP COLUMN {q(column)}",
                       indent=""),
               run_sql(f"ALTER TABLE {q(table)} ALTER COLUMN {q(column)} SET DEFAULT {default}",
                       f"ALTER TABLE {q(table)} ALTER COLUMN {q(column)} DROP DEFAULT", indent="")]
        then = [set_not_null(table, column)]
    lines = [
        split_note("migration 1: the column without a default (instant), then its default for new rows (no "
                   "rewrite: only ADD COLUMN fills the rows there are)"),
        *add,
        split_note("migration 2, with atomic = False: the rows there are, 10,000 at a time"),
        *batched(table, f"UPDATE {q(table)} SET {q(column)} = {default.replace('%', '%%')} WHERE {q(column)} IS NULL "
                        'AND "id" >= %s AND "id" < %s'),
    ]
    if detail.get("not_null"):
        lines += not_null_steps(table, column, 3, then)
    return "\n".join(lines)


def _words(detail) -> str:
    if detail.get("generated_stored"):
        return "\n".join([
            "# a stored generated column is computed for every row as it is added: on PostgreSQL 18 a VIRTUAL one",
            "# adds instantly; else a plain column the application (or a trigger) keeps up to date, filled in",
            "# batches; or add it in a maintenance window and approve it"])
    return "\n".join([
        "# a serial or identity column is filled for every row as it is added: instead, add it nullable with no",
        "# default, give it its sequence as default for new rows (ALTER COLUMN ... SET DEFAULT nextval(...) rewrites",
        "# nothing), fill the rows there are in batches (atomic = False), then NOT NULL as MG003 describes; or add",
        "# it in a maintenance window and approve it"])


RULE = Rule(
    id="MG001",
    slug="add-column-rewriting-table",
    severity=Severity.ERROR,
    summary="ADD COLUMN with a volatile default, serial, identity or stored generated column rewrites the table",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.ADD_COLUMN}),
)
