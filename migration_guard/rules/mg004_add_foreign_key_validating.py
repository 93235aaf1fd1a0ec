"""MG004 add-foreign-key-validating: a FOREIGN KEY added without NOT VALID on an existing table."""

from __future__ import annotations

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext
from migration_guard.rules.recipes import q, run_sql, split_note

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
            recipe=_recipe(ctx, action, table, name),
        )


def _new_column(ctx: StatementContext, action):
    table, column, referenced = action.table, action.column or "?", action.detail["references"]
    bare = table.strip('"').split(".")[-1]
    name = action.detail.get("constraint_name") or f"{bare}_{column}_fk"[:63]
    default = action.detail.get("default") or "..."
    return ctx.action_finding(
        RULE,
        action,
        work="scan",
        message=f'Adding column "{column}" with a default and a foreign key to "{referenced}" checks every row of '
        f'"{table}" while blocking reads and writes of "{table}" and writes of "{referenced}".',
        recipe="\n".join([
            split_note("migration 1: the column with its default, without the foreign key (instant)"),
            run_sql(f"ALTER TABLE {q(table)} ADD COLUMN {q(column)} {action.detail.get('type') or '<type>'} "
                    f"DEFAULT {default}", f"ALTER TABLE {q(table)} DROP COLUMN {q(column)}", indent=""),
            split_note("migration 2: the foreign key NOT VALID (no scan; brief lock)"),
            run_sql(f"ALTER TABLE {q(table)} ADD CONSTRAINT {q(name)} FOREIGN KEY ({q(column)}) REFERENCES "
                    f"{q(referenced)} NOT VALID", f"ALTER TABLE {q(table)} DROP CONSTRAINT {q(name)}", indent=""),
            split_note("migration 3: validate; reads and writes continue"),
            run_sql(f"ALTER TABLE {q(table)} VALIDATE CONSTRAINT {q(name)}", None, indent=""),
            "# keep Django's state in step: SeparateDatabaseAndState(state_operations=[your AddField], ...)",
        ]),
    )


def _recipe(ctx: StatementContext, action, table: str, name: str) -> str:
    sql = ctx.sql_of(action).strip().rstrip(";")
    single = sql.upper().count(" ADD CONSTRAINT ") == 1 and "," not in sql.split("FOREIGN KEY", 1)[0]
    add = f"{sql} NOT VALID" if single else (
        f"ALTER TABLE {q(table)} ADD CONSTRAINT {q(name)} FOREIGN KEY (...) REFERENCES ... NOT VALID")
    lines = [
        split_note("migration 1: add it NOT VALID (no scan; brief lock)"),
        run_sql(add, f"ALTER TABLE {q(table)} DROP CONSTRAINT {q(name)}", indent=""),
        split_note("migration 2: validate; reads and writes continue"),
        run_sql(f"ALTER TABLE {q(table)} VALIDATE CONSTRAINT {q(name)}", None, indent=""),
    ]
    operation = ctx.operation
    if operation is not None and operation.name in {"AddField", "AlterField"}:
        lines.append(f"# keep Django's state in step: migrations.SeparateDatabaseAndState(state_operations=[your "
                     f"{operation.name}], database_operations=[the column, then the RunSQL above])")
    return "\n".join(lines)


RULE = Rule(
    id="MG004",
    slug="add-foreign-key-validating",
    severity=Severity.ERROR,
    summary="FOREIGN KEY without NOT VALID scans the table while blocking writes to it and the referenced table",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.ADD_CONSTRAINT, ActionKind.ADD_COLUMN}),
)
