"""MG023 rename-table-in-use: renaming a table that code running during the deploy uses by name."""

from __future__ import annotations

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext
from migration_guard.rules.compat import CODE_FIRST, deploy_of, explain_rule, order, state_ops
from migration_guard.rules.recipes import split_note

DOC = """\
## What it does
Finds `ALTER TABLE ... RENAME TO` (from `RenameModel`, `AlterModelTable`, or raw SQL) of a table that
code running during the deploy queries by its old name (`deploy_order = "migrate_first"`, the
default: the code of the applied migrations; it includes the tables of many-to-many fields) or by
its new one (`"code_first"`). `explain` warns on every renamed table.

## Why is this bad?
Every query of the old code on the model fails with `relation ... does not exist` (with code first,
the new code's, until `migrate`).

## Example
```python
migrations.RenameModel("Order", "Purchase"),  # renames shop_order to shop_purchase
```

## Use instead
Keep the table's name and rename the model only:
```python
migrations.SeparateDatabaseAndState(state_operations=[
    migrations.RenameModel("Order", "Purchase"),
    migrations.AlterModelTable("purchase", "shop_order"),
]),
```
(a many-to-many field of the renamed model names a column of its table after the model: give it a
`through` model first). Or create the new table, write both, backfill, switch reads and drop the
old one (MG021).
"""


def check(ctx: StatementContext):
    deploy = deploy_of(ctx)
    for action in ctx.effects.actions:
        if action.kind is not ActionKind.RENAME_TABLE or not action.table or ctx.is_new(action.table):
            continue
        table, new = action.table, action.detail.get("new_name") or "?"
        if deploy is None:
            yield ctx.finding(
                explain_rule(RULE), table=table, lock=action.mode, sized=False,
                message=f'Renaming table "{table}" to "{new}" breaks any running code that still queries the '
                "old name (explain cannot see your code).",
                recipe="# keep the old table name (Django: Meta.db_table), or create the new table, write both, "
                "backfill, switch reads, then drop the old one",
            )
            continue
        if order(ctx) == CODE_FIRST:
            code = deploy.release
            uses_new = code.table(new) if code is not None else None
            used = uses_new or (code.table(table) if code is not None else None)
            if used is None:
                continue
            why = (f'which queries "{new}" before migrate renames the table' if uses_new
                   else f'which still queries "{table}"')
            message = f'Renaming table "{table}" to "{new}" breaks the new code, {why}.'
        else:
            used = deploy.running.table(table)
            if used is None:
                continue
            message = (f'Renaming table "{table}" to "{new}" breaks the running code, which still queries it '
                       f"for {used[0].label}{'.' + used[1].name if used[1] is not None else ''}.")
        yield ctx.finding(RULE, table=table, lock=action.mode, sized=False, message=message,
                          recipe=_recipe(ctx, used[0], table))


def _recipe(ctx: StatementContext, model, table: str) -> str:
    operation = ctx.operation
    renamed = next((c for c in operation.changes if c.operation == "RenameModel" and c.scope != "database"
                    and c.before is not None and c.after is not None), None) if operation is not None else None
    lines = [split_note("keep the table's name; only the model changes")]
    if renamed is not None:
        lines.append(state_ops(
            "state_operations",
            f'migrations.RenameModel("{renamed.before.name}", "{renamed.after.name}")',
            f'migrations.AlterModelTable("{renamed.after.model_name}", "{renamed.before.db_table}")',
        ))
    else:
        lines.append(f'migrations.AlterModelTable("{model.model_name}", "{model.db_table}"),  '
                     "# or leave Meta.db_table as it is")
    lines.append(split_note("or: create the new table, write both, backfill, switch reads, then drop the old one "
                            "(MG021 shows how)"))
    return "\n".join(lines)


RULE = Rule(
    id="MG023",
    slug="rename-table-in-use",
    severity=Severity.ERROR,
    summary="RENAME of a table the code running during the deploy queries by name",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.RENAME_TABLE}),
    claims=False,  # about the code around the deploy, not the statement's own work: MG010 still speaks
    sized=False,
)
