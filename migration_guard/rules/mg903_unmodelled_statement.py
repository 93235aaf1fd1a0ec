"""MG903 unmodelled-statement: a statement kind the lock model does not know."""

from __future__ import annotations

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext

DOC = """\
## What it does
Reports a statement whose kind the lock model does not cover. The gate assumes it takes ACCESS
EXCLUSIVE on every relation it names, which blocks all reads and writes.

## Why is this bad?
An assumption is not an analysis: on a large table the gate blocks (fail closed) until someone
who knows what the statement does approves it.

## Example
```sql
CREATE PUBLICATION shop_pub FOR TABLE shop_order;
```

## Use instead
Approve it with `migration-guard approve` after checking its locks
(`migration-guard trace` measures them on a throwaway server), or report the statement kind so
the model can learn it.
"""


def check(ctx: StatementContext):
    if ctx.effects.known or ctx.parsed.error is not None or ctx.parsed.limit is not None or ctx.is_python:
        return
    tables = [a.table for a in ctx.effects.actions if a.kind is ActionKind.UNKNOWN and a.table]
    existing = [t for t in tables if not ctx.is_new(t)]
    if tables and not existing:
        return  # only tables created in this plan: nobody is waiting on them
    target = next((t for t in existing if ctx.is_large(t)), existing[0] if existing else None)
    kind = type(ctx.parsed.node).__name__ if ctx.parsed.node is not None else "statement"
    named = ", ".join(f'"{t}"' for t in existing) or "no table"
    yield ctx.finding(
        RULE,
        table=target,
        message=f"The lock model does not know {kind}; it assumes ACCESS EXCLUSIVE on {named}.",
        recipe="# check its locks (migration-guard trace), then approve it with migration-guard approve",
        sized=target is not None,
    )


RULE = Rule(
    id="MG903",
    slug="unmodelled-statement",
    severity=Severity.ERROR,
    summary="a statement kind the lock model does not know: assumed to block everything it names",
    doc=DOC,
    check=check,
)
