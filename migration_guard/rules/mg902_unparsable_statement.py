"""MG902 unparsable-statement: SQL that PostgreSQL's parser (pglast) rejects."""

from __future__ import annotations

from migration_guard.model import Severity
from migration_guard.rules.base import Rule, StatementContext

DOC = """\
## What it does
Reports a statement that does not parse as PostgreSQL SQL (a typo in `RunSQL`, a template that
was not filled, SQL of another database).

## Why is this bad?
The gate cannot tell what it locks, so it blocks (fail closed); PostgreSQL would reject it too,
part-way through the deploy.

## Example
```python
migrations.RunSQL("ALTER TABEL shop_order ADD COLUMN note text"),
```

## Use instead
Fix the SQL; `migration-guard explain file.sql` checks a statement on its own.
"""


def check(ctx: StatementContext):
    if ctx.parsed.error is None:
        return
    yield ctx.finding(
        RULE,
        table=None,
        message=f"The statement does not parse: {ctx.parsed.error}.",
        recipe="# fix the SQL; `migration-guard explain` checks it on its own",
        sized=False,
    )


RULE = Rule(
    id="MG902",
    slug="unparsable-statement",
    severity=Severity.ERROR,
    summary="a statement does not parse, so what it locks is unknown",
    doc=DOC,
    check=check,
    sized=False,
)
