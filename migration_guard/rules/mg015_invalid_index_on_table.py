"""MG015 invalid-index-on-table: an INVALID index on a table a pending migration locks."""

from __future__ import annotations

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext
from migration_guard.rules.recipes import q, run_sql, split_note

DOC = """\
## What it does
On a live database, reports each INVALID index (`pg_index.indisvalid` false) on a table that a
pending migration locks, once per migration, at its first statement that locks the table.

## Why is this bad?
An INVALID index is what a failed `CREATE INDEX CONCURRENTLY` (or `REINDEX CONCURRENTLY`) leaves
behind. Queries never use it, so whatever it was built for is not there, yet every write still
pays for it; a migration that adds it again with `IF NOT EXISTS` keeps it invalid (MG014).

## Example
`shop_order_number_uniq` failed on duplicate rows during an earlier deploy; the pending migration
adds a column to `shop_order`.

## Use instead
```python
migrations.RunSQL('DROP INDEX CONCURRENTLY IF EXISTS "shop_order_number_uniq"', migrations.RunSQL.noop),
# (atomic = False), then build it again once what made it fail is fixed
```
"""


def check(ctx: StatementContext):
    if not ctx.invalid_indexes:
        return
    mentioned = {a.detail.get("name") for a in ctx.effects.actions
                 if a.kind in (ActionKind.CREATE_INDEX, ActionKind.DROP_INDEX)}
    for index, table in ctx.invalid_indexes:
        if index in mentioned:
            continue  # this statement is about that index (MG014, or the DROP that fixes it)
        yield ctx.finding(
            RULE,
            table=table,
            message=f'Index "{index}" on "{table}" is INVALID (a failed concurrent build left it): queries do not '
            "use it, writes still maintain it.",
            recipe="\n".join([
                split_note("a migration with atomic = False: drop it, then build it again once fixed"),
                run_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {q(index)}", None, indent=""),
            ]),
            sized=False,
        )


RULE = Rule(
    id="MG015",
    slug="invalid-index-on-table",
    severity=Severity.WARNING,
    summary="an INVALID index (left by a failed concurrent build) on a table a pending migration locks",
    doc=DOC,
    check=check,
    claims=False,
)
