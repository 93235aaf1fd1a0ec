"""MG004 add-foreign-key-validating: a FOREIGN KEY added without NOT VALID on an existing table."""

from __future__ import annotations

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext
from migration_guard.rules.compat import column_operation
from migration_guard.rules.recipes import (
    column_constraint,
    q,
    run_sql,
    separate,
    split_note,
    table_constraint,
    without_constraints,
)

DOC = """\
## What it does
Finds `ADD CONSTRAINT ... FOREIGN KEY` without `NOT VALID` on a table that already exists
(Django's `AddField`/`AlterField` of a `ForeignKey`, `AddConstraint`), and `ADD COLUMN ...
REFERENCES` with a default, which checks every existing row the same way.

## Why is this bad?
Adding the constraint takes SHARE ROW EXCLUSIVE on the table *and on the table it references*,
then reads every row to validate it: writes to both tables wait for the whole scan.
`NOT VALID` adds it instantly (new rows are checked from then on), and `VALIDATE CONSTRAINT`
checks the old rows later under SHARE UPDATE EXCLUSIVE, which lets reads and writes continue.

## Example
```sql
ALTER TABLE "shop_order" ADD CONSTRAINT "shop_order_customer_id_fk" FOREIGN KEY ("customer_id")
    REFERENCES "shop_customer" ("id") DEFERRABLE INITIALLY DEFERRED;
```

## Use instead
```python
# migration 1
migrations.RunSQL('ALTER TABLE "shop_order" ADD CONSTRAINT "shop_order_customer_id_fk" FOREIGN KEY ("customer_id") '
                  'REFERENCES "shop_customer" ("id") DEFERRABLE INITIALLY DEFERRED NOT VALID',
                  reverse_sql='ALTER TABLE "shop_order" DROP CONSTRAINT "shop_order_customer_id_fk"'),
# migration 2
migrations.RunSQL('ALTER TABLE "shop_order" VALIDATE CONSTRAINT "shop_order_customer_id_fk"', migrations.RunSQL.noop),
```
For a new `ForeignKey` field, wrap the database side in `SeparateDatabaseAndState` with the
`AddField` as its state operation.
"""


def check(ctx: StatementContext):
    for action in ctx.actions(ActionKind.ADD_COLUMN, ActionKind.ADD_CONSTRAINT):
        if (action.kind is ActionKind.ADD_COLUMN and action.detail.get("references") and action.scans
                and not action.rewrites):
            yield _new_column(ctx, action)
            continue
        if action.kind is not ActionKind.ADD_CONSTRAINT or action.detail.get("contype") != "foreign_key":
            continue
        if action.detail.get("not_valid"):
            continue
        table, name = action.table, action.detail.get("name") or "<constraint>"
        referenced = action.detail.get("references") or "the referenced table"
        yield ctx.action_finding(
            RULE,
            action,
            work="scan",
            message=f'Adding foreign key "{name}" scans all of "{table}" while blocking writes to '
            f'"{table}" and "{referenced}".',
            recipe=_recipe(ctx, table, name, action),
        )


def _new_column(ctx: StatementContext, action):
    table, column, referenced = action.table, action.column or "?", action.detail["references"]
    bare = table.strip('"').split(".")[-1]
    name = action.detail.get("constraint_name") or f"{bare}_{column}_fkey"[:63]  # PostgreSQL's own name for it
    constraint = column_constraint(ctx.sql_of(action), column, "FOREIGN")
    add_key = (table_constraint(table, constraint, name, column, not_valid=True) if constraint is not None else
               f"ALTER TABLE {q(table)} ADD CONSTRAINT {q(name)} FOREIGN KEY ({q(column)}) REFERENCES {q(referenced)} "
               "NOT VALID")
    column_only = run_sql(without_constraints(ctx.sql_of(action), column, {"FOREIGN"}),
                          f"ALTER TABLE {q(table)} DROP COLUMN {q(column)}", indent="")
    key = run_sql(add_key, f"ALTER TABLE {q(table)} DROP CONSTRAINT {q(name)}", indent="")
    own = column_operation(ctx, table, column)
    if own is not None:  # the field for Django's state; in the database, the column, then the key NOT VALID
        database = column_operation(ctx, table, column, db_constraint="False")
        first = [*own[:-1], separate(state=own[-1:], database=[database[-1], key])]
    else:
        first = [column_only, key]
    return ctx.action_finding(
        RULE,
        action,
        work="scan",
        message=f'Adding column "{column}" with a default and a foreign key to "{referenced}" checks every row of '
        f'"{table}" while blocking reads and writes of "{table}" and writes of "{referenced}".',
        recipe="\n".join([
            split_note("migration 1: the column with its default, then the foreign key NOT VALID (no scan; brief "
                       "locks)"),
            *first,
            split_note("migration 2: validate; reads and writes continue"),
            run_sql(f"ALTER TABLE {q(table)} VALIDATE CONSTRAINT {q(name)}", None, indent=""),
        ]),
    )


def _recipe(ctx: StatementContext, table: str, name: str, action) -> str:
    sql = ctx.sql_of(action).strip().rstrip(";")
    single = sql.upper().count(" ADD CONSTRAINT ") == 1 and "," not in sql.split("FOREIGN KEY", 1)[0]
    add = f"{sql} NOT VALID" if single else (
        f"ALTER TABLE {q(table)} ADD CONSTRAINT {q(name)} FOREIGN KEY (...) REFERENCES ... NOT VALID")
    key = run_sql(add, f"ALTER TABLE {q(table)} DROP CONSTRAINT {q(name)}", indent="")
    columns = action.detail.get("columns") or ()
    own = column_operation(ctx, table, columns[0]) if len(columns) == 1 else None
    if own is not None:  # Django's state gets the field as the migration has it; the database the key NOT VALID
        added = own[-1].startswith("migrations.AddField(")  # (after the column, without its key)
        database = [column_operation(ctx, table, columns[0], db_constraint="False")[-1]] if added else []
        key = "\n".join([*own[:-1], separate(state=own[-1:], database=[*database, key])])
    return "\n".join([
        split_note("migration 1: add it NOT VALID (no scan; brief lock)"),
        key,
        split_note("migration 2: validate; reads and writes continue"),
        run_sql(f"ALTER TABLE {q(table)} VALIDATE CONSTRAINT {q(name)}", None, indent=""),
    ])


RULE = Rule(
    id="MG004",
    slug="add-foreign-key-validating",
    severity=Severity.ERROR,
    summary="FOREIGN KEY without NOT VALID scans the table while blocking writes to it and the referenced table",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.ADD_CONSTRAINT, ActionKind.ADD_COLUMN}),
)
