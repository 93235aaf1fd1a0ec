"""MG036 foreign-key-without-index: a foreign key column no index starts with (``ForeignKey(...,
db_index=False)``, or raw SQL ``REFERENCES`` with no index), so deleting a referenced row scans the
referencing table."""

from __future__ import annotations

from migration_guard.model import ActionKind, FieldFacts, Severity
from migration_guard.rules.advice import (
    add_index_recipe,
    column_defs,
    django_app,
    field_of,
    foreign_key_defs,
    index_name,
    model_name,
    plan_indexes,
    same_table,
    statement_creates,
)
from migration_guard.rules.base import Rule, StatementContext
from migration_guard.rules.compat import field_call
from migration_guard.rules.recipes import q

DOC = """\
## What it does
Finds a foreign key whose column no index starts with: a `ForeignKey(..., db_index=False)` added or
created (or altered to `db_index=False`, which drops its index), and a raw SQL `REFERENCES` when no
index in the same migration (or already in the database) starts with the column. An index or unique
constraint that starts with the column (`unique_together = [("order", "line")]`) counts. Not
reported: `db_constraint=False` with `on_delete=DO_NOTHING` (nothing looks the rows up).

## Why is this bad?
Deleting (or changing the key of) a row of the referenced table makes PostgreSQL check the
referencing table for rows that point at it, and Django's `on_delete` collector queries it too:
without an index each of those is a scan of the whole referencing table, while the referenced row
stays locked. A bulk delete on the parent becomes one full scan per row.

## Example
```python
migrations.AddField("line", "order", models.ForeignKey("shop.order", on_delete=models.CASCADE, db_index=False)),
```

## Use instead
Keep Django's index (the default), or an index that starts with the column:
```python
migrations.AddField("line", "order", models.ForeignKey("shop.order", on_delete=models.CASCADE)),
```
"""


def _unindexed(field: FieldFacts | None) -> bool:
    if field is None or not field.path.endswith(".ForeignKey"):
        return False
    if field.kwarg("db_index") != "False":
        return False
    on_delete = field.kwarg("on_delete") or ""
    return not (field.kwarg("db_constraint") == "False" and on_delete.endswith("DO_NOTHING"))


def _indexed(ctx: StatementContext, table: str, column: str) -> bool:
    """Whether an index of this migration, or of the database, starts with ``column``."""
    if any(index.columns[:1] == (column,) and not index.partial for _, index in plan_indexes(ctx, table)):
        return True
    catalog = ctx.catalog
    if catalog is None:
        return False
    bare = table.split(".")[-1].strip('"')
    return any(same_table(owner, bare) and catalog.index_columns.get(index, ())[:1] == (column,)
               for index, owner in catalog.indexes.items())


def check(ctx: StatementContext):
    if django_app(ctx) or ctx.parsed.node is None:
        return
    seen: set[tuple[str, str]] = set()
    operation = ctx.operation
    # a Django field: where its column is created, or where AlterField drops its index
    candidates = [(d.table, d.column) for d in column_defs(ctx.parsed.node) if d.how != "alter"]
    if operation is not None and operation.name == "AlterField" and any(
            a.kind is ActionKind.DROP_INDEX for a in ctx.effects.actions):
        for change in operation.changes:
            after, before = change.field_after, change.field_before
            if change.after is not None and after is not None and after.column and _unindexed(after) \
                    and before is not None and not _unindexed(before):
                candidates.append((change.after.db_table, after.column))
    for table, column in candidates:
        field = field_of(ctx, table, column)
        if not _unindexed(field) or _indexed(ctx, table, column):
            continue
        seen.add((table, column))
        yield _finding(ctx, table, column, field)
    # raw SQL: REFERENCES with no index (a Django ForeignKey's constraint comes with its index, or is judged above)
    if operation is not None and operation.changes:
        return
    for fk in foreign_key_defs(ctx.parsed.node):
        column = fk.columns[0] if fk.columns else None
        if column is None or (fk.table, column) in seen or _indexed(ctx, fk.table, column):
            continue
        field = field_of(ctx, fk.table, column)
        if field is not None and field.kwarg("db_index") != "False":
            continue  # a ForeignKey Django indexed
        yield _finding(ctx, fk.table, column, field, referenced=fk.referenced)


def _finding(ctx: StatementContext, table: str, column: str, field: FieldFacts | None, referenced: str | None = None):
    if referenced is not None:
        parent = f'"{referenced}"'
    else:
        parent = field.related_model if field is not None and field.related_model else "the referenced table"
    if field is not None and (ctx.is_new(table) or statement_creates(ctx, table)):
        recipe = "\n".join([
            "# keep Django's index on the foreign key (the default): the table is new, the index costs nothing now",
            f'migrations.AlterField({model_name(ctx, table)}, "{field.name}", {field_call(field, db_index=None)}),',
        ])
    elif field is not None:
        name = index_name(table, [column], "idx")
        recipe = add_index_recipe(ctx, table, f'models.Index(fields=["{field.name}"], name="{name}")', "",
                                  ("# the table has rows: build the index concurrently (db_index=True would not)",))
    else:
        name = index_name(table, [column], "idx")
        recipe = f"-- CREATE INDEX CONCURRENTLY {q(name)} ON {q(table)} ({q(column)});  (in a migration with atomic = False)"
    return ctx.finding(
        RULE, table=table, sized=False,
        message=f'No index starts with the foreign key "{column}" of "{table}", so every delete in {parent} '
        f'scans "{table}" for rows pointing at it.',
        recipe=recipe,
    )


RULE = Rule(
    id="MG036",
    slug="foreign-key-without-index",
    severity=Severity.WARNING,
    summary="a foreign key column no index starts with, so deletes in the referenced table scan this one",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.CREATE_TABLE, ActionKind.ADD_COLUMN, ActionKind.ADD_CONSTRAINT,
                       ActionKind.DROP_INDEX}),
    claims=False,
)
