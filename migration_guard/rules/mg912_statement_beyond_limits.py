"""MG912 statement-beyond-limits: a statement too large or nested too deeply for the gate to analyse."""

from __future__ import annotations

from migration_guard.model import Severity
from migration_guard.rules.base import Rule, StatementContext

DOC = """\
## What it does
Reports a statement the gate did not analyse because it is beyond what it reads in bounded time
and memory: larger than 1,000,000 bytes, or nested hundreds of levels deep (a `CHECK` of a
thousand terms added together, a hundred subqueries inside each other).

## Why is this bad?
What it locks is unknown, so the gate blocks (fail closed). Such statements are usually
generated: data in bulk in one `INSERT`, a list of values spelled out as operators.

## Example
```python
migrations.RunSQL("ALTER TABLE shop_order ADD CONSTRAINT total_known CHECK (a1 + a2 + a3 + ... + a1000 >= 0)"),
```

## Use instead
Split the statement; write a long list of values as `= ANY (ARRAY[...])` or `IN (...)`; load data
with `COPY` or a batched `RunPython`. If it must stay, check its locks with `migration-guard trace`
and approve it.
"""


def check(ctx: StatementContext):
    if ctx.parsed.limit is None:
        return
    yield ctx.finding(
        RULE,
        table=None,
        message=f"The statement was not analysed: {ctx.parsed.limit}.",
        recipe="# split the statement, or write long value lists as = ANY (ARRAY[...]);\n"
               "# bulk data: COPY or a batched RunPython",
        sized=False,
    )


RULE = Rule(
    id="MG912",
    slug="statement-beyond-limits",
    severity=Severity.ERROR,
    summary="a statement too large or nested too deeply to analyse, so what it locks is unknown",
    doc=DOC,
    check=check,
    sized=False,
)
