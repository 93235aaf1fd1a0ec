"""MG905 opaque-function-call: SELECT of a user function, CALL or DO: code the lock model cannot see into."""

from __future__ import annotations

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext

DOC = """\
## What it does
Reports `SELECT f(...)` where `f` is not a known built-in function of PostgreSQL, `CALL p(...)`
and `DO $$ ... $$`: the code they run is not in the migration, so the gate cannot tell what it locks.

## Why is this bad?
A function can run any statement: `ALTER TABLE`, `CREATE INDEX`, a backfill of every row. The gate
would pass it without knowing; it fails closed instead, and blocks until someone who knows what the
function does approves it.

## Example
```sql
SELECT create_hypertable('shop_event', 'created_at');
DO $$ BEGIN EXECUTE 'ALTER TABLE shop_order ADD COLUMN n serial'; END $$;
```

## Use instead
Write the statements the function runs in the migration itself, so the gate can judge each one;
or check its locks with `migration-guard trace` and approve it with `migration-guard approve`.
"""


def check(ctx: StatementContext):
    calls = [a.detail.get("function") for a in ctx.effects.actions if a.kind is ActionKind.CALL]
    if not calls:
        return
    what = "a DO block" if calls[0] == "DO" else f"{calls[0]}()"
    yield ctx.finding(
        RULE,
        table=None,
        message=f"This statement runs {what}, which the gate cannot see into: it may take any lock and run DDL.",
        recipe="# write the statements it runs in the migration itself (the gate judges each one),\n"
               "# or check its locks (migration-guard trace) and approve it with migration-guard approve",
        sized=False,
    )


RULE = Rule(
    id="MG905",
    slug="opaque-function-call",
    severity=Severity.ERROR,
    summary="SELECT of a function that is not a known built-in, CALL or DO: code the gate cannot see into",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.CALL}),
)
