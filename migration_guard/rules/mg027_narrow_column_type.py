"""MG027 narrow-column-type: a column type change that the writes of code running during the deploy
can violate."""

from __future__ import annotations

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext
from migration_guard.rules.compat import (
    CODE_FIRST,
    column_change,
    database_then_models,
    deploy_of,
    field_call,
    holds_every_value,
    order,
    run_sql_call,
    state_ops,
)
from migration_guard.rules.recipes import q, split_note

DOC = """\
## What it does
Finds `ALTER COLUMN ... TYPE` (from an `AlterField`, or raw SQL) to a type that does not hold every
value the field of the code running during the deploy can write: a shorter `max_length`, `bigint` ->
`integer`, fewer digits of a `numeric`, `text` -> `varchar(n)`, or another kind of type (`integer` ->
`varchar`, whose comparisons with the old code's integer parameters fail too). With `deploy_order =
"migrate_first"` (the default) that field is the running code's; with `"code_first"` the new code's,
which meets the old type before `migrate`: there a *wider* type is the hazard (`max_length` 100 ->
200: the new code writes 200 characters into `varchar(100)`).

## Why is this bad?
The old code still validates and writes values of the old type: a 200-character name into
`varchar(100)` fails with `value too long for type character varying(100)`, an id above 2^31 into
`integer` with `integer out of range`.

## Example
```python
migrations.AlterField("order", "note", models.CharField(max_length=100)),  # was max_length=200
```

## Use instead
Two releases: the code writes only what the new type holds (the model only), then the column:
```python
migrations.SeparateDatabaseAndState(state_operations=[
    migrations.AlterField("order", "note", models.CharField(max_length=100)),
]),
# next release
migrations.RunSQL('ALTER TABLE "shop_order" ALTER COLUMN "note" TYPE varchar(100)',
                  'ALTER TABLE "shop_order" ALTER COLUMN "note" TYPE varchar(200)'),
```
With code first, the other way round: the column first (`database_operations`), the model next.
"""


def check(ctx: StatementContext):
    deploy = deploy_of(ctx)
    if deploy is None:
        return
    for action in ctx.effects.actions:
        if action.kind is not ActionKind.ALTER_COLUMN_TYPE or not action.column or ctx.is_new(action.table):
            continue
        table, column = action.table, action.column
        new_type = action.detail.get("new_type")
        running = deploy.running.column(table, column)
        old_type = (running[1].db_type if running is not None else None) or action.detail.get("old_type")
        if order(ctx) == CODE_FIRST:
            used = deploy.release.column(table, column) if deploy.release is not None else None
            if used is None:
                continue
            model, field = used
            too_narrow = [t for t in (old_type, new_type) if not holds_every_value(field.db_type, t)]
            if not too_narrow:
                continue
            yield ctx.finding(
                RULE, table=table, lock=action.mode, sized=False,
                message=f'The new code writes "{column}" of "{table}" as {field.db_type or "an unknown type"} '
                f"({model.label}.{field.name}), which {too_narrow[0] or 'its old type (unknown)'} does not hold"
                + (" until migrate changes it." if too_narrow[0] == old_type else "."),
                recipe=database_then_models(
                    f'migrations.AlterField("{model.model_name}", "{field.name}", {field_call(field)})',
                    "the column's type"),
            )
            continue
        if running is None or holds_every_value(running[1].db_type, new_type):
            continue
        model, field = running
        yield ctx.finding(
            RULE, table=table, lock=action.mode, sized=False,
            message=f'Changing "{column}" of "{table}" to {new_type} breaks writes of the running code, whose '
            f"{model.label}.{field.name} is {field.db_type or 'of an unknown type'}.",
            recipe=_code_then_column(ctx, model.model_name, field, table, column, new_type),
        )


def _code_then_column(ctx, model: str, field, table: str, column: str, new_type: str | None) -> str:
    changed = column_change(ctx, table, column)
    after = field_call(changed[1]) if changed is not None else "models.<Field>(...)  # the narrower field"
    return "\n".join([
        split_note(f"deploy 1: the code writes only what {new_type} holds; only the model changes"),
        state_ops("state_operations", f'migrations.AlterField("{model}", "{field.name}", {after})'),
        split_note("deploy 2: the column's type, once no running code writes wider values"),
        run_sql_call(f"ALTER TABLE {q(table)} ALTER COLUMN {q(column)} TYPE {new_type}",
                     f"ALTER TABLE {q(table)} ALTER COLUMN {q(column)} TYPE {field.db_type}" if field.db_type else None),
    ])


RULE = Rule(
    id="MG027",
    slug="narrow-column-type",
    severity=Severity.ERROR,
    summary="a column type change that the writes of the code running during the deploy can violate",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.ALTER_COLUMN_TYPE}),
    claims=False,  # about the code around the deploy, not the statement's own work: MG010 still speaks
    sized=False,
)
