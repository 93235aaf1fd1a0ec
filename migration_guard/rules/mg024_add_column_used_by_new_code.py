"""MG024 add-column-used-by-new-code: with code first, the new code uses a column or table before
``migrate`` adds it."""

from __future__ import annotations

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext
from migration_guard.rules.compat import CODE_FIRST, database_then_models, deploy_of, field_call, order

DOC = """\
## What it does
Only with `deploy_order = "code_first"` (the new code rolls out, then `migrate` runs): finds
`ADD COLUMN` on an existing table, and `CREATE TABLE`, for a column or table that the new code's
models have (`AddField`, `CreateModel`, a many-to-many field's table).

## Why is this bad?
Until `migrate` has run, the new code's queries on that model select a column (or table) that does
not exist yet, and fail; deleting a row of a model that a new model points at fails too (Django
looks for the rows to cascade to).

## Example
```python
migrations.AddField("order", "note", models.TextField(null=True)),  # deployed with code reading it
```

## Use instead
Two releases: the column (nullable, or with a `db_default`) without the field, then the field:
```python
migrations.SeparateDatabaseAndState(database_operations=[
    migrations.AddField("order", "note", models.TextField(null=True)),
]),
# next release
migrations.SeparateDatabaseAndState(state_operations=[
    migrations.AddField("order", "note", models.TextField(null=True)),
]),
```
"""


def check(ctx: StatementContext):
    deploy = deploy_of(ctx)
    if deploy is None or deploy.release is None or order(ctx) != CODE_FIRST:
        return
    for action in ctx.effects.actions:
        table = action.table
        if action.kind is ActionKind.ADD_COLUMN and action.column and deploy.running.table(table) is not None:
            used = deploy.release.column(table, action.column)
            if used is None:
                continue
            model, field = used
            column_field = field if field.written_on_insert else None
            shown = field_call(field) if column_field is not None else field_call(field, null="True")
            add = f'migrations.AddField("{model.model_name}", "{field.name}", {shown})'
            yield ctx.finding(
                RULE, table=table, lock=action.mode, sized=False,
                message=f'The new code selects "{action.column}" of "{table}" ({model.label}.{field.name}) '
                "before migrate adds it.",
                recipe=database_then_models(add, "the column only"),
            )
        elif action.kind is ActionKind.CREATE_TABLE and table and deploy.running.table(table) is None:
            used = deploy.release.table(table)
            if used is None:
                continue
            model, field = used
            what = f"{model.label}.{field.name}" if field is not None else model.label
            if field is not None:
                operation = f'migrations.AddField("{model.model_name}", "{field.name}", {field_call(field)})'
            else:
                fields = "".join(f'\n            ("{f.name}", {field_call(f)}),' for f in model.fields)
                operation = f'migrations.CreateModel(\n        name="{model.name}",\n        fields=[{fields}\n        ],\n    )'
            yield ctx.finding(
                RULE, table=table, lock=action.mode, sized=False,
                message=f'The new code queries "{table}" ({what}) before migrate creates it.',
                recipe=database_then_models(operation, "the table only"),
            )


RULE = Rule(
    id="MG024",
    slug="add-column-used-by-new-code",
    severity=Severity.ERROR,
    summary="code first: ADD COLUMN / CREATE TABLE for a column or table the new code already uses",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.ADD_COLUMN, ActionKind.CREATE_TABLE}),
    claims=False,  # about the code around the deploy, not the statement's own work: MG010 still speaks
    sized=False,
)
