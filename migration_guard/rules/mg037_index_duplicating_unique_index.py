"""MG037 index-duplicating-unique-index: an index on exactly the columns of a primary key or unique
constraint (or a second unique one), which PostgreSQL maintains on every write and never needs."""

from __future__ import annotations

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.advice import IndexDef, django_app, index_defs, plan_indexes
from migration_guard.rules.base import Rule, StatementContext

DOC = """\
## What it does
Finds a B-tree index on exactly the columns (in the same order) of a primary key, unique constraint
or unique index of the same table, from the same migration, an earlier one, or already in the
database: an
`Index(fields=["code"])` next to `unique=True`, a `UniqueConstraint` repeating `unique=True`, an
index on the primary key. Judged on the SQL Django renders: `unique=True, db_index=True` is not
reported, since Django creates one index for it; nor is the `..._like` index Django adds for
`LIKE` on `varchar`/`text` (another operator class); nor a partial or expression index.

## Why is this bad?
Every INSERT, every UPDATE of the columns and every VACUUM maintains both indexes, and both take disk
and cache, while the planner only ever needs one: the unique index already answers every lookup the
plain one could.

## Example
```python
migrations.AddField("coupon", "code", models.CharField(max_length=20, unique=True)),
migrations.AddIndex("coupon", models.Index(fields=["code"], name="coupon_code_idx")),
```

## Use instead
The unique constraint alone:
```python
migrations.AddField("coupon", "code", models.CharField(max_length=20, unique=True)),
```
"""


def _duplicate_of(ctx: StatementContext, index: IndexDef, position: int) -> str | None:
    """The name (or a description) of a unique index on the same columns, if any."""
    statements, here = ctx.statements, ctx.parsed.statement.migration
    for other_position, other in plan_indexes(ctx, index.table, index.columns):
        if other_position == position and other == index:
            continue
        if other_position > position and statements[other_position].statement.migration != here:
            continue  # a later migration's unique index: the plain one may well be dropped with it
        if not (other.unique and other.plain):  # (on the same columns: plan_indexes gave only those)
            continue
        if index.unique and other_position >= position:
            continue  # of two unique ones, the later one is the duplicate
        if other.name:
            return f'"{other.name}"'
        return "the primary key" if other.primary else "the unique constraint"
    catalog = ctx.catalog
    if catalog is not None:
        for name, columns in sorted(catalog.unique_constraints_on(index.table).items()):
            if tuple(columns) == index.columns and name != index.name:
                return f'"{name}"'
    return None


def check(ctx: StatementContext):
    if django_app(ctx) or ctx.parsed.node is None:
        return
    for index in index_defs(ctx.parsed.node):
        if not index.plain or index.primary:
            continue
        other = _duplicate_of(ctx, index, ctx.position)
        if other is None:
            continue
        columns = ", ".join(f'"{c}"' for c in index.columns)
        what = f'index "{index.name}"' if index.name else "unique constraint"
        yield ctx.finding(
            RULE, table=index.table, sized=False,
            message=f'The {what} on "{index.table}" ({columns}) duplicates {other}: every write maintains both, '
            "and queries only ever need one.",
            recipe="\n".join([
                '# drop the duplicate: remove it from the model (Meta.indexes, unique_together, db_index) or the SQL;',
                f"# {other} already serves every lookup on ({columns})",
            ]),
        )


RULE = Rule(
    id="MG037",
    slug="index-duplicating-unique-index",
    severity=Severity.INFO,
    summary="an index on exactly the columns of a primary key or unique constraint",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.CREATE_INDEX, ActionKind.ADD_CONSTRAINT, ActionKind.CREATE_TABLE,
                       ActionKind.ADD_COLUMN}),
    claims=False,
)
