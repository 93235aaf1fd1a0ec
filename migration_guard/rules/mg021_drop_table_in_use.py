"""MG021 drop-table-in-use: dropping a table that code running during the deploy still uses."""

from __future__ import annotations

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext
from migration_guard.rules.compat import CODE_FIRST, deploy_of, explain_rule, order, run_sql_call, state_ops
from migration_guard.rules.recipes import q, split_note

DOC = """\
## What it does
Finds `DROP TABLE` (from `DeleteModel`, from `RemoveField` of a `ManyToManyField`, or raw SQL) of a
table that a model of the code running during the deploy still uses: the model's own table, or the
table of one of its many-to-many fields. With `deploy_order = "migrate_first"` (the default) that is
the code of the applied migrations; with `"code_first"`, the new code. `explain` warns on every
dropped table.

## Why is this bad?
Every query of that code on the model (or on the many-to-many relation) fails with `relation ...
does not exist` until its last process is replaced.

## Example
```python
migrations.DeleteModel("Coupon"),  # the running code still has the Coupon model
```

## Use instead
Two releases: release N removes the model from the code only, release N+1 drops the table:
```python
migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel("Coupon")]),
# next release
migrations.RunSQL('DROP TABLE "shop_coupon"', migrations.RunSQL.noop),
```
"""


def check(ctx: StatementContext):
    deploy = deploy_of(ctx)
    for action in ctx.effects.actions:
        if action.kind is not ActionKind.DROP_TABLE or not action.table or ctx.is_new(action.table):
            continue
        table = action.table
        if deploy is None:
            yield ctx.finding(
                explain_rule(RULE), table=table, lock=action.mode, sized=False,
                message=f'Dropping table "{table}" breaks any running code that still queries it '
                "(explain cannot see your code).",
                recipe="# first release the code that no longer uses the table; drop it in a later release",
            )
            continue
        code_first = order(ctx) == CODE_FIRST
        code = deploy.release if code_first else deploy.running
        used = code.table(table) if code is not None else None
        if used is None:
            continue
        model, field = used
        whose = "the new code" if code_first else "the running code"
        uses = (f"the many-to-many table of {model.label}.{field.name}" if field is not None
                else f"the table of its model {model.label}")
        if field is not None:
            removal = f'migrations.RemoveField("{model.model_name}", "{field.name}")'
        else:
            removal = f'migrations.DeleteModel("{model.name}")'
        yield ctx.finding(
            RULE, table=table, lock=action.mode, sized=False,
            message=f'Dropping table "{table}" breaks {whose}, which still queries it as {uses}.',
            recipe="\n".join([
                split_note("deploy 1: the code stops using it; the table stays"),
                state_ops("state_operations", removal),
                split_note("deploy 2: drop the table, once no running code uses it"),
                run_sql_call(f"DROP TABLE {q(table)}", None),
            ]),
        )


RULE = Rule(
    id="MG021",
    slug="drop-table-in-use",
    severity=Severity.ERROR,
    summary="DROP TABLE of a table a model of the code running during the deploy still uses",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.DROP_TABLE}),
    claims=False,  # about the code around the deploy, not the statement's own work: MG010 still speaks
    sized=False,
)
