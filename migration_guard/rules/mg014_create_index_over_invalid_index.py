"""MG014 create-index-over-invalid-index: CREATE INDEX of a name an INVALID index already has."""

from __future__ import annotations

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext
from migration_guard.rules.recipes import q, run_sql, split_note

DOC = """\
## What it does
On a live database (the release gate, `--database`, or `explain --dsn`), finds `CREATE INDEX` (Django's
`AddIndex`, `AddIndexConcurrently`) whose index name is already taken by an INVALID index: the
leftover of a `CREATE INDEX CONCURRENTLY` that failed (duplicates for a unique index, a deadlock, a
cancelled deploy).

## Why is this bad?
With `IF NOT EXISTS` the statement succeeds and builds nothing: the index stays INVALID, queries
never use it (but every write still updates it), and the migration is recorded as applied. Without
`IF NOT EXISTS` it fails at deploy (`relation "..." already exists`).

## Example
```sql
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "order_number_uniq" ON "shop_order" ("number");
```

## Use instead
```python
class Migration(migrations.Migration):
    atomic = False

    operations = [
        migrations.RunSQL('DROP INDEX CONCURRENTLY IF EXISTS "order_number_uniq"', migrations.RunSQL.noop),
        # then the CREATE INDEX CONCURRENTLY (fix what made it fail first: duplicates, ...)
    ]
```
"""


def check(ctx: StatementContext):
    for action in ctx.actions(ActionKind.CREATE_INDEX, on_new_tables=True):
        if not action.detail.get("existing_invalid"):
            continue
        name, table = action.detail["name"], action.table
        outcome = ("succeeds without building anything and leaves it INVALID (unused by queries)"
                   if action.detail.get("if_not_exists") else 'fails at deploy ("already exists")')
        yield ctx.action_finding(
            RULE,
            action,
            message=f'Index "{name}" on "{table}" already exists and is INVALID, so this CREATE INDEX {outcome}.',
            recipe="\n".join([
                split_note("first, in the same migration (atomic = False): drop the invalid index"),
                run_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {q(name)}", None, indent=""),
                split_note("then build it again (after fixing what made it fail, e.g. duplicate rows)"),
            ]),
            sized=False,
        )


RULE = Rule(
    id="MG014",
    slug="create-index-over-invalid-index",
    severity=Severity.ERROR,
    summary="CREATE INDEX of a name an INVALID index has: IF NOT EXISTS leaves it invalid, otherwise it fails",
    doc=DOC,
    check=check,
    sized=False,
)
