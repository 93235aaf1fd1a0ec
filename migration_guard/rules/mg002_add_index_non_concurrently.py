"""MG002 add-index-non-concurrently: CREATE INDEX without CONCURRENTLY on an existing table."""

from __future__ import annotations

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext, lock_label
from migration_guard.rules.recipes import model_ref, q, split_note

DOC = """\
## What it does
Finds `CREATE INDEX` without `CONCURRENTLY` on a table that already exists (Django's `AddIndex`,
`db_index=True`, the index of a new `ForeignKey`).

## Why is this bad?
A plain index build holds a SHARE lock for the whole build: reads continue, but every INSERT,
UPDATE and DELETE on the table waits until the index is complete.

## Example
```python
migrations.AddIndex("order", models.Index(fields=["created_at"], name="order_created_idx")),
```

## Use instead
```python
from django.contrib.postgres.operations import AddIndexConcurrently

class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    operations = [
        AddIndexConcurrently("order", models.Index(fields=["created_at"], name="order_created_idx")),
    ]
```
A concurrent build that fails leaves an INVALID index behind: drop it and run the migration again.
"""


def check(ctx: StatementContext):
    for action in ctx.actions(ActionKind.CREATE_INDEX):
        if action.detail.get("concurrently") or not action.builds_index:
            continue
        table = action.table
        name = action.detail.get("name") or "<index name>"
        yield ctx.action_finding(
            RULE,
            action,
            work="index",
            message=f'Building index "{name}" on "{table}" without CONCURRENTLY holds {lock_label(action, "SHARE")}, '
            "which blocks writes for the whole build.",
            recipe=_recipe(ctx, table, name, action.detail),
        )


def _recipe(ctx: StatementContext, table: str, name: str, detail: dict) -> str:
    columns = detail.get("columns") or ()
    fields = ", ".join(f'"{c}"' for c in columns) or '"..."'
    unique = detail.get("unique")
    lines = [split_note("a migration of its own, with atomic = False")]
    operation = ctx.operation
    if operation is not None and operation.name in {"AddField", "AlterField", "CreateModel"}:
        lines.append("# the field's index comes from db_index=True or a ForeignKey: set db_index=False on it,")
        lines.append("# then add the index concurrently:")
    if unique:
        cols = ", ".join(q(c) for c in columns) or "..."
        lines += [
            "migrations.RunSQL(",
            f"    'CREATE UNIQUE INDEX CONCURRENTLY {q(name)} ON {q(table)} ({cols})',",
            f"    reverse_sql='DROP INDEX CONCURRENTLY IF EXISTS {q(name)}',",
            "),",
        ]
    else:
        lines.append("from django.contrib.postgres.operations import AddIndexConcurrently")
        lines.append(f"AddIndexConcurrently({model_ref(ctx, table)}, models.Index(fields=[{fields}], name=\"{name}\")),")
    return "\n".join(lines)


RULE = Rule(
    id="MG002",
    slug="add-index-non-concurrently",
    severity=Severity.ERROR,
    summary="CREATE INDEX without CONCURRENTLY blocks writes to an existing table for the whole build",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.CREATE_INDEX}),
)
