"""MG026 not-null-while-code-writes-null: a column made NOT NULL while code running during the deploy
may write NULL to it (or, with code first, made nullable only after the new code writes NULL)."""

from __future__ import annotations

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext
from migration_guard.rules.compat import (
    CODE_FIRST,
    code_meeting_new_schema,
    column_change,
    column_operation,
    database_then_models,
    deploy_of,
    field_call,
    order,
    state_ops,
)
from migration_guard.rules.recipes import not_null_steps, run_sql, set_not_null, split_note

DOC = """\
## What it does
Finds `SET NOT NULL` (from an `AlterField` from `null=True` to `null=False`, or raw SQL), and a
`CHECK (col IS NOT NULL)` or `NOT NULL` constraint, even `NOT VALID`, on a column whose field is
`null=True` in the code running during the deploy (`deploy_order = "migrate_first"`, the default:
the code of the applied migrations). With `"code_first"`, also `DROP NOT NULL` (an `AlterField` to
`null=True`): the new code may write NULL before `migrate` allows it.

## Why is this bad?
A `null=True` field is written as NULL whenever the code leaves it empty; the old code's `create()`
and `save()` then fail with `null value in column ... violates not-null constraint` until its last
process is gone. (A `NOT VALID` constraint skips the existing rows, not new writes.)

## Example
```python
migrations.AlterField("order", "note", models.TextField()),  # was TextField(null=True)
```

## Use instead
Two releases: the code stops writing NULL (the model only), then the constraint:
```python
migrations.SeparateDatabaseAndState(state_operations=[
    migrations.AlterField("order", "note", models.TextField()),
]),
# next release: the constraint in the database (the model already has it); on a large table without the
# scan, as MG003 shows (CHECK NOT VALID, VALIDATE, then SET NOT NULL)
migrations.RunSQL('ALTER TABLE "shop_order" ALTER COLUMN "note" SET NOT NULL',
                  'ALTER TABLE "shop_order" ALTER COLUMN "note" DROP NOT NULL'),
```
"""


def check(ctx: StatementContext):
    deploy = deploy_of(ctx)
    if deploy is None:
        return
    code, whose = code_meeting_new_schema(ctx)
    for action in ctx.effects.actions:
        table = action.table
        if ctx.is_new(table):
            continue
        if action.kind is ActionKind.DROP_NOT_NULL and order(ctx) == CODE_FIRST and deploy.release is not None:
            used = deploy.release.column(table, action.column)
            if used is not None and used[1].null:
                model, field = used
                yield ctx.finding(
                    RULE, table=table, lock=action.mode, sized=False,
                    message=f'The new code may write NULL to "{action.column}" of "{table}" ({model.label}.'
                    f"{field.name} is null=True) before migrate drops its NOT NULL.",
                    recipe=database_then_models(
                        f'migrations.AlterField("{model.model_name}", "{field.name}", {field_call(field)})',
                        "the column accepts NULL"),
                )
            continue
        if action.kind is ActionKind.SET_NOT_NULL:
            columns: tuple = (action.column,)
        elif action.kind is ActionKind.ADD_CONSTRAINT:
            detail = action.detail
            columns = tuple(detail.get("not_null_columns") or ())
            if detail.get("contype") == "not_null":
                columns += tuple(detail.get("columns") or ())
        else:
            continue
        for column in columns:
            used = code.column(table, column) if code is not None else None
            if used is None or not used[1].null:
                continue
            model, field = used
            yield ctx.finding(
                RULE, table=table, lock=action.mode, sized=False,
                message=f'"{column}" of "{table}" becomes NOT NULL while {whose} may write NULL to it '
                f"({model.label}.{field.name} is null=True).",
                recipe=_code_then_constraint(ctx, model.model_name, field, table, column, action),
            )


def _code_then_constraint(ctx: StatementContext, model: str, field, table: str, column: str, action) -> str:
    """The code stops writing NULL in one release, the constraint comes in the next: as the migration
    has it, or, when it would scan a large table, without the scan (MG003's way)."""
    changed = column_change(ctx, table, column)
    target = changed[1] if changed is not None else None
    shown = field_call(target) if target is not None else field_call(field, null=None)
    lines = [
        split_note("deploy 1: the code stops writing NULL; only the model changes"),
        *[line for line in (target or field).imports if line != "from django.db import models"],
        state_ops("state_operations", f'migrations.AlterField("{model}", "{field.name}", {shown})'),
    ]
    own = column_operation(ctx, table, column) is not None
    if action.kind is ActionKind.SET_NOT_NULL and (own or action.scans and ctx.is_large(table)):
        # the migration's AlterField would do nothing more: the model already has it; SET NOT NULL on its own
        then = [set_not_null(table, column) if own else run_sql(ctx.sql_of(action).strip().rstrip(";"), None, indent="")]
        if action.scans and ctx.is_large(table):
            return "\n".join([*lines, *not_null_steps(table, column, 1, then, prefix=_DEPLOY_2)])
        return "\n".join([*lines, split_note(f"{_DEPLOY_2}NOT NULL"), *then])
    return "\n".join([*lines, split_note(f"{_DEPLOY_2}this migration as you wrote it")])


_DEPLOY_2 = "deploy 2, once no running code writes NULL: "


RULE = Rule(
    id="MG026",
    slug="not-null-while-code-writes-null",
    severity=Severity.ERROR,
    summary="NOT NULL on a column the code running during the deploy may write NULL to",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.SET_NOT_NULL, ActionKind.ADD_CONSTRAINT, ActionKind.DROP_NOT_NULL}),
    claims=False,  # about the code around the deploy, not the statement's own work: MG010 still speaks
    sized=False,
)
