"""MG910 write-during-lint: migration code sent a statement on the target database that the gate
refused, because it is not a read."""

from __future__ import annotations

import hashlib

from migration_guard.guard import READ_ONLY, shorten_sql
from migration_guard.model import Finding, Severity
from migration_guard.rules.base import MigrationContext, Rule

DOC = """\
## What it does
Reports a statement that a migration's own code (a custom operation's `database_forwards`, code
run when the file is imported) tried to send on the database the gate lints, which the gate
refused: anything but a read — DDL, DML, `COMMIT`, `SET`, `RESET`, `SET SESSION CHARACTERISTICS
AS TRANSACTION READ WRITE`, a function such as `set_config()`.

## Why is this bad?
The gate promises never to write to the database it checks, which is often production. The
statement was not sent, so the migration's rendering is incomplete, and code that writes while
it is only being rendered will do surprising things when `migrate` runs it too.

## Example
```python
class Backfill(migrations.operations.base.Operation):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        schema_editor.connection.cursor().execute("UPDATE shop_order SET note = ''")
```

## Use instead
Send SQL through `schema_editor.execute()` (which the gate collects without running), or use
`RunSQL`/`RunPython`, which the gate sees for what they are.
"""


def check_migration(ctx: MigrationContext):
    for refusal in ctx.rendered.refused:
        if refusal.mode != READ_ONLY:
            continue
        yield Finding(
            rule=RULE.id,
            slug=RULE.slug,
            severity=ctx.config.severity.get(RULE.id, RULE.severity),
            message=f"Migration {ctx.rendered.label} sent {shorten_sql(refusal.sql, 160)!r} while it was rendered; the gate "
                    f"refused to send it: {refusal.reason}.",
            migration=ctx.rendered.label,
            recipe="# send SQL through schema_editor.execute(), RunSQL or RunPython, never a cursor of its own "
                   "while rendering",
            fingerprint=hashlib.sha256(refusal.sql.encode()).hexdigest()[:16],
        )


RULE = Rule(
    id="MG910",
    slug="write-during-lint",
    severity=Severity.ERROR,
    summary="migration code tried to write to the database the gate only reads; the statement was not sent",
    doc=DOC,
    check_migration=check_migration,
)
