"""MG038 btree-index-on-json-array-or-tsvector: a B-tree index on a ``jsonb``, array or ``tsvector``
column (``db_index=True`` on a JSONField or ArrayField), which the queries on such columns never use."""

from __future__ import annotations

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.advice import (
    add_index_recipe,
    column_type,
    django_app,
    field_of,
    index_defs,
    index_name,
    model_name,
)
from migration_guard.rules.base import Rule, StatementContext
from migration_guard.rules.compat import field_call
from migration_guard.rules.recipes import q

DOC = """\
## What it does
Finds a B-tree index (the default kind: `db_index=True`, `models.Index`, plain `CREATE INDEX`) on a
`jsonb`/`json`, array or `tsvector` column: `JSONField(db_index=True)`, `ArrayField(db_index=True)`,
`SearchVectorField(db_index=True)`.

## Why is this bad?
The lookups these columns are for — `data__contains`, `data__has_key`, `tags__contains`,
`tags__overlap`, full-text `search` — are answered by GIN indexes; a B-tree on the whole value only
serves equality of the entire document or array, which queries almost never test. It costs a write
on every INSERT and UPDATE, and a B-tree entry is limited to about 2,700 bytes: a larger value makes
the INSERT fail (`index row size exceeds btree version 4 maximum`).

## Example
```python
migrations.AddField("article", "tags", ArrayField(models.CharField(max_length=50), db_index=True)),
```

## Use instead
```python
from django.contrib.postgres.indexes import GinIndex

migrations.AddField("article", "tags", ArrayField(models.CharField(max_length=50))),
migrations.AddIndex("article", GinIndex(fields=["tags"], name="article_tags_gin")),
```
"""


def _kind(sql_type) -> str | None:
    if sql_type is None:
        return None
    if sql_type.array:
        return "an array"
    return {"jsonb": "jsonb", "json": "json", "tsvector": "tsvector"}.get(sql_type.name)


def check(ctx: StatementContext):
    if django_app(ctx) or ctx.parsed.node is None:
        return
    for index in index_defs(ctx.parsed.node):
        if index.method != "btree" or index.unique:
            continue
        for column in index.columns:
            kind = _kind(column_type(ctx, index.table, column)) if column else None
            if kind is None:
                continue
            field = field_of(ctx, index.table, column)
            name = field.name if field is not None else column
            lines = []
            if field is not None and field.kwarg("db_index") == "True":
                lines += ["# the B-tree comes from db_index=True: drop it",
                          f'migrations.AlterField({model_name(ctx, index.table)}, "{name}", '
                          f"{field_call(field, db_index=None)}),"]
            gin = index_name(index.table, [name], "gin")
            sql = f"CREATE INDEX {q(gin)} ON {q(index.table)} USING gin ({q(column)})"
            if index.name and field is None:
                lines.append(f"-- instead of {q(index.name)}:")
            lines.append(add_index_recipe(ctx, index.table, f'GinIndex(fields=["{name}"], name="{gin}")', sql,
                                          ("from django.contrib.postgres.indexes import GinIndex",)))
            yield ctx.finding(
                RULE, table=index.table, sized=False,
                message=f'The B-tree index {_named(index.name)}on "{index.table}"."{column}" ({kind}) serves only '
                "equality of the whole value: containment and key lookups need GIN, and values over ~2.7 kB "
                "fail to insert.",
                recipe="\n".join(lines),
            )


def _named(name: str | None) -> str:
    return f'"{name}" ' if name else ""


RULE = Rule(
    id="MG038",
    slug="btree-index-on-json-array-or-tsvector",
    severity=Severity.WARNING,
    summary="a B-tree index on a jsonb, array or tsvector column, where GIN is the index queries use",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.CREATE_INDEX}),
    claims=False,
)
