"""MG022 rename-column-in-use: renaming a column that code running during the deploy uses by name."""

from __future__ import annotations

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext
from migration_guard.rules.compat import CODE_FIRST, column_change, deploy_of, explain_rule, field_call, order, state_ops
from migration_guard.rules.recipes import split_note

DOC = """\
## What it does
Finds `RENAME COLUMN` (from `RenameField`, from an `AlterField` that changes `db_column`, or raw
SQL) of a column that code running during the deploy selects by its old name (`deploy_order =
"migrate_first"`, the default: the code of the applied migrations) or by its new one (`"code_first"`:
the new code runs before the column has it). `explain` warns on every renamed column.

## Why is this bad?
Django names every column in its queries: after the rename, every query of the old code on the
model fails with `column ... does not exist` (with code first, the new code's do, until `migrate`).

## Example
```python
migrations.RenameField("order", "note", "comment"),
```

## Use instead
Keep the column's name and rename the field in the models only:
```python
migrations.SeparateDatabaseAndState(state_operations=[
    migrations.RenameField("order", "note", "comment"),
    migrations.AlterField("order", "comment", models.TextField(db_column="note")),
]),
```
or move the data over several releases: add the new column, write both (in `save()` or a trigger),
backfill, switch reads to the new column, then remove the old one (MG020).
"""


def check(ctx: StatementContext):
    deploy = deploy_of(ctx)
    for action in ctx.effects.actions:
        if action.kind is not ActionKind.RENAME_COLUMN or not action.column or ctx.is_new(action.table):
            continue
        table, old, new = action.table, action.column, action.detail.get("new_name") or "?"
        if deploy is None:
            yield ctx.finding(
                explain_rule(RULE), table=table, lock=action.mode, sized=False,
                message=f'Renaming column "{old}" of "{table}" to "{new}" breaks any running code that still '
                "selects the old name (explain cannot see your code).",
                recipe="# keep the old column name (Django: db_column=), or add the new column, write both, "
                "backfill, switch reads, then drop the old one",
            )
            continue
        if order(ctx) == CODE_FIRST:
            code = deploy.release
            uses_new = code.column(table, new) if code is not None else None
            used = uses_new or (code.column(table, old) if code is not None else None)
            if used is None:
                continue
            name = new if uses_new else old
            why = (f'which selects "{name}" before migrate renames the column' if uses_new
                   else f'whose model {used[0].label} still selects "{old}"')
            message = f'Renaming column "{old}" of "{table}" to "{new}" breaks the new code, {why}.'
        else:
            used = deploy.running.column(table, old)
            if used is None:
                continue
            message = (f'Renaming column "{old}" of "{table}" to "{new}" breaks the running code, whose model '
                       f'{used[0].label} still selects "{old}".')
        model, field = used
        yield ctx.finding(RULE, table=table, lock=action.mode, sized=False, message=message,
                          recipe=_recipe(ctx, model.model_name, field, table, old, new))


def _recipe(ctx: StatementContext, model: str, field, table: str, old: str, new: str) -> str:
    changed = column_change(ctx, table, new)
    change, after = changed if changed is not None else (None, None)
    lines = [split_note("keep the column's name; only the model changes")]
    if change is not None and change.operation != "RenameField" and after is not None:
        lines.append(f'migrations.AlterField("{model}", "{after.name}", {field_call(after, db_column=repr(old))}),')
    else:
        renamed = change.field if change is not None and change.field else new
        target = after if after is not None else field
        lines.append(state_ops(
            "state_operations",
            f'migrations.RenameField("{model}", "{field.name}", "{renamed}")',
            f'migrations.AlterField("{model}", "{renamed}", {field_call(target, db_column=repr(old))})',
        ))
    lines += [
        split_note(f'or: deploy 1 adds "{new}" and the code writes both (save() or a trigger); backfill it'),
        split_note(f'deploy 2 reads "{new}"; deploy 3 removes "{old}" (MG020 shows how)'),
    ]
    return "\n".join(lines)


RULE = Rule(
    id="MG022",
    slug="rename-column-in-use",
    severity=Severity.ERROR,
    summary="RENAME COLUMN of a column the code running during the deploy selects by name",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.RENAME_COLUMN}),
    claims=False,  # about the code around the deploy, not the statement's own work: MG010 still speaks
    sized=False,
)
