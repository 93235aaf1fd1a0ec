"""MG007 alter-column-type-rewriting: a column type change that rewrites an existing table."""

from __future__ import annotations

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext, lock_label
from migration_guard.rules.compat import column_change, state_ops
from migration_guard.rules.recipes import batched, not_null_steps, q, run_sql, set_not_null, split_note, target

DOC = """\
## What it does
Finds `ALTER COLUMN ... TYPE` that is not binary coercible from the old type (for example
`integer` -> `bigint`, `varchar(200)` -> `varchar(100)`, `text` -> `integer`), and type changes
whose old type the gate cannot know.

## Why is this bad?
PostgreSQL rewrites every row and rebuilds every index of the table while holding ACCESS
EXCLUSIVE: reads and writes wait until it ends. Binary-coercible changes (`varchar(n)` ->
`varchar(m)` with m >= n, -> `text`, dropping a length limit, raising numeric precision) only
touch the catalog.

## Example
```python
migrations.AlterField("order", "quantity", models.BigIntegerField()),  # was IntegerField
```

## Use instead
Expand and contract, over several deploys:
```python
# 1: a new nullable column of the new type
migrations.AddField("order", "quantity_new", models.BigIntegerField(null=True)),
# 2: write both columns from the application (or a trigger); backfill old rows in batches
#    from a non-atomic migration
# 3: switch reads to the new column; 4: remove the old column and rename the new one
```
"""


def check(ctx: StatementContext):
    for action in ctx.actions(ActionKind.ALTER_COLUMN_TYPE):
        if not action.rewrites:
            continue
        table, column = action.table, action.column or "?"
        old, new = action.detail.get("old_type"), action.detail.get("new_type") or "?"
        change = f"from {old} to {new}" if old else f"to {new} (old type unknown)"
        yield ctx.action_finding(
            RULE,
            action,
            work="rewrite",
            message=f'Changing "{column}" {change} rewrites all of "{table}" under {lock_label(action)}, blocking '
            "reads and writes.",
            recipe=_recipe(ctx, action),
        )


def _recipe(ctx: StatementContext, action) -> str:
    """Expand and contract over four deploys, each passing the gate with the code of the deploy before it
    running: a new column (the code then writes both); its rows filled in batches and, if the column is NOT
    NULL, the model saying so (the code then reads the new one); NOT NULL without a scan, the old column made
    nullable and, in the models, the new field taking the old one's name (the code then writes only the
    new one); the old column dropped."""
    table, column, detail = target(action), action.column or "?", action.detail
    catalog = ctx.catalog
    if detail.get("other_tables") or (catalog is not None and any(
            column in columns for columns in catalog.unique_constraints_on(table).values())):
        return "\n".join([
            "# the column is in a key (a primary key, a unique constraint or a foreign key changes with it): a new",
            "# column means new keys, and the tables that refer to them moved over, deploy by deploy; or change it",
            "# in a maintenance window and approve it"])
    new_type = detail.get("new_type") or "?"
    new = f"{column}_new"
    value = detail.get("using") or f"CAST({q(column)} AS {new_type})"
    found = column_change(ctx, table, column)
    found = found if found is not None and found[0].operation == "AlterField" else None
    lines = [split_note("deploy 1: a new nullable column of the new type")]
    if found is not None:
        change, field = found
        before = change.field_before
        not_null, was_not_null = not field.null, before is not None and not before.null
        name = f"{field.name}_new"
        own = {} if field.column == field.name else {"db_column": repr(new)}
        imports = [line for line in field.imports if line != "from django.db import models"]
        # the new field under another name: its own column, nullable, no default to fill old rows with
        added = field.source(**{"null": "True", "db_column": None, "db_default": None, "default": None, "unique": None,
                                "primary_key": None, "db_index": None, **own})
        indexed = field.kwarg("db_index") == "True"
        lines += [*imports, f'migrations.AddField("{change.model}", "{name}", {added}),']
        filled = ([split_note("migration 3: the model says NOT NULL (the code writes no NULL to it)"), *imports,
                   state_ops("state_operations", f'migrations.AlterField("{change.model}", "{name}", '
                                                 f'{field.source(db_column=None, **own)})')] if not_null else [])
        renamed = [*imports, state_ops(
            "state_operations", f'migrations.RemoveField("{change.model}", "{field.name}")',
            f'migrations.RenameField("{change.model}", "{name}", "{field.name}")',
            f'migrations.AlterField("{change.model}", "{field.name}", {field.source(db_column=repr(new))})')]
    else:
        not_null = was_not_null = catalog is not None and catalog.is_not_null(table, column)
        indexed = True  # as far as anyone knows: raw SQL says nothing of the column's default and CHECKs
        collate = f" COLLATE {q(detail['collation'])}" if detail.get("collation") else ""
        lines.append(run_sql(f"ALTER TABLE {q(table)} ADD COLUMN {q(new)} {new_type}{collate}",
                             f"ALTER TABLE {q(table)} DROP COLUMN {q(new)}", indent=""))
        filled = []
        renamed = ["# the application stops writing the old column (Django: its field leaves the models, "
                   "SeparateDatabaseAndState(state_operations=[RemoveField(...)]))"]
    number = 3 + bool(filled)
    lines += [
        "# the application writes both columns from now on (or a trigger does)",
        split_note("deploy 2, migration 2, with atomic = False: the rows there are, 10,000 at a time"),
        *batched(table, f"UPDATE {q(table)} SET {q(new)} = {value.replace('%', '%%')} WHERE {q(new)} IS NULL "
                        'AND "id" >= %s AND "id" < %s'),
        *filled,
        "# the application reads the new column from now on",
    ]
    third = f"deploy 3, migration {number}: "
    if not_null:
        lines += not_null_steps(table, new, number, [set_not_null(table, new)], prefix="deploy 3, ")
        number += 3
        third = f"migration {number}: "
    if was_not_null or found is not None:
        lines += [split_note(third + "the old column accepts NULL (nothing writes it from now on)"
                             + ("; in the models the new field takes its name" if found is not None else ""))]
        if was_not_null:
            lines.append(run_sql(f"ALTER TABLE {q(table)} ALTER COLUMN {q(column)} DROP NOT NULL",
                                 f"ALTER TABLE {q(table)} ALTER COLUMN {q(column)} SET NOT NULL", indent=""))
        lines += renamed
    lines += [
        split_note("deploy 4: the old column goes"),
        run_sql(f"ALTER TABLE {q(table)} DROP COLUMN {q(column)}", None, indent=""),
    ]
    if indexed:
        lines.insert(1, "# the old column's indexes, default and CHECKs, if any: the new column's too, made in deploy 2 "
                        "(CREATE INDEX CONCURRENTLY, ADD CONSTRAINT ... NOT VALID)")
    return "\n".join(lines)


RULE = Rule(
    id="MG007",
    slug="alter-column-type-rewriting",
    severity=Severity.ERROR,
    summary="ALTER COLUMN TYPE that is not binary coercible rewrites the table while blocking reads and writes",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.ALTER_COLUMN_TYPE}),
)
