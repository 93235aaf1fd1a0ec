"""MG020 drop-column-in-use: dropping a column that code running during the deploy still uses."""

from __future__ import annotations

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext
from migration_guard.rules.compat import CODE_FIRST, deploy_of, drop_column_steps, explain_rule, order

DOC = """\
## What it does
Finds `DROP COLUMN` (from `RemoveField`, or raw SQL in `RunSQL`) of a column that a model of the
code running during the deploy still has. With the default `deploy_order = "migrate_first"` that is
the code of the migrations already applied (the project state before the pending migrations); with
`"code_first"`, the new code. `migration-guard explain` cannot see the code: there it is a warning
on every dropped column.

## Why is this bad?
Django selects, inserts and updates every column of a model by name. Once the column is gone, every
query of the old code on that model fails with `column ... does not exist` until its last process is
replaced: a deploy that takes the site down although the migration itself is instant.

## Example
```python
migrations.RemoveField("order", "note"),  # the running code's Order still has "note"
```

## Use instead
Two releases. Release N removes the field from the models only; the column stays (made nullable
first if it is NOT NULL without a database default, so that code without the field can insert):
```python
migrations.AlterField("order", "note", models.TextField(null=True)),
migrations.SeparateDatabaseAndState(state_operations=[migrations.RemoveField("order", "note")]),
```
Release N+1 drops the column, which no running code has any more (the gate then passes it):
```python
migrations.RunSQL('ALTER TABLE "shop_order" DROP COLUMN "note"', migrations.RunSQL.noop),
```
"""


def check(ctx: StatementContext):
    deploy = deploy_of(ctx)
    for action in ctx.effects.actions:
        if action.kind is not ActionKind.DROP_COLUMN or not action.column or ctx.is_new(action.table):
            continue
        table, column = action.table, action.column
        if deploy is None:
            yield ctx.finding(
                explain_rule(RULE), table=table, lock=action.mode, sized=False,
                message=f'Dropping column "{column}" of "{table}" breaks any running code that still selects it '
                "(explain cannot see your code).",
                recipe="# first release the code that no longer uses the column; drop it in a later release",
            )
            continue
        code_first = order(ctx) == CODE_FIRST
        code = deploy.release if code_first else deploy.running
        used = code.column(table, column) if code is not None else None
        if used is None:
            continue
        model, field = used
        whose = "the new code" if code_first else "the running code"
        yield ctx.finding(
            RULE, table=table, lock=action.mode, sized=False,
            message=f'Dropping column "{column}" of "{table}" breaks {whose}, whose model {model.label} still has '
            f'the field "{field.name}": every query on {model.name} selects it.',
            recipe="\n".join(drop_column_steps(model, field, table, code_first=code_first)),
        )


RULE = Rule(
    id="MG020",
    slug="drop-column-in-use",
    severity=Severity.ERROR,
    summary="DROP COLUMN of a column a model of the code running during the deploy still has",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.DROP_COLUMN}),
    claims=False,  # about the code around the deploy, not the statement's own work: MG010 still speaks
    sized=False,
)
