"""MG905 opaque-function-call: SELECT of a user function, CALL or DO: code the lock model cannot see into."""

from __future__ import annotations

from dataclasses import replace

from migration_guard.locks.modes import LockMode
from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext

DOC = """\
## What it does
Reports `SELECT f(...)` where `f` is not a known built-in function of PostgreSQL, `CALL p(...)`
and `DO $$ ... $$`: the code they run is not in the migration, so the gate cannot tell what it locks.
A PL/pgSQL `DO` block whose every statement the gate can list is judged as those statements instead
(each as if written in place, however often a loop runs it): static SQL, the queries of `IF`, `FOR`
and assignments, and `EXECUTE` of a constant or of `format()` of a constant template, as long as a
value known only when it runs names nothing the verdict depends on (the constraint of
`ALTER TABLE t RENAME CONSTRAINT %I TO %I`, not the table of `ALTER TABLE %I ...`). The finding
says why a block stays opaque.
Under `--scratch` a `DO` block or `CALL` is run on the scratch database and the finding names the
table locks it really took: then it is an error on a table above the threshold or of unknown size and
a warning below it, and a warning when it took no lock on an existing table.

## Why is this bad?
A function can run any statement: `ALTER TABLE`, `CREATE INDEX`, a backfill of every row. The gate
would pass it without knowing; it fails closed instead, and blocks until someone who knows what the
function does approves it.

## Example
```sql
SELECT create_hypertable('shop_event', 'created_at');
DO $$ BEGIN EXECUTE format('ALTER TABLE %I ADD COLUMN n serial', current_setting('app.table')); END $$;
```

## Use instead
Write the statements the function runs in the migration itself, so the gate can judge each one;
or check its locks with `migration-guard trace` and approve it with `migration-guard approve`.
"""


def check(ctx: StatementContext):
    calls = [a for a in ctx.effects.actions if a.kind is ActionKind.CALL]
    if not calls:
        return
    function = calls[0].detail.get("function")
    why = calls[0].detail.get("why")
    what = (f"a DO block ({why})" if why else "a DO block") if function == "DO" else f"{function}()"
    observed = ctx.parsed.statement.observed_locks
    if observed is not None:
        yield _observed(ctx, what, observed)
        return
    yield ctx.finding(
        RULE,
        table=None,
        message=f"This statement runs {what}, which the gate cannot see into: it may take any lock and run DDL.",
        recipe="# write the statements it runs in the migration itself (the gate judges each one),\n"
               "# or check its locks (migration-guard trace) and approve it with migration-guard approve",
        sized=False,
    )


def _observed(ctx: StatementContext, what: str, observed: tuple[tuple[str, str], ...]):
    """Under --scratch the gate ran it: the finding names the locks it really took on existing tables."""
    locks = [(table, LockMode.from_pg_name(mode)) for table, mode in observed if not ctx.is_new(table)]
    recipe = ("# check how long it holds them on production's sizes (migration-guard trace),\n"
              "# or write its statements in the migration itself; then approve it with migration-guard approve")
    if not locks:
        finding = ctx.finding(RULE, table=None, sized=False, recipe=recipe,
                              message=f"This statement runs {what}; run on the scratch database, it took no lock on "
                              "an existing table.")
        return replace(finding, severity=ctx.config.severity.get(RULE.id, Severity.WARNING))
    table, mode = max(locks, key=lambda item: (item[1], ctx.is_large(item[0])))
    taken = ", ".join(f'{m.label} on "{t}"' for t, m in sorted(locks, key=lambda item: (-item[1], item[0])))
    return ctx.finding(RULE, table=table, lock=mode, recipe=recipe,
                       message=f"This statement runs {what}, which the gate cannot see into; run on the scratch "
                       f"database, it took {taken}.")


RULE = Rule(
    id="MG905",
    slug="opaque-function-call",
    severity=Severity.ERROR,
    summary="SELECT of a function that is not a known built-in, CALL or DO: code the gate cannot see into",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.CALL}),
    sized=False,
)
