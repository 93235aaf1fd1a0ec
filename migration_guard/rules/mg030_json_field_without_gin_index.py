"""MG030 json-field-without-gin-index: a JSONField (a ``jsonb`` column) on a new or large table with no
GIN index, so filtering on its content reads every row."""

from __future__ import annotations

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.advice import (
    add_index_recipe,
    columns_with_fields,
    django_app,
    index_name,
    new_or_large,
    plan_indexes,
    statement_creates,
)
from migration_guard.rules.base import Rule, StatementContext
from migration_guard.rules.recipes import q

DOC = """\
## What it does
Finds a `JSONField` (or a raw `jsonb` column) added to a table that is large, or created with a new
table, when no GIN index in the same migration covers it. Advice only: a GIN index is worth its
write cost and disk only if queries filter on the field's content.

## Why is this bad?
The lookups that make JSON worth storing (`data__contains`, `data__has_key`, `data__tag="x"`) are
answered by a GIN index; without one, every such query reads every row of the table. Adding the
index later to a large table takes a long concurrent build.

## Example
```python
migrations.AddField("event", "payload", models.JSONField(default=dict)),
```

## Use instead
If the code filters on the field:
```python
from django.contrib.postgres.indexes import GinIndex

class Meta:
    indexes = [GinIndex(fields=["payload"], name="event_payload_gin")]
```
When queries only test containment (`payload__contains={...}`), the `jsonb_path_ops` operator
class makes a smaller, faster index (it does not serve `has_key`):
```python
from django.contrib.postgres.indexes import GinIndex, OpClass

GinIndex(OpClass("payload", name="jsonb_path_ops"), name="event_payload_gin")
```
If nothing filters on it, no index: disable this rule for the field's migration.
"""


def check(ctx: StatementContext):
    for definition, field in columns_with_fields(ctx):
        if definition.how == "alter" or definition.type.name != "jsonb" or definition.type.array:
            continue
        table, column = definition.table, definition.column
        if django_app(ctx) or not (statement_creates(ctx, table) or new_or_large(ctx, table)):
            continue
        if any(index.method == "gin" and index.reads(column) for _, index in plan_indexes(ctx, table)):
            continue
        name = field.name if field is not None else column
        what = f'JSONField "{name}"' if field is not None else f'jsonb column "{column}"'
        where = "new table" if statement_creates(ctx, table) or ctx.is_new(table) else "large table"
        yield ctx.finding(
            RULE, table=table, sized=False,
            message=f'The {what} of the {where} "{table}" has no GIN index, so filtering on its content '
            "(contains, has_key, key lookups) reads every row; worth an index only if queries filter on it.",
            recipe=_recipe(ctx, table, name, column),
        )


def _recipe(ctx: StatementContext, table: str, field: str, column: str) -> str:
    gin = index_name(table, [field], "gin")
    sql = f"CREATE INDEX {q(gin)} ON {q(table)} USING gin ({q(column)})  -- or ({q(column)} jsonb_path_ops)"
    imports = ("from django.contrib.postgres.indexes import GinIndex, OpClass",
               "# only if the code filters on the field; jsonb_path_ops: smaller and faster, containment (__contains) only",
               f'# GinIndex(OpClass("{field}", name="jsonb_path_ops"), name="{gin}")')
    return add_index_recipe(ctx, table, f'GinIndex(fields=["{field}"], name="{gin}")', sql, imports)


RULE = Rule(
    id="MG030",
    slug="json-field-without-gin-index",
    severity=Severity.INFO,
    summary="a JSONField on a new or large table has no GIN index, so filtering on its content reads every row",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.CREATE_TABLE, ActionKind.ADD_COLUMN}),
    claims=False,  # advice: the lock backstop still judges the statement's own work
)
