"""MG911 cluster-wide-statement: a migration sent, on the scratch database, a statement whose
effect reaches outside it (roles, databases, the server's configuration)."""

from __future__ import annotations

import hashlib

from migration_guard.guard import SCRATCH, shorten_sql
from migration_guard.model import Finding, Severity
from migration_guard.rules.base import MigrationContext, Rule

DOC = """\
## What it does
Reports a statement that a migration sent while `--scratch` (or `--since`, `--files`) applied it
to a throwaway database, and that the gate refused to run there because it would change the
whole server: `CREATE/ALTER/DROP ROLE`, `ALTER DATABASE` (of any database), `CREATE/DROP
DATABASE`, `ALTER SYSTEM`, tablespaces, subscriptions, `DROP/REASSIGN OWNED`, `COPY` to or from a
server file or program, `pg_terminate_backend()`, `dblink_exec()`, a `DO` block naming any of
them.

## Why is this bad?
The scratch database shares its server with other databases (a CI service, sometimes a shared
staging server): a migration that changes a role, another database or the server's settings
would leave that change behind for everyone. In production it changes the server too, which a
schema migration rarely should.

## Example
```python
migrations.RunSQL("ALTER ROLE app SET statement_timeout = 0"),
```

## Use instead
Change roles and server settings outside migrations (infrastructure code, a DBA's runbook). To
lint migration code you do not trust, use `--embedded`: a throwaway server of its own. SQL built
at run time inside a `DO` block or a function cannot be seen by the gate.
"""


def check_migration(ctx: MigrationContext):
    for refusal in ctx.rendered.refused:
        if refusal.mode != SCRATCH:
            continue
        yield Finding(
            rule=RULE.id,
            slug=RULE.slug,
            severity=ctx.config.severity.get(RULE.id, RULE.severity),
            message=f"Migration {ctx.rendered.label} sent {shorten_sql(refusal.sql, 160)!r}, which the gate did not run on "
                    f"the scratch database: {refusal.reason}.",
            migration=ctx.rendered.label,
            recipe="# change roles, databases and server settings outside migrations;\n"
                   "# lint untrusted migration code with --embedded (a throwaway server of its own)",
            fingerprint=hashlib.sha256(refusal.sql.encode()).hexdigest()[:16],
        )


RULE = Rule(
    id="MG911",
    slug="cluster-wide-statement",
    severity=Severity.ERROR,
    summary="a migration changes roles, databases or the server itself; not run on the scratch database",
    doc=DOC,
    check_migration=check_migration,
)
