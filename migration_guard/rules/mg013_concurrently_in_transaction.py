"""MG013 concurrently-in-transaction: a statement that cannot run in a transaction block, inside one."""

from __future__ import annotations

from migration_guard.model import Severity
from migration_guard.rules.base import Rule, StatementContext
from migration_guard.rules.recipes import split_note

DOC = """\
## What it does
Finds `CREATE INDEX CONCURRENTLY`, `DROP INDEX CONCURRENTLY`, `REINDEX ... CONCURRENTLY`, `DETACH
PARTITION ... CONCURRENTLY` and `VACUUM` where they would run inside a transaction block: a
`RunSQL` in an atomic migration (Django's default), or raw SQL between `BEGIN` and `COMMIT`.

## Why is this bad?
PostgreSQL refuses them there (`cannot run inside a transaction block`): the migration fails at
deploy, whatever the size of the table. Rendering with `collect_sql` does not run the statement,
so nothing else says so before the deploy.

## Example
```python
class Migration(migrations.Migration):
    operations = [
        migrations.RunSQL('CREATE INDEX CONCURRENTLY "order_created_idx" ON "shop_order" ("created_at")'),
    ]
```

## Use instead
```python
class Migration(migrations.Migration):
    atomic = False  # no transaction around the operations

    operations = [
        migrations.RunSQL('CREATE INDEX CONCURRENTLY "order_created_idx" ON "shop_order" ("created_at")',
                          reverse_sql='DROP INDEX CONCURRENTLY IF EXISTS "order_created_idx"'),
    ]
```
In raw SQL, run the statement on its own, outside `BEGIN` ... `COMMIT`.
"""


def check(ctx: StatementContext):
    if not ctx.effects.needs_no_transaction or not ctx.in_transaction_block:
        return
    tables = [a.table for a in ctx.effects.actions if a.table]
    where = "this atomic migration" if ctx.operation is not None else "the transaction block opened by BEGIN"
    words = " ".join(ctx.sql.split()[:4])
    yield ctx.finding(
        RULE,
        table=tables[0] if tables else None,
        message=f"{words} ... cannot run inside a transaction block, so it fails at deploy in {where}.",
        recipe="\n".join([
            split_note("a migration of its own, with atomic = False" if ctx.operation is not None
                       else "run it on its own, outside BEGIN ... COMMIT"),
            "class Migration(migrations.Migration):",
            "    atomic = False",
        ]) if ctx.operation is not None else "-- outside BEGIN ... COMMIT, on its own",
        sized=False,
    )


RULE = Rule(
    id="MG013",
    slug="concurrently-in-transaction",
    severity=Severity.ERROR,
    summary="CREATE/DROP/REINDEX ... CONCURRENTLY (or VACUUM) inside a transaction block fails at deploy",
    doc=DOC,
    check=check,
    claims=False,
    sized=False,
)
