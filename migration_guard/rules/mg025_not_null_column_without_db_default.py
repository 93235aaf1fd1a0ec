"""MG025 not-null-column-without-db-default: a NOT NULL column without a database default that code
running during the deploy does not write, so its INSERTs fail."""

from __future__ import annotations

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext
from migration_guard.rules.compat import (
    CODE_FIRST,
    code_meeting_new_schema,
    column_change,
    deploy_of,
    drop_column_steps,
    field_call,
    order,
)
from migration_guard.rules.recipes import split_note

DOC = """\
## What it does
Finds a column that becomes NOT NULL without a database default while code that does not know the
column runs: `AddField` of a NOT NULL field with a `default` (Django adds the column with that default
and drops the default in the same migration: `ALTER COLUMN ... DROP DEFAULT`), raw `ADD COLUMN ...
NOT NULL` without a default, or a raw `DROP DEFAULT` of a column the running code does not have
(taken as NOT NULL when the migration does not say). With `deploy_order = "code_first"` also
`RemoveField` of a NOT NULL column without a database default: the new code no longer writes it,
but the column is still there until `migrate` drops it.

## Why is this bad?
Django's INSERT names only the columns the model has. The running code's INSERTs leave the new
column out, PostgreSQL has no default to fill it with, and `create()` fails with `null value in
column ... violates not-null constraint` until the last old process is gone.

## Example
```python
migrations.AddField("order", "status", models.CharField(max_length=20, default="new")),
```

## Use instead
A database default (Django 5+), which the old code's INSERTs get, or a nullable column:
```python
migrations.AddField("order", "status", models.CharField(max_length=20, default="new", db_default="new")),
```
"""


def check(ctx: StatementContext):
    deploy = deploy_of(ctx)
    if deploy is None:
        return
    code, whose = code_meeting_new_schema(ctx)
    for action in ctx.effects.actions:
        table, column = action.table, action.column
        if not column or ctx.is_new(table):
            continue
        if action.kind is ActionKind.DROP_COLUMN and order(ctx) == CODE_FIRST:
            yield from _removed_while_required(ctx, action, deploy)
            continue
        if code is None or code.table(table) is None or code.column(table, column) is not None:
            continue  # no such code, or it does not use the table, or it writes the column
        if action.kind is ActionKind.ADD_COLUMN:
            detail = action.detail
            if not detail.get("not_null") or detail.get("default") is not None or detail.get("identity") \
                    or detail.get("serial") or detail.get("generated_stored"):
                continue
        elif action.kind is not ActionKind.DROP_DEFAULT:
            continue
        changed = column_change(ctx, table, column)
        field = changed[1] if changed is not None else None
        if field is not None and field.written_on_insert:
            continue  # nullable (or its database default stays)
        yield ctx.finding(
            RULE, table=table, lock=action.mode, sized=False,
            message=f'"{column}" of "{table}" is NOT NULL without a database default'
            + (" (as far as the migration says)" if field is None else "")
            + f", and {whose}'s INSERTs into \"{table}\" leave it out, so they fail.",
            recipe=_recipe(changed, table, column),
        )


def _removed_while_required(ctx: StatementContext, action, deploy):
    used = deploy.running.column(action.table, action.column)
    if used is None or deploy.release is None or deploy.release.column(action.table, action.column) is not None:
        return
    model, field = used
    if field.written_on_insert:
        return
    yield ctx.finding(
        RULE, table=action.table, lock=action.mode, sized=False,
        message=f'The new code no longer writes "{action.column}" of "{action.table}" ({model.label}.{field.name}), '
        "which stays NOT NULL without a database default until migrate drops it, so its INSERTs fail meanwhile.",
        recipe="\n".join(drop_column_steps(model, field, action.table, code_first=True)),
    )


def _recipe(changed, table: str, column: str) -> str:
    if changed is None:
        return "\n".join([
            split_note("keep a database default on the column until every running INSERT names it"),
            f'-- e.g. do not run ALTER TABLE "{table}" ALTER COLUMN "{column}" DROP DEFAULT in this release,',
            "-- or add the column NULL and SET NOT NULL in a later release",
        ])
    change, field = changed
    call = "AddField" if change.operation == "AddField" else "AlterField"
    lines = []
    default = field.kwarg("default")
    if default is not None and _literal(default):
        lines += [split_note("a database default, which the old code's INSERTs get (Django 5+)"),
                  f'migrations.{call}("{change.model}", "{field.name}", {field_call(field, db_default=default)}),',
                  split_note("or nullable for now (NOT NULL in a later release, once all running code writes it)")]
    else:
        lines.append(split_note("nullable for now (NOT NULL in a later release, once all running code writes it), "
                                "or give it a db_default"))
    lines.append(f'migrations.{call}("{change.model}", "{field.name}", {field_call(field, null="True")}),')
    return "\n".join(lines)


def _literal(source: str) -> bool:
    """Whether a default's source is a constant that can be a db_default as it is."""
    return source[:1] in "'\"0123456789-" or source in {"True", "False"}


RULE = Rule(
    id="MG025",
    slug="not-null-column-without-db-default",
    severity=Severity.ERROR,
    summary="a NOT NULL column without a database default that the code running during the deploy does not write",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.ADD_COLUMN, ActionKind.DROP_DEFAULT, ActionKind.DROP_COLUMN}),
    claims=False,  # about the code around the deploy, not the statement's own work: MG010 still speaks
    sized=False,
)
