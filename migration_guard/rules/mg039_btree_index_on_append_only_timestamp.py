"""MG039 btree-index-on-append-only-timestamp: a B-tree index on the creation time of a large table
whose rows look insert-only, where a BRIN index is a thousand times smaller."""

from __future__ import annotations

from migration_guard.model import ActionKind, FieldFacts, Severity
from migration_guard.rules.advice import (
    add_index_recipe,
    django_app,
    field_of,
    index_defs,
    index_name,
    known_large,
    model_of,
)
from migration_guard.rules.base import Rule, StatementContext
from migration_guard.rules.recipes import q

DOC = """\
## What it does
Finds a plain B-tree index on one `DateTimeField`/`DateField` set when the row is created
(`auto_now_add=True`, or `default=timezone.now`) of a table that exists, is above the size
threshold by its figure (no figure, no advice), and whose model has no `auto_now=True` field (nothing
says its rows are updated). Advice only: the question to ask is whether the table is append-only.

## Why is this bad?
On an append-only table the creation time follows the physical order of the rows, so a BRIN index
(one summary per block range) answers range filters (`created__gte=...`) almost as well as a B-tree,
at a tiny fraction of its size and write cost: a few hundred kilobytes for a table whose B-tree takes
gigabytes, and builds in seconds. It does not serve `ORDER BY created DESC LIMIT n` (the latest rows)
or single-row lookups, and it loses precision when rows are updated or deleted and their space reused:
keep the B-tree for those.

## Example
```python
AddIndexConcurrently("event", models.Index(fields=["created"], name="event_created_idx")),
```

## Use instead
```python
from django.contrib.postgres.indexes import BrinIndex

AddIndexConcurrently("event", BrinIndex(fields=["created"], autosummarize=True, name="event_created_brin")),
```
"""


def _set_on_create(field: FieldFacts | None) -> bool:
    if field is None or not field.path.endswith((".DateTimeField", ".DateField")):
        return False
    return field.kwarg("auto_now_add") == "True" or field.kwarg("default") in (
        "django.utils.timezone.now", "datetime.datetime.now", "datetime.date.today")


def check(ctx: StatementContext):
    if django_app(ctx) or ctx.parsed.node is None:
        return
    for index in index_defs(ctx.parsed.node):
        if not index.plain or index.unique or len(index.columns) != 1 or not known_large(ctx, index.table):
            continue
        column = index.columns[0]
        field = field_of(ctx, index.table, column)
        model = model_of(ctx, index.table)
        if not _set_on_create(field) or model is None:
            continue
        if any(f.kwarg("auto_now") == "True" for f in model[0].fields):
            continue  # rows are updated: the physical order drifts from the creation time
        brin = index_name(index.table, [field.name], "brin")
        yield ctx.finding(
            RULE, table=index.table, sized=False,
            message=f'If the rows of the large "{index.table}" are only ever inserted (its model has no auto_now field), '
            f'a BRIN index on "{column}" serves range filters at a tiny fraction of this B-tree\'s size and write cost '
            "(not ORDER BY ... LIMIT).",
            recipe=add_index_recipe(
                ctx, index.table, f'BrinIndex(fields=["{field.name}"], autosummarize=True, name="{brin}")',
                f"CREATE INDEX {q(brin)} ON {q(index.table)} USING brin ({q(column)}) WITH (autosummarize = on)",
                ("from django.contrib.postgres.indexes import BrinIndex",
                 "# if the table is append-only and queries filter on time ranges (keep the B-tree for 'latest n')")),
        )


RULE = Rule(
    id="MG039",
    slug="btree-index-on-append-only-timestamp",
    severity=Severity.INFO,
    summary="a B-tree index on the creation time of a large append-only table, where BRIN is far smaller",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.CREATE_INDEX}),
    claims=False,
)
